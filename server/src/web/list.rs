//! `/`: the session list, newest first, with the read API's filters as a GET form, full-text search with the
//! matched words highlighted, cursor pages, and live rows kept current by `list.js`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ddcoterm_wire::SessionInfo;
use maud::{html, Markup};

use super::{assets, encode, error_page, layout, viewer};
use crate::api::read::{encode_cursor, filter, infos};
use crate::error::ApiError;
use crate::state::AppState;

/// The form's values as read API parameters: empty fields dropped, `datetime-local` values (no offset) read
/// as UTC. Unknown fields stay, so the API's own "unknown query parameter" error names them.
pub fn api_params(raw: &[(String, String)]) -> Vec<(String, String)> {
    raw.iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| {
            let v = v.trim().to_string();
            let v = match k.as_str() {
                "since" | "until" if v.len() == 16 && v.as_bytes().get(10) == Some(&b'T') => {
                    format!("{v}:00Z")
                }
                "since" | "until" if v.len() == 19 && v.as_bytes().get(10) == Some(&b'T') => format!("{v}Z"),
                _ => v,
            };
            (k.clone(), v)
        })
        .collect()
}

fn query_string(params: &[(String, String)]) -> String {
    params.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

pub async fn page(
    State(st): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let v = match viewer(&st, &headers, &uri).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let raw = match query {
        Ok(Query(q)) => q,
        Err(e) => return error_page(Some(&v), &ApiError::bad_request(format!("query: {e}"))),
    };
    let params = api_params(&raw);
    let value = |k: &str| raw.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or("");
    let (rows, next, error) = match filter(&v.who, params.clone()) {
        Ok(f) => match st.meta.session_list(&f).await {
            Ok(rows) => {
                let next = (rows.len() == f.limit as usize).then(|| rows.last().map(encode_cursor)).flatten();
                match infos(&st, &rows, &f.q).await {
                    Ok(infos) => (infos, next, None),
                    Err(e) => return error_page(Some(&v), &e),
                }
            }
            Err(e) => return error_page(Some(&v), &e.into()),
        },
        Err(e) => (Vec::new(), None, Some(e)),
    };
    let terms: Vec<String> =
        crate::search::parse_query(value("q")).unwrap_or_default().into_iter().flatten().collect();
    let q = value("q").trim().to_string();
    let without_cursor: Vec<(String, String)> =
        params.iter().filter(|(k, _)| k != "cursor").cloned().collect();
    let first_page = !params.iter().any(|(k, _)| k == "cursor");
    let older = next.map(|c| {
        let mut more = without_cursor.clone();
        more.push(("cursor".to_string(), c));
        format!("/?{}", query_string(&more))
    });
    let main = html! {
        h1 { "Sessions" }
        form.filters method="get" action="/" id="filters" {
            label.search { "Search " input type="search" name="q" id="q" value=(value("q"))
                placeholder="words or \"a phrase\" in output and commands"; }
            label { "User " input type="text" name="user" value=(value("user")); }
            label { "Host " input type="text" name="host" value=(value("host")); }
            label { "Command " input type="text" name="command" id="command" value=(value("command")); }
            label { "Exit " input type="number" name="exit" value=(value("exit")); }
            label { "Rule " input type="text" name="rule" id="rule" value=(value("rule")); }
            (yes_no_select("Approval", "approval", value("approval"), "approved", "not approved"))
            (yes_no_select("Break glass", "break_glass", value("break_glass"), "yes", "no"))
            label { "State "
                select name="state" id="state" {
                    @for s in ["", "live", "complete", "abandoned"] {
                        option value=(s) selected[value("state") == s] { (if s.is_empty() { "any" } else { s }) }
                    }
                }
            }
            label { "From (UTC) " input type="datetime-local" name="since" value=(value("since")); }
            label { "To (UTC) " input type="datetime-local" name="until" value=(value("until")); }
            button type="submit" id="apply" { "Apply" }
            a href="/" { "Clear" }
        }
        @if let Some(e) = &error { p.error id="filter-error" role="alert" { (e.message) } }
        div.tablewrap {
            table #sessions data-api-query=(query_string(&without_cursor)) data-first-page=(first_page) {
                thead { tr {
                    th { "User" } th { "Host" } th { "Command" } th { "Start (UTC)" } th { "Duration" }
                    th { "Exit" } th { "Rule" } th { "Approval" } th { "Break glass" } th { "State" }
                } }
                tbody {
                    @for s in &rows { (row(s, &terms, &q)) }
                }
            }
        }
        @if rows.is_empty() && error.is_none() { p #empty { "No session matches." } }
        @if let Some(href) = &older {
            p.pages { a #older href=(href) { "Older sessions →" } }
        }
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let head = html! { script src=(assets::url("list.js")) defer {} };
    (status, layout::page(Some(&v), "Sessions", main, head)).into_response()
}

/// A filter that is any / yes / no (the API's `yes`/`no`), with the current choice selected.
fn yes_no_select(label: &str, name: &str, current: &str, yes: &str, no: &str) -> Markup {
    html! {
        label { (label) " "
            select name=(name) id=(name) {
                @for (v, text) in [("", "any"), ("yes", yes), ("no", no)] {
                    option value=(v) selected[current == v] { (text) }
                }
            }
        }
    }
}

/// One row. With a search, the link opens the session at the match (`?t=` its time in the output, when the
/// index has it, and `?q=`), the command shows the matched words marked, and an output match its words.
fn row(s: &SessionInfo, terms: &[String], q: &str) -> Markup {
    let href = match (&s.search_match, q.is_empty()) {
        (_, true) => format!("/sessions/{}", s.id),
        (Some(m), false) => format!("/sessions/{}?t={:.3}&q={}", s.id, m.t, encode(q)),
        (None, false) => format!("/sessions/{}?q={}", s.id, encode(q)),
    };
    let command = s.command.as_deref().unwrap_or("");
    let in_command = terms.iter().any(|t| find_ci(command, t, 0).is_some());
    html! {
        tr data-id=(s.id) data-state=(s.state) {
            td.user { (s.user.as_deref().unwrap_or("?")) }
            td.host { (s.host) }
            td.command {
                a.open href=(href) { code { (highlight(command, terms)) } }
                @if let Some(m) = &s.search_match {
                    br;
                    small.match {
                        a.at href=(href) { "at " (clock(m.t)) } ": " span.snippet { (highlight(&m.snippet, terms)) }
                    }
                } @else if !q.is_empty() && !in_command {
                    br; small.match { "match in the output: opens at it" }
                }
            }
            td.start { (s.started_at.as_deref().map(short_time).unwrap_or_default()) }
            td.duration { (duration(s)) }
            td.exit { (s.exit_status.map(|e| e.to_string()).unwrap_or_default()) }
            td.rule { (s.rule.as_deref().unwrap_or("")) }
            td.approval { (approval(s)) }
            td.breakglass { @if s.break_glass { span.badge.warn { "break glass" } } }
            td.state { span class=(format!("badge state-{}", s.state)) { (s.state) } }
        }
    }
}

/// The approval case: the create's `approval`, else an `approval_case:` tag.
pub fn approval(s: &SessionInfo) -> String {
    s.approval
        .clone()
        .or_else(|| s.tags.iter().find_map(|t| t.strip_prefix("approval_case:").map(str::to_string)))
        .unwrap_or_default()
}

/// `2026-01-01T10:00:00Z` -> `2026-01-01 10:00:00`.
pub fn short_time(t: &str) -> String {
    t.replacen('T', " ", 1).trim_end_matches('Z').chars().take(19).collect()
}

fn parse(t: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
}

/// Start to end (or to the last thing received while live), `1h 02m 03s`.
pub fn duration(s: &SessionInfo) -> String {
    let start = s.started_at.as_deref().and_then(parse);
    let end = s.ended_at.as_deref().or(Some(s.last_activity.as_str())).and_then(parse);
    match (start, end) {
        (Some(a), Some(b)) if b >= a => {
            let secs = (b - a).whole_seconds();
            match secs {
                0..=59 => format!("{secs}s"),
                60..=3599 => format!("{}m {:02}s", secs / 60, secs % 60),
                _ => format!("{}h {:02}m {:02}s", secs / 3600, secs / 60 % 60, secs % 60),
            }
        }
        _ => String::new(),
    }
}

/// Seconds as `M:SS` (or `H:MM:SS`), as the player shows them.
fn clock(t: f64) -> String {
    let s = t.max(0.0) as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// ASCII-case-insensitive search of `word` in `text` from byte `from`.
fn find_ci(text: &str, word: &str, from: usize) -> Option<usize> {
    if word.is_empty() {
        return None;
    }
    (from..text.len()).find(|&i| {
        text.is_char_boundary(i) && text.get(i..i + word.len()).is_some_and(|s| s.eq_ignore_ascii_case(word))
    })
}

/// `text` with every occurrence of the search words in `<mark>`, all of it escaped.
pub fn highlight(text: &str, words: &[String]) -> Markup {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for w in words {
        let mut from = 0;
        while let Some(i) = find_ci(text, w, from) {
            spans.push((i, i + w.len()));
            from = i + w.len();
        }
    }
    spans.sort();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (a, b) in spans {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let mut parts: Vec<(&str, bool)> = Vec::new();
    let mut at = 0;
    for (a, b) in merged {
        parts.push((&text[at..a], false));
        parts.push((&text[a..b], true));
        at = b;
    }
    parts.push((&text[at..], false));
    html! {
        @for (t, marked) in parts {
            @if marked { mark { (t) } } @else { (t) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlighting_escapes_and_marks() {
        let m = highlight("<b>Deploy</b> web & deploy", &["deploy".to_string()]).into_string();
        assert_eq!(m, "&lt;b&gt;<mark>Deploy</mark>&lt;/b&gt; web &amp; <mark>deploy</mark>");
        assert_eq!(highlight("abc", &[]).into_string(), "abc");
    }

    #[test]
    fn form_values_become_api_parameters() {
        let raw =
            |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        assert_eq!(
            api_params(&raw(&[
                ("user", ""),
                ("since", "2026-01-02T03:04"),
                ("until", "2026-01-02T03:04:05Z")
            ])),
            raw(&[("since", "2026-01-02T03:04:00Z"), ("until", "2026-01-02T03:04:05Z")])
        );
    }
}
