//! Who is calling: bearer tokens (stored as SHA-256 only), local users (argon2), and what each role may do.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use crate::grants::{GrantKind, Grants};
use crate::store::{Role, SessionRow};

/// Every token starts with this, so a leaked one is recognisable in a secret scanner.
pub const TOKEN_PREFIX: &str = "ddcts_";

/// A new random token (256 bits); shown once, never stored.
pub fn new_token() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

/// What the database keeps of a token. A plain hash is enough: tokens are 256 random bits, not passwords.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A user name `user add`, the admin page and single sign-on accept: 1-128 bytes, printable, no ':' (HTTP
/// Basic credentials split on it).
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && !name.contains(':') && !name.chars().any(char::is_control)
}

/// An e-mail `user add --email` and single sign-on accept: 3-254 bytes, one '@' with text on both sides, no
/// spaces or control characters. Not a deliverability check: it only has to match what approvers are named by.
pub fn valid_email(email: &str) -> bool {
    let ok_chars = !email.chars().any(|c| c.is_control() || c.is_whitespace());
    match email.split_once('@') {
        Some((local, domain)) => {
            ok_chars && email.len() <= 254 && !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        }
        None => false,
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Token id (for session ownership); `None` for a user signed in with a password.
    pub token_id: Option<i64>,
    /// Token name or user name: a viewer sees the sessions recorded under this user name.
    pub name: String,
    /// The user's e-mail (`user add --email`, or the provider's verified `email` claim): per-session grants
    /// naming it (ignoring case) open the session too.
    pub email: Option<String>,
    pub role: Role,
    /// The host name bound to a host token (`token create --host`), stamped on its sessions.
    pub host: Option<String>,
    /// The web login (its cookie's hash) when signed in with a cookie: live streams end when it is revoked.
    pub login: Option<String>,
}

impl Principal {
    /// Reading anything: every role but `host` (host tokens write, never read).
    pub fn can_read(&self) -> bool {
        self.role != Role::Host
    }

    /// Reading one session: auditors and admins all of them, viewers those recorded under their own name and
    /// those a per-session grant names them in (approver, incident responder: [`crate::grants`]).
    pub fn can_read_session(&self, s: &SessionRow) -> bool {
        match self.role {
            Role::Host => false,
            Role::Viewer => s.user.as_deref() == Some(self.name.as_str()) || self.grant(s).is_some(),
            Role::Auditor | Role::Admin => true,
        }
    }

    /// The per-session grant that names this caller, if any (whatever the role: the session page says so).
    /// A viewer token acts as the user it is named after (by name only: tokens have no e-mail).
    pub fn grant(&self, s: &SessionRow) -> Option<GrantKind> {
        Grants::of_row(s).allows(&self.name, self.email.as_deref())
    }

    /// The user filter a list must apply for this caller, whatever the query asked.
    pub fn forced_user(&self) -> Option<&str> {
        (self.role == Role::Viewer).then_some(self.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hashes_stable() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() > 40);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn emails_are_checked_loosely_but_checked() {
        assert!(valid_email("bob@example.com"));
        for bad in ["", "bob", "@x", "bob@", "a@b@c", "bob @x.org", "bob@x\n.org"] {
            assert!(!valid_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("correct horse", "not a hash"));
    }
}
