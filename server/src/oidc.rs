//! Single sign-on with an OpenID Connect provider: the checked `oidc:` settings, the provider's discovery
//! document and keys (cached), the authorization-code flow with PKCE, `state` and `nonce`, the ID token's
//! verification (signature against the provider's JWKS, `iss`, `aud`, `exp`, `nonce`, `at_hash`: all done by
//! the `openidconnect` crate), and the mapping from the token's claims to a ddcoterm user and role.
//!
//! A person who signs in this way becomes a user row marked [`SSO_PASSWORD`] (no password can match it), with
//! the role their claims map to at this sign-in: a changed group changes the role (and ends logins made with
//! the old one), no matching group with `default_role: deny` removes the user. A local user of the same name
//! is never taken over.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType, CoreGenderClaim,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    StandardErrorResponse, StandardTokenResponse, TokenResponse as _,
};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::store::Role;

/// The password column of a user created by single sign-on: not a password hash, so no password matches it.
pub const SSO_PASSWORD: &str = "!oidc";
/// How long a redirect to the provider may take before its callback is refused.
pub const PENDING_TTL_MS: i64 = 10 * 60 * 1000;
/// How long the discovery document and the provider's keys are reused before being fetched again (a key
/// rotation at the provider is picked up within this).
const DISCOVERY_TTL: Duration = Duration::from_secs(600);
/// Requests to the provider (discovery, keys, token exchange) give up after this.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The path of the callback under the public URL (registered at the provider as the redirect URI).
pub const CALLBACK_PATH: &str = "/login/oidc/callback";

/// `oidc:` after checking: what the flow needs, the secret already read from its file.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: IssuerUrl,
    pub client_id: ClientId,
    /// Its `Debug` prints `[redacted]`.
    pub client_secret: Option<ClientSecret>,
    pub scopes: Vec<String>,
    pub username_claim: String,
    pub roles_claim: String,
    pub roles: BTreeMap<String, Role>,
    /// `None`: `deny`.
    pub default_role: Option<Role>,
}

impl OidcConfig {
    /// Checks the settings (every error names its `oidc.*` key) and reads the client secret file.
    pub fn from_settings(s: &crate::config::Oidc) -> anyhow::Result<OidcConfig> {
        let issuer = IssuerUrl::new(s.issuer.clone())
            .with_context(|| format!("configuration key `oidc.issuer`: {:?} is not a URL", s.issuer))?;
        let url = issuer.url();
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            bail!(
                "configuration key `oidc.issuer`: {:?} must be https:// (plain http only on a loopback address)",
                s.issuer
            );
        }
        if s.client_id.trim().is_empty() {
            bail!("configuration key `oidc.client_id`: must not be empty");
        }
        let client_secret = match &s.client_secret_file {
            None => None,
            Some(f) => {
                let text = std::fs::read_to_string(f).with_context(|| {
                    format!("configuration key `oidc.client_secret_file`: reading {}", f.display())
                })?;
                let secret = text.trim();
                if secret.is_empty() {
                    bail!("configuration key `oidc.client_secret_file`: {} is empty", f.display());
                }
                Some(ClientSecret::new(secret.to_string()))
            }
        };
        let parse_role = |key: &str, v: &str| match Role::parse(v) {
            Some(r @ (Role::Viewer | Role::Auditor | Role::Admin)) => Ok(r),
            _ => bail!("configuration key `{key}`: {v:?} is not one of viewer, auditor, admin"),
        };
        let mut roles = BTreeMap::new();
        for (group, role) in &s.roles {
            roles.insert(group.clone(), parse_role(&format!("oidc.roles.{group}"), role)?);
        }
        let default_role = match s.default_role.as_str() {
            "deny" => None,
            other => {
                Some(parse_role("oidc.default_role", other).map_err(|e| anyhow::anyhow!("{e} (or `deny`)"))?)
            }
        };
        for (key, v) in [("oidc.username_claim", &s.username_claim), ("oidc.roles_claim", &s.roles_claim)] {
            if v.trim().is_empty() {
                bail!("configuration key `{key}`: must not be empty");
            }
        }
        let mut scopes: Vec<String> = s.scopes.iter().filter(|x| *x != "openid").cloned().collect();
        scopes.dedup();
        Ok(OidcConfig {
            issuer,
            client_id: ClientId::new(s.client_id.clone()),
            client_secret,
            scopes,
            username_claim: s.username_claim.clone(),
            roles_claim: s.roles_claim.clone(),
            roles,
            default_role,
        })
    }
}

/// Every claim of the ID token beyond the standard ones (groups, custom user names).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtraClaims {
    #[serde(flatten)]
    pub all: serde_json::Map<String, serde_json::Value>,
}
impl AdditionalClaims for ExtraClaims {}

type IdFields = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenResponse = StandardTokenResponse<IdFields, CoreTokenType>;
/// The client as discovery builds it (`Tok`: whether the token endpoint is known), and once it is.
type ClientWith<Tok> = openidconnect::Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    Tok,
    EndpointMaybeSet,
>;
type Client = ClientWith<EndpointSet>;

/// The configured provider: settings, an HTTP client that never follows redirects (SSRF), and the client
/// built from the last discovery.
pub struct Provider {
    pub config: OidcConfig,
    http: openidconnect::reqwest::Client,
    cached: tokio::sync::Mutex<Option<(Instant, Arc<Client>)>>,
}

/// A redirect to the provider: where to send the browser, and what the callback will need.
pub struct Started {
    pub url: String,
    /// Goes to the browser (a cookie) and to the provider; only its hash is stored.
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

/// Who the provider says signed in, and the role their claims map to (`None`: denied).
#[derive(Debug)]
pub struct Identity {
    pub name: String,
    pub role: Option<Role>,
    /// The `email` claim when the provider marks it verified (`email_verified: true`): per-session grants
    /// naming an e-mail match it. An unverified address is ignored, so nobody gains a grant by typing one.
    pub email: Option<String>,
}

impl Provider {
    pub fn new(config: OidcConfig) -> Provider {
        // Building fails only when the TLS backend cannot start; rustls with built-in roots always does.
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .build()
            .expect("an HTTP client with rustls and fixed settings builds");
        Provider { config, http, cached: tokio::sync::Mutex::new(None) }
    }

    /// The client from the provider's discovery document and keys, fetched again after [`DISCOVERY_TTL`].
    async fn client(&self, redirect: &str) -> Result<Arc<Client>, ApiError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, c)) = cached.as_ref() {
            if at.elapsed() < DISCOVERY_TTL && c.redirect_uri().map(|r| r.as_str()) == Some(redirect) {
                return Ok(c.clone());
            }
        }
        let meta = CoreProviderMetadata::discover_async(self.config.issuer.clone(), &self.http)
            .await
            .map_err(|e| {
                tracing::warn!(issuer = %self.config.issuer.as_str(), error = %chain(&e), "OIDC discovery failed");
                bad_gateway(format!(
                    "the identity provider {} could not be reached or sent a bad discovery document: {}",
                    self.config.issuer.as_str(),
                    chain(&e)
                ))
            })?;
        let token_url = meta.token_endpoint().cloned().ok_or_else(|| {
            bad_gateway("the identity provider's discovery document names no token endpoint")
        })?;
        let redirect = RedirectUrl::new(redirect.to_string()).map_err(|e| {
            ApiError::bad_request(format!("the public URL does not make a redirect URL: {e}"))
        })?;
        let client = Arc::new(
            ClientWith::<EndpointMaybeSet>::from_provider_metadata(
                meta,
                self.config.client_id.clone(),
                self.config.client_secret.clone(),
            )
            .set_token_uri(token_url)
            .set_redirect_uri(redirect),
        );
        *cached = Some((Instant::now(), client.clone()));
        Ok(client)
    }

    /// Starts a sign-in: the provider's authorization URL with a fresh `state`, `nonce` and PKCE challenge.
    pub async fn start(&self, redirect: &str) -> Result<Started, ApiError> {
        let client = self.client(redirect).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for s in &self.config.scopes {
            req = req.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = req.url();
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
        })
    }

    /// Finishes a sign-in: exchanges the code (with the PKCE verifier), verifies the ID token against the
    /// provider's keys, this client id and the nonce, and maps its claims. Every refusal is a 4xx naming why
    /// (502 when the provider cannot be reached).
    pub async fn finish(
        &self,
        redirect: &str,
        code: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<Identity, ApiError> {
        let client = self.client(redirect).await?;
        let resp = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => ApiError::bad_request(format!(
                    "the identity provider refused the sign-in code: {}{}",
                    r.error().as_ref(),
                    r.error_description().map(|d| format!(" ({d})")).unwrap_or_default()
                )),
                other => bad_gateway(format!("exchanging the sign-in code failed: {}", chain(&other))),
            })?;
        let id_token = resp
            .id_token()
            .ok_or_else(|| ApiError::unauthorized("the identity provider sent no ID token"))?;
        let verifier = client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &Nonce::new(nonce.to_string()))
            .map_err(|e| ApiError::unauthorized(format!("the ID token did not verify: {}", chain(&e))))?;
        if let Some(expected) = claims.access_token_hash() {
            let refused = |e: &dyn std::error::Error| {
                ApiError::unauthorized(format!("the ID token's at_hash did not verify: {}", chain(e)))
            };
            let alg = id_token.signing_alg().map_err(|e| refused(&e))?;
            let key = id_token.signing_key(&verifier).map_err(|e| refused(&e))?;
            let actual =
                AccessTokenHash::from_token(resp.access_token(), alg, key).map_err(|e| refused(&e))?;
            if actual != *expected {
                return Err(ApiError::unauthorized("the ID token's at_hash does not match its access token"));
            }
        }
        // One JSON object of every claim, standard or not, to look the configured claims up by name.
        let all = serde_json::to_value(claims)
            .map_err(|e| ApiError::unauthorized(format!("the ID token's claims: {e}")))?;
        identity(&self.config, &all)
    }
}

/// The user name and role the configured claims give (pure: the table test below drives it).
pub fn identity(c: &OidcConfig, claims: &serde_json::Value) -> Result<Identity, ApiError> {
    let name = match claims.get(&c.username_claim) {
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => {
            return Err(ApiError::forbidden(format!(
                "the ID token has no string claim `{}` (oidc.username_claim) to name the user",
                c.username_claim
            )))
        }
    };
    if !crate::auth::valid_user_name(&name) {
        return Err(ApiError::forbidden(format!(
            "the ID token's `{}` is not a usable user name (1-128 printable characters, no ':')",
            c.username_claim
        )));
    }
    let groups: Vec<&str> = match claims.get(&c.roles_claim) {
        Some(serde_json::Value::String(s)) => vec![s.as_str()],
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    let mapped = groups.iter().filter_map(|g| c.roles.get(*g).copied()).max_by_key(|r| rank(*r));
    Ok(Identity { name, role: mapped.or(c.default_role), email: verified_email(claims) })
}

/// The `email` claim, only when `email_verified` is true (boolean, or the string "true" some providers send).
pub fn verified_email(claims: &serde_json::Value) -> Option<String> {
    let verified = match claims.get("email_verified") {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => s == "true",
        _ => false,
    };
    let email = claims.get("email")?.as_str()?.trim();
    (verified && crate::auth::valid_email(email)).then(|| email.to_string())
}

/// Admin above auditor above viewer: the highest role any group maps to wins.
fn rank(r: Role) -> u8 {
    match r {
        Role::Host => 0,
        Role::Viewer => 1,
        Role::Auditor => 2,
        Role::Admin => 3,
    }
}

fn bad_gateway(m: impl Into<String>) -> ApiError {
    ApiError::new(axum::http::StatusCode::BAD_GATEWAY, "bad_gateway", m)
}

/// An error and its sources on one line (the crate's errors put the useful part in the source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> crate::config::Oidc {
        crate::config::Oidc {
            issuer: "https://idp.example.com/realms/ops/".into(),
            client_id: "ddcoterm".into(),
            client_secret_file: None,
            scopes: vec!["openid".into(), "profile".into()],
            username_claim: "preferred_username".into(),
            roles_claim: "groups".into(),
            roles: [("sre".to_string(), "auditor".to_string()), ("sec".to_string(), "admin".to_string())]
                .into_iter()
                .collect(),
            default_role: "deny".into(),
        }
    }

    #[test]
    fn only_a_verified_email_is_kept() {
        let e = |v: serde_json::Value| verified_email(&v);
        assert_eq!(e(json!({"email": "a@x.org", "email_verified": true})).as_deref(), Some("a@x.org"));
        assert_eq!(e(json!({"email": "a@x.org", "email_verified": "true"})).as_deref(), Some("a@x.org"));
        assert_eq!(e(json!({"email": "a@x.org", "email_verified": false})), None);
        assert_eq!(e(json!({"email": "a@x.org"})), None);
        assert_eq!(e(json!({"email": "not an address", "email_verified": true})), None);
    }

    #[test]
    fn claims_map_to_the_highest_role_or_the_default() {
        let c = OidcConfig::from_settings(&settings()).unwrap();
        let table: &[(serde_json::Value, Option<Role>)] = &[
            (json!({"preferred_username": "ann", "groups": ["sre"]}), Some(Role::Auditor)),
            (json!({"preferred_username": "ann", "groups": ["sre", "sec", "x"]}), Some(Role::Admin)),
            (json!({"preferred_username": "ann", "groups": "sec"}), Some(Role::Admin)),
            (json!({"preferred_username": "ann", "groups": ["other"]}), None),
            (json!({"preferred_username": "ann"}), None),
            (json!({"preferred_username": "ann", "groups": [1, {"sre": 1}]}), None),
        ];
        for (claims, want) in table {
            let id = identity(&c, claims).unwrap();
            assert_eq!(id.name, "ann");
            assert_eq!(id.role, *want, "{claims}");
        }
        let mut s = settings();
        s.default_role = "viewer".into();
        let c = OidcConfig::from_settings(&s).unwrap();
        assert_eq!(identity(&c, &json!({"preferred_username": "bo"})).unwrap().role, Some(Role::Viewer));
    }

    #[test]
    fn unusable_names_are_refused() {
        let c = OidcConfig::from_settings(&settings()).unwrap();
        for claims in [
            json!({}),
            json!({"preferred_username": 7}),
            json!({"preferred_username": ""}),
            json!({"preferred_username": "a\nb"}),
            json!({"preferred_username": "x".repeat(129)}),
            json!({"preferred_username": "a:b"}),
        ] {
            let e = identity(&c, &claims).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::FORBIDDEN, "{claims}");
        }
    }

    #[test]
    fn bad_settings_name_their_key() {
        type Change = Box<dyn Fn(&mut crate::config::Oidc)>;
        let cases: Vec<(&str, Change)> = vec![
            ("oidc.issuer", Box::new(|s| s.issuer = "http://idp.example.com".into())),
            ("oidc.issuer", Box::new(|s| s.issuer = "not a url".into())),
            ("oidc.client_id", Box::new(|s| s.client_id = " ".into())),
            (
                "oidc.roles.sre",
                Box::new(|s| {
                    s.roles.insert("sre".into(), "host".into());
                }),
            ),
            ("oidc.default_role", Box::new(|s| s.default_role = "root".into())),
            (
                "oidc.client_secret_file",
                Box::new(|s| s.client_secret_file = Some("/nonexistent/secret".into())),
            ),
            ("oidc.username_claim", Box::new(|s| s.username_claim = String::new())),
        ];
        for (key, change) in cases {
            let mut s = settings();
            change(&mut s);
            let e = OidcConfig::from_settings(&s).unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
        let mut s = settings();
        s.issuer = "http://127.0.0.1:8000/o".into();
        assert!(OidcConfig::from_settings(&s).is_ok(), "plain http on loopback is allowed");
    }

    #[test]
    fn the_secret_is_read_trimmed_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "s3cr3t-value\n").unwrap();
        let mut s = settings();
        s.client_secret_file = Some(f);
        let c = OidcConfig::from_settings(&s).unwrap();
        assert_eq!(c.client_secret.as_ref().unwrap().secret(), "s3cr3t-value");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(c.scopes == vec!["profile".to_string()], "openid is added by the flow itself");
    }
}
