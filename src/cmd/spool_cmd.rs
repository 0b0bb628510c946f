//! `ddcoterm spool`.
use crate::cli::{GlobalArgs, SpoolCommand};
pub fn run(_g: &GlobalArgs, _c: SpoolCommand) -> anyhow::Result<i32> {
    anyhow::bail!("spool: not wired yet")
}
