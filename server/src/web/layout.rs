//! The frame of every page: head (our stylesheet, the page's scripts), the top bar with the signed-in user
//! and the sign-out form (carrying the login's CSRF token), the footer with the player's licence notice.

use axum::response::Html;
use maud::{html, Markup, DOCTYPE};

use super::assets;
use super::Viewer;

/// A whole page. `head` adds stylesheets or scripts (always external files: the CSP forbids inline script).
pub fn page(v: Option<&Viewer>, title: &str, main: Markup, head: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · ddcoterm" }
                    link rel="stylesheet" href=(assets::url("app.css"));
                    (head)
                }
                body {
                    header.top {
                        a.brand href="/" { "ddcoterm" }
                        @if let Some(v) = v {
                            nav {
                                span.who { (v.who.name) " (" (v.who.role.as_str()) ")" }
                                @if v.who.role == crate::store::Role::Admin { a #admin href="/admin" { "Admin" } }
                                @if let Some(l) = &v.login {
                                    form method="post" action="/logout" {
                                        input type="hidden" name="csrf" value=(l.csrf);
                                        button type="submit" id="signout" { "Sign out" }
                                    }
                                }
                            }
                        }
                    }
                    main { (main) }
                    footer {
                        "Player: asciinema-player 3.12.1, Apache License 2.0 ("
                        a href=(assets::LICENSE_PATH) { "notice" } ")."
                    }
                }
            }
        }
        .into_string(),
    )
}
