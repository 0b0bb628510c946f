//! `ddcoterm play`.
use crate::cli::{GlobalArgs, PlayArgs};
pub fn run(_g: &GlobalArgs, _a: PlayArgs) -> anyhow::Result<i32> {
    anyhow::bail!("play: not wired yet")
}
