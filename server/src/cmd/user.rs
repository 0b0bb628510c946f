//! `ddcoterm-server user add|passwd|remove`: local users for password sign-in (argon2 hashes only).

use std::io::BufRead as _;

use anyhow::{bail, Context as _};

use crate::auth::hash_password;
use crate::cli::UserCmd;
use crate::ingest::now_ms;
use crate::state::AppState;
use crate::store::{Role, StoreError};

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let pw = if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        let a = rpassword::prompt_password("password: ")
            .context("reading the password (or use --password-stdin)")?;
        let b = rpassword::prompt_password("again: ").context("reading the password")?;
        if a != b {
            bail!("the two passwords differ");
        }
        a
    };
    if pw.chars().count() < 8 {
        bail!("password: at least 8 characters");
    }
    Ok(pw)
}

/// `--email`: trimmed, checked, empty meaning none.
fn checked_email(email: Option<String>) -> anyhow::Result<Option<String>> {
    let Some(e) = email.map(|e| e.trim().to_string()).filter(|e| !e.is_empty()) else { return Ok(None) };
    if !crate::auth::valid_email(&e) {
        bail!("--email {e:?}: expected an address like name@example.com");
    }
    Ok(Some(e))
}

pub async fn run(st: &AppState, cmd: UserCmd) -> anyhow::Result<()> {
    match cmd {
        UserCmd::Add { name, role, email, password_stdin } => {
            let role = Role::parse(&role)
                .filter(|r| *r != Role::Host)
                .with_context(|| format!("--role {role:?}: expected viewer, auditor or admin"))?;
            if !crate::auth::valid_user_name(&name) {
                bail!("user name {name:?}: 1-128 printable characters, no ':'");
            }
            let email = checked_email(email)?;
            let hash = hash_password(&read_password(password_stdin)?)?;
            match st.meta.user_insert(&name, role, &hash, email.as_deref(), now_ms()).await {
                Ok(()) => println!("added {} user {name}", role.as_str()),
                Err(StoreError::Conflict(_)) => bail!("user {name:?} already exists"),
                Err(e) => return Err(e.into()),
            }
        }
        UserCmd::Passwd { name, password_stdin } => {
            if st.meta.user_get(&name).await?.is_none() {
                bail!("no user {name:?}");
            }
            let hash = hash_password(&read_password(password_stdin)?)?;
            st.meta.user_set_password(&name, &hash).await?;
            // A new password signs the user out of the web UI everywhere (its live streams end too).
            let ended = st.meta.logins_delete_user(&name).await?;
            println!("password changed for {name} ({ended} web login(s) signed out)");
        }
        UserCmd::Remove { name } => {
            if !st.meta.user_remove(&name).await? {
                bail!("no user {name:?}");
            }
            let ended = st.meta.logins_delete_user(&name).await?;
            println!("removed {name} ({ended} web login(s) signed out)");
        }
        UserCmd::Email { name, email, clear: _ } => {
            let email = checked_email(email)?;
            if !st.meta.user_set_email(&name, email.as_deref()).await? {
                bail!("no user {name:?}");
            }
            match email {
                Some(e) => println!("e-mail of {name} set to {e}"),
                None => println!("e-mail of {name} cleared"),
            }
        }
        UserCmd::List => {
            for u in st.meta.user_list().await? {
                let kind = if u.password == crate::oidc::SSO_PASSWORD { "sso" } else { "password" };
                println!("{}\t{}\t{}\t{kind}", u.name, u.role.as_str(), u.email.as_deref().unwrap_or("-"));
            }
        }
    }
    Ok(())
}
