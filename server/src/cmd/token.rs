//! `ddcoterm-server token create|list|revoke`.

use anyhow::{bail, Context as _};

use crate::auth::{new_token, token_hash};
use crate::cli::TokenCmd;
use crate::ingest::now_ms;
use crate::state::AppState;
use crate::store::{Role, StoreError};

pub async fn run(st: &AppState, cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Create { name, role, host } => {
            let role = Role::parse(&role)
                .with_context(|| format!("--role {role:?}: expected host, viewer, auditor or admin"))?;
            if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                bail!("token name {name:?}: 1-128 printable characters");
            }
            if host.is_some() && role != Role::Host {
                bail!("--host only applies to host tokens");
            }
            let host = (role == Role::Host).then(|| host.unwrap_or_else(|| name.clone()));
            let token = new_token();
            match st.meta.token_insert(&name, role, host.as_deref(), &token_hash(&token), now_ms()).await {
                Ok(_) => {}
                Err(StoreError::Conflict(_)) => bail!("a token named {name:?} already exists"),
                Err(e) => return Err(e.into()),
            }
            eprintln!("created {} token {name:?}; it is shown once, store it now:", role.as_str());
            println!("{token}");
        }
        TokenCmd::List { json } => {
            let rows = st.meta.token_list().await?;
            let fmt = |ms: Option<i64>| ms.map(rfc3339).unwrap_or_else(|| "never".into());
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "name": t.name, "role": t.role.as_str(), "host": t.host,
                            "created_at": rfc3339(t.created_at), "last_seen": t.last_seen.map(rfc3339),
                            "revoked_at": t.revoked_at.map(rfc3339),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{:<24} {:<8} {:<24} {:<26} STATUS", "NAME", "ROLE", "HOST", "LAST SEEN");
                for t in rows {
                    let status = if t.revoked_at.is_some() { "revoked" } else { "active" };
                    let host = t.host.as_deref().unwrap_or("-");
                    println!(
                        "{:<24} {:<8} {:<24} {:<26} {status}",
                        t.name,
                        t.role.as_str(),
                        host,
                        fmt(t.last_seen)
                    );
                }
            }
        }
        TokenCmd::Revoke { name } => {
            if !st.meta.token_revoke(&name, now_ms()).await? {
                bail!("no active token named {name:?}");
            }
            println!("revoked {name}");
        }
    }
    Ok(())
}

pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}
