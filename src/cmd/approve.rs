//! `ddcoterm approve`.
use crate::cli::{ApproveArgs, GlobalArgs};
pub fn run(_g: &GlobalArgs, _a: ApproveArgs) -> anyhow::Result<i32> {
    anyhow::bail!("approve: not wired yet")
}
