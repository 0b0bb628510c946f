//! `/login/oidc` and its callback: single sign-on through the configured OpenID Connect provider
//! (`crate::oidc`), ending in the same login cookie as a password sign-in.
//!
//! The `state` sent to the provider is also put in a short-lived cookie of this browser and stored (hashed,
//! with the nonce and PKCE verifier) in the database; the callback needs all three to agree and takes the
//! row, so a forged, swapped or replayed callback gets a 400 and no login.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::{error_page, layout, local_next};
use crate::auth::token_hash;
use crate::error::ApiError;
use crate::ingest::now_ms;
use crate::login;
use crate::oidc::{Provider, CALLBACK_PATH, PENDING_TTL_MS, SSO_PASSWORD};
use crate::state::AppState;
use crate::store::OidcPending;

/// The cookie carrying `state` between the redirect and the callback. `SameSite=Lax`: the callback is a
/// top-level navigation from the provider's site, which a `Strict` cookie would not accompany.
const STATE_COOKIE: &str = "ddcoterm_oidc_state";

#[derive(Deserialize)]
pub struct StartQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn not_configured() -> Response {
    error_page(None, &ApiError::not_found("single sign-on is not configured on this server (`oidc:`)"))
}

fn redirect_url(st: &AppState) -> String {
    format!("{}{CALLBACK_PATH}", st.public_url)
}

fn state_cookie(st: &AppState, value: Option<&str>) -> HeaderValue {
    let secure = if st.public_url.starts_with("https://") { "; Secure" } else { "" };
    let (v, age) = match value {
        Some(v) => (v, PENDING_TTL_MS / 1000),
        None => ("", 0),
    };
    let s = format!("{STATE_COOKIE}={v}; HttpOnly; SameSite=Lax; Path=/login/oidc; Max-Age={age}{secure}");
    HeaderValue::from_str(&s).expect("state values are URL-safe")
}

fn state_from_cookie(headers: &HeaderMap) -> Option<&str> {
    login::named_cookie(headers, STATE_COOKIE, 256)
}

/// `GET /login/oidc?next=/path`: stores a pending sign-in and sends the browser to the provider.
pub async fn start(State(st): State<AppState>, Query(q): Query<StartQuery>) -> Response {
    let Some(p) = st.oidc.as_deref() else { return not_configured() };
    let started = match p.start(&redirect_url(&st)).await {
        Ok(s) => s,
        Err(e) => return error_page(None, &e),
    };
    let now = now_ms();
    let pending = OidcPending {
        state_hash: token_hash(&started.state),
        nonce: started.nonce,
        verifier: started.verifier,
        next: local_next(q.next.as_deref().unwrap_or("/")).to_string(),
        expires_at: now + PENDING_TTL_MS,
    };
    if let Err(e) = st.meta.oidc_pending_insert(&pending, now).await {
        return error_page(None, &e.into());
    }
    let mut res = Redirect::to(&started.url).into_response();
    res.headers_mut().insert(header::SET_COOKIE, state_cookie(&st, Some(&started.state)));
    res
}

/// `GET /login/oidc/callback?code=..&state=..`: checks the state against this browser's cookie and the stored
/// sign-in (taking it), lets the provider module verify the code and ID token, brings the user row in line
/// with the claims, and signs in.
pub async fn callback(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(p) = st.oidc.as_deref() else { return not_configured() };
    let mut res = match finish(&st, p, &headers, q).await {
        Ok(res) => res,
        Err(e) => {
            tracing::warn!(status = e.status.as_u16(), reason = %e.message, "single sign-on refused");
            error_page(None, &e)
        }
    };
    // Whatever happened, this browser's pending state is spent.
    res.headers_mut().append(header::SET_COOKIE, state_cookie(&st, None));
    res
}

async fn finish(
    st: &AppState,
    p: &Provider,
    headers: &HeaderMap,
    q: CallbackQuery,
) -> Result<Response, ApiError> {
    let sent = q.state.as_deref().unwrap_or("");
    let ours = state_from_cookie(headers).unwrap_or("");
    if sent.is_empty() || ours.is_empty() || token_hash(sent) != token_hash(ours) {
        return Err(ApiError::bad_request(
            "this sign-in's state does not match the one this browser started: start the sign-in again",
        ));
    }
    let now = now_ms();
    let pending = st.meta.oidc_pending_take(&token_hash(sent)).await?.filter(|pd| pd.expires_at > now);
    let Some(pending) = pending else {
        return Err(ApiError::bad_request(
            "this sign-in is unknown, expired or already used: start the sign-in again",
        ));
    };
    if let Some(err) = q.error {
        let detail = q.error_description.map(|d| format!(" ({d})")).unwrap_or_default();
        return Err(ApiError::forbidden(format!("the identity provider refused the sign-in: {err}{detail}")));
    }
    let code = q
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("the callback has no `code`"))?;
    let id = p.finish(&redirect_url(st), &code, &pending.verifier, &pending.nonce).await?;
    let existing = st.meta.user_get(&id.name).await?;
    if existing.as_ref().is_some_and(|u| u.password != SSO_PASSWORD) {
        return Err(ApiError::forbidden(format!(
            "a local user named {:?} exists: single sign-on does not sign in as a local user",
            id.name
        )));
    }
    let Some(role) = id.role else {
        if existing.is_some() {
            // The claims no longer grant a role: the user and every login of theirs go.
            st.meta.user_remove(&id.name).await?;
            st.meta.logins_delete_user(&id.name).await?;
        }
        return Err(ApiError::forbidden(format!(
            "{:?} has no ddcoterm role: none of their groups is mapped (oidc.roles) and oidc.default_role is deny",
            id.name
        )));
    };
    let user = match existing {
        Some(mut u) => {
            if u.role != role {
                st.meta.user_set_role(&u.name, role).await?;
                u.role = role;
            }
            // The provider's verified e-mail of this sign-in replaces the stored one (or clears it).
            if u.email != id.email {
                st.meta.user_set_email(&u.name, id.email.as_deref()).await?;
                u.email = id.email.clone();
            }
            u
        }
        None => {
            st.meta.user_insert(&id.name, role, SSO_PASSWORD, id.email.as_deref(), now).await?;
            crate::store::UserRow {
                name: id.name.clone(),
                role,
                password: SSO_PASSWORD.into(),
                email: id.email.clone(),
            }
        }
    };
    let (value, row) = login::new_login(&user, now);
    st.meta.logins_purge(now, now - login::THROTTLE_WINDOW_MS).await?;
    st.meta.login_insert(&row).await?;
    tracing::info!(user = %user.name, role = user.role.as_str(), "signed in with single sign-on");
    let next = local_next(&pending.next).to_string();
    // A page rather than a redirect: the login cookie is SameSite=Strict, and a redirect still counts as the
    // provider's cross-site navigation, so the next page would not see it; this page's own navigation does.
    let body = layout::page(
        None,
        "Signed in",
        html! {
            h1 { "Signed in" }
            p { "Signed in as " (user.name) " (" (user.role.as_str()) "). " a #continue href=(next) { "Continue" } }
        },
        html! { meta http-equiv="refresh" content=(format!("0;url={next}")); },
    );
    let mut res = (StatusCode::OK, body).into_response();
    res.headers_mut().insert(header::SET_COOKIE, login::set_cookie(st, Some(&value)));
    Ok(res)
}
