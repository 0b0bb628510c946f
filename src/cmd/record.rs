//! `ddcoterm` and `ddcoterm -- CMD...`.
use crate::cli::{GlobalArgs, RunArgs};
pub fn run(_g: &GlobalArgs, _r: &RunArgs, _cmd: Vec<String>) -> anyhow::Result<i32> {
    anyhow::bail!("record: not wired yet")
}
