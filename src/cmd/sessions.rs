//! `ddcoterm sessions`.
use crate::cli::{GlobalArgs, SessionsArgs};
pub fn run(_g: &GlobalArgs, _a: SessionsArgs) -> anyhow::Result<i32> {
    anyhow::bail!("sessions: not wired yet")
}
