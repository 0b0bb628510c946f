//! `/login` and `/logout`: password sign-in against the local users, with the login throttle and the
//! same-origin and CSRF checks every state-changing request passes.

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::{error_page, layout, local_next};
use crate::auth::verify_password;
use crate::error::ApiError;
use crate::ingest::now_ms;
use crate::login;
use crate::state::AppState;

/// Verified against when the user does not exist, so a wrong name costs the same time as a wrong password
/// (the answer must not say which users exist). An argon2 hash of a random string nobody knows.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| crate::auth::hash_password(&crate::auth::new_token()).unwrap_or_default());

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct Credentials {
    user: String,
    password: String,
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn form_page(st: &AppState, status: StatusCode, next: &str, message: Option<&str>) -> Response {
    let body = layout::page(
        None,
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if let Some(m) = message { p.error id="login-error" role="alert" { (m) } }
            form.login method="post" action="/login" {
                input type="hidden" name="next" value=(local_next(next));
                label { "User " input type="text" name="user" id="user" autocomplete="username" required; }
                label { "Password " input type="password" name="password" id="password"
                    autocomplete="current-password" required; }
                button type="submit" id="signin" { "Sign in" }
            }
            @if st.oidc.is_some() {
                p.sso { a #sso href=(format!("/login/oidc?next={}", super::encode(local_next(next)))) {
                    "Sign in with single sign-on" } }
            }
        },
        html! {},
    );
    (status, body).into_response()
}

/// `GET /login?next=/path`.
pub async fn form(State(st): State<AppState>, Query(q): Query<NextQuery>) -> Response {
    form_page(&st, StatusCode::OK, q.next.as_deref().unwrap_or("/"), None)
}

/// `POST /login`: same origin only; refused while the user name or the client address has used up its
/// failures (429 + Retry-After); every failure is recorded and logged; success sets the login cookie.
pub async fn submit(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<crate::connlimit::PeerAddr>,
    headers: HeaderMap,
    form: Result<Form<Credentials>, axum::extract::rejection::FormRejection>,
) -> Response {
    if !login::same_origin(&st, &headers) {
        return error_page(
            None,
            &ApiError::forbidden("sign-in must come from this server's own sign-in page"),
        );
    }
    let Ok(Form(c)) = form else {
        return form_page(
            &st,
            StatusCode::BAD_REQUEST,
            "/",
            Some("the form needs a user name and a password"),
        );
    };
    let addr = st.settings.trusted_proxies.client_ip(peer.0.ip(), &headers).to_string();
    let now = now_ms();
    let user_key: String = c.user.chars().take(128).collect();
    match login::throttled(&st, &user_key, &addr, now).await {
        Ok(None) => {}
        Ok(Some(secs)) => {
            if let Err(e) = st.meta.login_failure_insert(now, &user_key, &addr).await {
                return error_page(None, &e.into());
            }
            tracing::warn!(user = %user_key, %addr, "sign-in throttled");
            let mut res = form_page(
                &st,
                StatusCode::TOO_MANY_REQUESTS,
                &c.next,
                Some("too many failed sign-ins: wait a few minutes and try again"),
            );
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return res;
        }
        Err(e) => return error_page(None, &e),
    }
    let user = match st.meta.user_get(&user_key).await {
        Ok(u) => u,
        Err(e) => return error_page(None, &e.into()),
    };
    let phc = user.as_ref().map_or_else(|| DUMMY_HASH.clone(), |u| u.password.clone());
    let pw = c.password;
    let ok = tokio::task::spawn_blocking(move || verify_password(&pw, &phc)).await.unwrap_or(false);
    let user = match (ok, user) {
        (true, Some(u)) => u,
        _ => {
            if let Err(e) = st.meta.login_failure_insert(now, &user_key, &addr).await {
                return error_page(None, &e.into());
            }
            tracing::warn!(user = %user_key, %addr, "sign-in failed");
            return form_page(&st, StatusCode::UNAUTHORIZED, &c.next, Some("wrong user name or password"));
        }
    };
    let (value, row) = login::new_login(&user, now);
    let stored = async {
        st.meta.logins_purge(now, now - login::THROTTLE_WINDOW_MS).await?;
        st.meta.login_insert(&row).await
    };
    if let Err(e) = stored.await {
        return error_page(None, &e.into());
    }
    tracing::info!(user = %user.name, %addr, "signed in");
    let mut res = Redirect::to(local_next(&c.next)).into_response();
    res.headers_mut().insert(header::SET_COOKIE, login::set_cookie(&st, Some(&value)));
    res
}

/// `POST /logout`: same origin and the login's CSRF token; deletes the login (its live streams end).
pub async fn logout(
    State(st): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if !login::same_origin(&st, &headers) {
        return error_page(None, &ApiError::forbidden("sign-out must come from this server's own pages"));
    }
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    match login::resolve(&st, &headers).await {
        Ok(Some((who, l))) => {
            if !login::csrf_ok(&l, &csrf) {
                return error_page(
                    None,
                    &ApiError::forbidden("the form's CSRF token does not match the login"),
                );
            }
            if let Err(e) = st.meta.login_delete(&l.hash).await {
                return error_page(None, &e.into());
            }
            tracing::info!(user = %who.name, "signed out");
        }
        Ok(None) => {}
        Err(e) => return error_page(None, &e),
    }
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().insert(header::SET_COOKIE, login::set_cookie(&st, None));
    res
}
