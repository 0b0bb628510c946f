//! `ddcoterm doctor`.
use crate::cli::GlobalArgs;
pub fn run(_g: &GlobalArgs) -> anyhow::Result<i32> {
    anyhow::bail!("doctor: not wired yet")
}
