//! `ddcoterm config`.
use crate::cli::{ConfigCommand, GlobalArgs};
pub fn run(_g: &GlobalArgs, _c: ConfigCommand) -> anyhow::Result<i32> {
    anyhow::bail!("config: not wired yet")
}
