//! `ddcoterm policy`.
use crate::cli::{GlobalArgs, PolicyCommand};
pub fn run(_g: &GlobalArgs, _c: PolicyCommand) -> anyhow::Result<i32> {
    anyhow::bail!("policy: not wired yet")
}
