//! `ddcoterm bundle`.
use crate::cli::{BundleCommand, GlobalArgs};
pub fn run(_g: &GlobalArgs, _c: BundleCommand) -> anyhow::Result<i32> {
    anyhow::bail!("bundle: not wired yet")
}
