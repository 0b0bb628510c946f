//! `ddcoterm init`.
use crate::cli::{GlobalArgs, InitArgs};
pub fn run(_g: &GlobalArgs, _a: InitArgs) -> anyhow::Result<i32> {
    anyhow::bail!("init: not wired yet")
}
