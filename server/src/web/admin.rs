//! `/admin`: what admins manage in the UI (DESIGN.md §12 "admin manages tokens and users, in the UI too"):
//! the tokens (list, revoke), the users (list, add, remove), and the audit of reviewers (who viewed or
//! downloaded which session, when, newest first, in pages). Admins only (others 403); every form is same-origin
//! and carries the login's CSRF token; everything shown is escaped by maud like every page.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use serde::Deserialize;

use super::{encode, error_page, layout, viewer, Viewer};
use crate::auth::{hash_password, valid_user_name};
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
        .route("/admin/tokens", get(tokens))
        .route("/admin/tokens/revoke", post(revoke_token))
        .route("/admin/users", get(users).post(add_user))
        .route("/admin/users/remove", post(remove_user))
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
            li { a href="/admin/tokens" { "Tokens" } ": hosts' and reviewers' tokens, when each was last used; revoke" }
            li { a href="/admin/users" { "Users" } ": who signs in to the web UI, with which role; add, remove" }
            li { a href="/admin/audit" { "Audit of reviewers" } ": every view and download of a session" }
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
    let rows = match st.meta.token_list().await {
        Ok(r) => r,
        Err(e) => return error_page(Some(&v), &e.into()),
    };
    let main = html! {
        h1 { "Tokens" }
        (nav())
        p { "Create tokens with " code { "ddcoterm-server token create" } " (a token is shown once)." }
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
                            (csrf_field(&v))
                            input type="hidden" name="name" value=(t.name);
                            button type="submit" class="revoke" { "Revoke" }
                        }
                    } }
                }
            } }
        } }
        @if rows.is_empty() { p { "No token yet." } }
    };
    layout::page(Some(&v), "Tokens", main, html! {}).into_response()
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
            tracing::info!(admin = %l.user, token = %f.name, "token revoked in the web UI");
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
                    td { @if u.name != v.who.name {
                        form method="post" action="/admin/users/remove" {
                            (csrf_field(&v))
                            input type="hidden" name="name" value=(u.name);
                            button type="submit" class="remove" { "Remove" }
                        }
                    } }
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
            Redirect::to("/admin/users").into_response()
        }
        Ok(false) => error_page(None, &ApiError::not_found(format!("no user {:?}", f.name))),
        Err(e) => error_page(None, &e.into()),
    }
}

#[derive(Deserialize)]
pub struct AuditQuery {
    before: Option<i64>,
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
    let rows = match st.meta.views(None, q.before, AUDIT_PAGE).await {
        Ok(r) => r,
        Err(e) => return error_page(Some(&v), &e.into()),
    };
    let older = (rows.len() == AUDIT_PAGE as usize).then(|| rows.last().map(|r| r.id)).flatten();
    let main = html! {
        h1 { "Audit of reviewers" }
        (nav())
        div.tablewrap { table #audit {
            thead { tr { th { "When (UTC)" } th { "Who" } th { "Role" } th { "Session" } th { "What" } } }
            tbody { @for r in &rows {
                tr data-id=(r.id) {
                    td.at { (rfc3339(r.at)) } td.who { (r.viewer) } td.role { (r.role) }
                    td.session { a href=(format!("/sessions/{}", encode(&r.session_id))) { code { (r.session_id) } } }
                    td.kind { (r.kind) }
                }
            } }
        } }
        @if rows.is_empty() { p #empty { "Nothing viewed yet." } }
        @if let Some(id) = older { p.pages { a #older href=(format!("/admin/audit?before={id}")) { "Older →" } } }
    };
    layout::page(Some(&v), "Audit of reviewers", main, html! {}).into_response()
}
