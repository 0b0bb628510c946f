//! `ddcoterm-server hold ID [--release]`: legal hold exempts a session from retention.

use anyhow::bail;

use crate::state::AppState;

pub async fn run(st: &AppState, id: &str, release: bool) -> anyhow::Result<()> {
    if !st.meta.session_set_hold(id, !release).await? {
        bail!("no session {id:?}");
    }
    println!("{id}: legal hold {}", if release { "released" } else { "set" });
    Ok(())
}
