//! `/admin`: what admins manage in the UI (DESIGN.md §12 "admin manages tokens and users, in the UI too"):
//! the tokens (list, create: shown once, revoke), the users (list, add, reset a password, remove), and the
//! audit of reviewers (who viewed or downloaded which session, when, newest first, in pages, filtered by
//! session or person), where every admin action taken here is recorded too. Admins only (others 403); every
//! form is same-origin and carries the login's CSRF token; everything shown is escaped by maud like every page.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use serde::Deserialize;

use super::{encode, error_page, layout, viewer, Viewer};
use crate::auth::{hash_password, new_token, token_hash, valid_user_name};
use crate::cmd::token::rfc3339;
use crate::error::ApiError;
use crate::ingest::now_ms;
use crate::login;
use crate::oidc::SSO_PASSWORD;
use crate::state::AppState;
use crate::store::{LoginRow, Role, StoreError};

/// Audit entries per page.
pub const AUDIT_PAGE: u32 = 50;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(index))
        .route("/admin/tokens", get(tokens).post(create_token))
        .route("/admin/tokens/revoke", post(revoke_token))
        .route("/admin/users", get(users).post(add_user))
        .route("/admin/users/remove", post(remove_user))
        .route("/admin/users/password", post(reset_password))
        .route("/admin/audit", get(audit))
}

/// The page's reader if an admin; a sign-in redirect for nobody, 403 for anyone else.
async fn admin(st: &AppState, headers: &HeaderMap, uri: &Uri) -> Result<Viewer, Response> {
    let v = viewer(st, headers, uri).await?;
    if v.who.role != Role::Admin {
        return Err(error_page(Some(&v), &ApiError::forbidden("the admin pages are for admins only")));
    }
    Ok(v)
}

/// A form post's signed-in admin: same origin, a cookie login of an admin, its CSRF token.
async fn admin_form(st: &AppState, headers: &HeaderMap, csrf: &str) -> Result<LoginRow, Response> {
    if !login::same_origin(st, headers) {
        return Err(error_page(
            None,
            &ApiError::forbidden("admin forms must come from this server's own pages"),
        ));
    }
    match login::resolve(st, headers).await {
        Ok(Some((who, l))) if who.role == Role::Admin => {
            if login::csrf_ok(&l, csrf) {
                Ok(l)
            } else {
                Err(error_page(None, &ApiError::forbidden("the form's CSRF token does not match the login")))
            }
        }
        Ok(Some(_)) => Err(error_page(None, &ApiError::forbidden("the admin pages are for admins only"))),
        Ok(None) => Err(error_page(None, &ApiError::unauthorized("sign in as an admin first"))),
        Err(e) => Err(error_page(None, &e)),
    }
}

fn nav() -> Markup {
    html! {
        nav.admin {
            a href="/admin/tokens" { "Tokens" } " · " a href="/admin/users" { "Users" } " · "
            a href="/admin/audit" { "Audit of reviewers" }
        }
    }
}

fn when(ms: Option<i64>) -> String {
    ms.map(rfc3339).unwrap_or_else(|| "never".into())
}

/// The CSRF field every form carries (the login's token; empty for a token reader, whose posts are refused).
fn csrf_field(v: &Viewer) -> Markup {
    let token = v.login.as_ref().map(|l| l.csrf.as_str()).unwrap_or("");
    html! { input type="hidden" name="csrf" value=(token); }
}

/// Records an admin action in the audit (kind `admin: ...`, the token or user acted on in place of a
/// session). Never the token or the password themselves.
async fn audit_action(st: &AppState, admin: &str, target: &str, what: &str) -> Result<(), Response> {
    st.meta
        .view_insert(now_ms(), admin, Role::Admin, target, &format!("admin: {what}"))
        .await
        .map_err(|e| error_page(None, &e.into()))
}

/// `GET /admin`.
pub async fn index(State(st): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let v = match admin(&st, &headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let main = html! {
        h1 { "Admin" }
        (nav())
        ul {
            li { a href="/admin/tokens" { "Tokens" } ": hosts' and reviewers' tokens, when each was last used; create, revoke" }
            li { a href="/admin/users" { "Users" } ": who signs in to the web UI, with which role; add, reset a password, remove" }
            li { a href="/admin/audit" { "Audit of reviewers" } ": every view and download of a session, and every admin action" }
        }
    };
    layout::page(Some(&v), "Admin", main, html! {}).into_response()
}

/// `GET /admin/tokens`.
pub async fn tokens(State(st): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let v = match admin(&st, &headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    tokens_page(&st, &v, None).await
}

/// The tokens page; `created` is a token just made, shown this once (the answer is never cached).
async fn tokens_page(st: &AppState, v: &Viewer, created: Option<(&str, &str)>) -> Response {
    let rows = match st.meta.token_list().await {
        Ok(r) => r,
        Err(e) => return error_page(Some(v), &e.into()),
    };
    let main = html! {
        h1 { "Tokens" }
        (nav())
        @if let Some((name, token)) = created {
            div.created #created role="status" {
                p { "Token " strong { (name) } " created. Copy it now: it is shown this once, and only its hash is kept." }
                p { code #new-token { (token) } }
            }
        }
        div.tablewrap { table #tokens {
            thead { tr { th { "Name" } th { "Role" } th { "Host" } th { "Created (UTC)" } th { "Last seen (UTC)" }
                th { "Status" } th {} } }
            tbody { @for t in &rows {
                tr data-name=(t.name) {
                    td.name { (t.name) } td.role { (t.role.as_str()) } td.host { (t.host.as_deref().unwrap_or("")) }
                    td { (rfc3339(t.created_at)) } td.seen { (when(t.last_seen)) }
                    td.status { @if let Some(at) = t.revoked_at { "revoked " (rfc3339(at)) } @else { "active" } }
                    td { @if t.revoked_at.is_none() {
                        form method="post" action="/admin/tokens/revoke" {
                            (csrf_field(v))
                            input type="hidden" name="name" value=(t.name);
                            button type="submit" class="revoke" { "Revoke" }
                        }
                    } }
                }
            } }
        } }
        @if rows.is_empty() { p { "No token yet." } }
        h2 { "Create a token" }
        form.addtoken #addtoken method="post" action="/admin/tokens" {
            (csrf_field(v))
            label { "Name " input type="text" name="name" id="token-name" required maxlength="128"; }
            label { "Role " select name="role" id="token-role" {
                option value="host" { "host" } option value="viewer" { "viewer" }
                option value="auditor" { "auditor" } option value="admin" { "admin" }
            } }
            label { "Host (host tokens; default: the name) " input type="text" name="host" id="token-host" maxlength="253"; }
            button type="submit" id="create-token" { "Create" }
        }
    };
    let mut res = layout::page(Some(v), "Tokens", main, html! {}).into_response();
    if created.is_some() {
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

#[derive(Deserialize, Default)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    host: String,
}

/// `POST /admin/tokens` (`csrf`, `name`, `role`, `host`): the rules of `token create`; answers the tokens
/// page with the new token shown once (never logged, never stored: only its SHA-256). 400 on a bad field
/// (named), 409 when the name is taken.
pub async fn create_token(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    form: FormResult<TokenForm>,
) -> Response {
    let f = form.map(|Form(f)| f).unwrap_or_default();
    let l = match admin_form(&st, &headers, &f.csrf).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let Some(role) = Role::parse(&f.role) else {
        return error_page(None, &ApiError::bad_request("role: expected host, viewer, auditor or admin"));
    };
    if f.name.is_empty() || f.name.len() > 128 || f.name.chars().any(char::is_control) {
        return error_page(None, &ApiError::bad_request("name: 1-128 printable characters"));
    }
    let host = f.host.trim();
    if !host.is_empty() && role != Role::Host {
        return error_page(None, &ApiError::bad_request("host: only host tokens have a host"));
    }
    if host.len() > 253 || host.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return error_page(None, &ApiError::bad_request("host: a host name (no spaces, at most 253 bytes)"));
    }
    let host = (role == Role::Host).then(|| if host.is_empty() { f.name.clone() } else { host.to_string() });
    let token = new_token();
    match st.meta.token_insert(&f.name, role, host.as_deref(), &token_hash(&token), now_ms()).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            return error_page(
                None,
                &ApiError::conflict(format!("a token named {:?} already exists", f.name)),
            )
        }
        Err(e) => return error_page(None, &e.into()),
    }
    tracing::info!(admin = %l.user, token = %f.name, role = role.as_str(), "token created in the web UI");
    if let Err(r) = audit_action(&st, &l.user, &f.name, &format!("token created ({})", role.as_str())).await {
        return r;
    }
    let v = match admin(&st, &headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    tokens_page(&st, &v, Some((&f.name, &token))).await
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

type FormResult<T> = Result<Form<T>, axum::extract::rejection::FormRejection>;

/// `POST /admin/tokens/revoke` (`csrf`, `name`): 303 back to the list; 404 when no active token has the name.
pub async fn revoke_token(
    State(st): State<AppState>,
    headers: HeaderMap,
    form: FormResult<NameForm>,
) -> Response {
    let f = form.map(|Form(f)| f).unwrap_or(NameForm { csrf: String::new(), name: String::new() });
    let l = match admin_form(&st, &headers, &f.csrf).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    match st.meta.token_revoke(&f.name, now_ms()).await {
        Ok(true) => {
            st.host_tokens.forget_all();
            tracing::info!(admin = %l.user, token = %f.name, "token revoked in the web UI");
            if let Err(r) = audit_action(&st, &l.user, &f.name, "token revoked").await {
                return r;
            }
            Redirect::to("/admin/tokens").into_response()
        }
        Ok(false) => error_page(None, &ApiError::not_found(format!("no active token named {:?}", f.name))),
        Err(e) => error_page(None, &e.into()),
    }
}

/// `GET /admin/users`.
pub async fn users(State(st): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let v = match admin(&st, &headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let rows = match st.meta.user_list().await {
        Ok(r) => r,
        Err(e) => return error_page(Some(&v), &e.into()),
    };
    let main = html! {
        h1 { "Users" }
        (nav())
        div.tablewrap { table #users {
            thead { tr { th { "Name" } th { "Role" } th { "E-mail" } th { "Signs in with" } th {} } }
            tbody { @for u in &rows {
                tr data-name=(u.name) {
                    td.name { (u.name) } td.role { (u.role.as_str()) } td.email { (u.email.as_deref().unwrap_or("")) }
                    td.kind { @if u.password == SSO_PASSWORD { "single sign-on" } @else { "password" } }
                    td.actions {
                        @if u.password != SSO_PASSWORD {
                            form.reset method="post" action="/admin/users/password" {
                                (csrf_field(&v))
                                input type="hidden" name="name" value=(u.name);
                                label { "New password " input type="password" name="password" class="new-password"
                                    autocomplete="new-password" required minlength="8"; }
                                button type="submit" class="reset" { "Reset password" }
                            }
                        }
                        @if u.name != v.who.name {
                            form method="post" action="/admin/users/remove" {
                                (csrf_field(&v))
                                input type="hidden" name="name" value=(u.name);
                                button type="submit" class="remove" { "Remove" }
                            }
                        }
                    }
                }
            } }
        } }
        h2 { "Add a user" }
        form.adduser #adduser method="post" action="/admin/users" {
            (csrf_field(&v))
            label { "Name " input type="text" name="name" id="new-name" required maxlength="128"; }
            label { "Role " select name="role" id="new-role" {
                option value="viewer" { "viewer" } option value="auditor" { "auditor" } option value="admin" { "admin" }
            } }
            label { "Password " input type="password" name="password" id="new-password" autocomplete="new-password"
                required minlength="8"; }
            label { "E-mail (optional) " input type="email" name="email" id="new-email" maxlength="254"; }
            button type="submit" id="add" { "Add" }
        }
    };
    layout::page(Some(&v), "Users", main, html! {}).into_response()
}

#[derive(Deserialize)]
pub struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
    /// Optional: per-session grants naming this e-mail let the user open those sessions.
    #[serde(default)]
    email: String,
}

/// `POST /admin/users` (`csrf`, `name`, `role`, `password`, optional `email`): the rules of `user add`; 303 back to the list,
/// 400 on a bad field (named), 409 when the name is taken.
pub async fn add_user(State(st): State<AppState>, headers: HeaderMap, form: FormResult<AddForm>) -> Response {
    let f = form.map(|Form(f)| f).unwrap_or(AddForm {
        csrf: String::new(),
        name: String::new(),
        role: String::new(),
        password: String::new(),
        email: String::new(),
    });
    let l = match admin_form(&st, &headers, &f.csrf).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let Some(role) = Role::parse(&f.role).filter(|r| *r != Role::Host) else {
        return error_page(None, &ApiError::bad_request("role: expected viewer, auditor or admin"));
    };
    if !valid_user_name(&f.name) {
        return error_page(None, &ApiError::bad_request("name: 1-128 printable characters, no ':'"));
    }
    if f.password.chars().count() < 8 {
        return error_page(None, &ApiError::bad_request("password: at least 8 characters"));
    }
    let email = Some(f.email.trim()).filter(|e| !e.is_empty());
    if email.is_some_and(|e| !crate::auth::valid_email(e)) {
        return error_page(None, &ApiError::bad_request("email: an address like name@example.com, or empty"));
    }
    let pw = f.password;
    let hash = match tokio::task::spawn_blocking(move || hash_password(&pw)).await {
        Ok(Ok(h)) => h,
        _ => return error_page(None, &ApiError::unavailable("hashing the password failed")),
    };
    match st.meta.user_insert(&f.name, role, &hash, email, now_ms()).await {
        Ok(()) => {
            tracing::info!(admin = %l.user, user = %f.name, role = role.as_str(), "user added in the web UI");
            if let Err(r) =
                audit_action(&st, &l.user, &f.name, &format!("user added ({})", role.as_str())).await
            {
                return r;
            }
            Redirect::to("/admin/users").into_response()
        }
        Err(StoreError::Conflict(_)) => {
            error_page(None, &ApiError::conflict(format!("user {:?} already exists", f.name)))
        }
        Err(e) => error_page(None, &e.into()),
    }
}

/// `POST /admin/users/remove` (`csrf`, `name`): removes the user and ends their logins (and live streams);
/// an admin cannot remove themselves here (no locking the last admin out by a click).
pub async fn remove_user(
    State(st): State<AppState>,
    headers: HeaderMap,
    form: FormResult<NameForm>,
) -> Response {
    let f = form.map(|Form(f)| f).unwrap_or(NameForm { csrf: String::new(), name: String::new() });
    let l = match admin_form(&st, &headers, &f.csrf).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    if f.name == l.user {
        return error_page(
            None,
            &ApiError::bad_request("you cannot remove yourself (use `ddcoterm-server user remove`)"),
        );
    }
    let removed = async {
        let removed = st.meta.user_remove(&f.name).await?;
        st.meta.logins_delete_user(&f.name).await?;
        Ok::<_, StoreError>(removed)
    };
    match removed.await {
        Ok(true) => {
            tracing::info!(admin = %l.user, user = %f.name, "user removed in the web UI");
            if let Err(r) = audit_action(&st, &l.user, &f.name, "user removed").await {
                return r;
            }
            Redirect::to("/admin/users").into_response()
        }
        Ok(false) => error_page(None, &ApiError::not_found(format!("no user {:?}", f.name))),
        Err(e) => error_page(None, &e.into()),
    }
}

#[derive(Deserialize, Default)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

/// `POST /admin/users/password` (`csrf`, `name`, `password`): sets a password user's new password and ends
/// their logins (and live streams); 303 back to the list, 400 on a short password or a single sign-on user,
/// 404 for no such user.
pub async fn reset_password(
    State(st): State<AppState>,
    headers: HeaderMap,
    form: FormResult<PasswordForm>,
) -> Response {
    let f = form.map(|Form(f)| f).unwrap_or_default();
    let l = match admin_form(&st, &headers, &f.csrf).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    if f.password.chars().count() < 8 {
        return error_page(None, &ApiError::bad_request("password: at least 8 characters"));
    }
    match st.meta.user_get(&f.name).await {
        Ok(Some(u)) if u.password == SSO_PASSWORD => {
            return error_page(None, &ApiError::bad_request("name: this user signs in with single sign-on"))
        }
        Ok(Some(_)) => {}
        Ok(None) => return error_page(None, &ApiError::not_found(format!("no user {:?}", f.name))),
        Err(e) => return error_page(None, &e.into()),
    }
    let pw = f.password;
    let hash = match tokio::task::spawn_blocking(move || hash_password(&pw)).await {
        Ok(Ok(h)) => h,
        _ => return error_page(None, &ApiError::unavailable("hashing the password failed")),
    };
    let done = async {
        let set = st.meta.user_set_password(&f.name, &hash).await?;
        // The old password's logins end with it, except the admin's own (they are changing it now).
        if f.name != l.user {
            st.meta.logins_delete_user(&f.name).await?;
        }
        Ok::<_, StoreError>(set)
    };
    match done.await {
        Ok(true) => {
            tracing::info!(admin = %l.user, user = %f.name, "password reset in the web UI");
            if let Err(r) = audit_action(&st, &l.user, &f.name, "password reset").await {
                return r;
            }
            Redirect::to("/admin/users").into_response()
        }
        Ok(false) => error_page(None, &ApiError::not_found(format!("no user {:?}", f.name))),
        Err(e) => error_page(None, &e.into()),
    }
}

#[derive(Deserialize)]
pub struct AuditQuery {
    before: Option<i64>,
    /// Only this session (or, for admin actions, this token or user).
    session: Option<String>,
    /// Only what this person did.
    who: Option<String>,
}

/// `GET /admin/audit?before=ID`: views and downloads, newest first, [`AUDIT_PAGE`] a page.
pub async fn audit(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let v = match admin(&st, &headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Ok(Query(q)) = q else {
        return error_page(Some(&v), &ApiError::bad_request("before: expected an audit entry number"));
    };
    let session = q.session.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let who = q.who.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let rows = match st.meta.views(session, who, q.before, AUDIT_PAGE).await {
        Ok(r) => r,
        Err(e) => return error_page(Some(&v), &e.into()),
    };
    let older = (rows.len() == AUDIT_PAGE as usize).then(|| rows.last().map(|r| r.id)).flatten();
    let mut keep = String::new();
    for (k, val) in [("session", session), ("who", who)] {
        if let Some(val) = val {
            keep.push_str(&format!("&{k}={}", encode(val)));
        }
    }
    let main = html! {
        h1 { "Audit of reviewers" }
        (nav())
        form.filters #audit-filters method="get" action="/admin/audit" {
            label { "Session (or token, user) " input type="text" name="session" id="f-session" value=(session.unwrap_or("")); }
            label { "Who " input type="text" name="who" id="f-who" value=(who.unwrap_or("")); }
            button type="submit" id="f-apply" { "Apply" }
            a href="/admin/audit" { "Clear" }
        }
        div.tablewrap { table #audit {
            thead { tr { th { "When (UTC)" } th { "Who" } th { "Role" } th { "Session" } th { "What" } } }
            tbody { @for r in &rows {
                tr data-id=(r.id) {
                    td.at { (rfc3339(r.at)) } td.who { (r.viewer) } td.role { (r.role) }
                    td.session {
                        @if r.kind.starts_with("admin: ") { code { (r.session_id) } }
                        @else { a href=(format!("/sessions/{}", encode(&r.session_id))) { code { (r.session_id) } } }
                    }
                    td.kind { (r.kind) }
                }
            } }
        } }
        @if rows.is_empty() { p #empty { "Nothing viewed yet." } }
        @if let Some(id) = older { p.pages { a #older href=(format!("/admin/audit?before={id}{keep}")) { "Older →" } } }
    };
    layout::page(Some(&v), "Audit of reviewers", main, html! {}).into_response()
}
