//! `ddcoterm shim`.
use crate::cli::{GlobalArgs, ShimCommand};
pub fn run(_g: &GlobalArgs, _c: ShimCommand) -> anyhow::Result<i32> {
    anyhow::bail!("shim: not wired yet")
}
