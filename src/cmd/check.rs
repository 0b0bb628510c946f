//! `ddcoterm check`.
use crate::cli::{CheckArgs, GlobalArgs};
pub fn run(_g: &GlobalArgs, _a: CheckArgs) -> anyhow::Result<i32> {
    anyhow::bail!("check: not wired yet")
}
