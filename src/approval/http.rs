//! [`CaseApi`] over the one Datadog client: JSON:API bodies for cases, comments, status and incidents.

use super::api::{ApiFailure, CaseApi, CaseInfo, Incident, UserRef};
use crate::datadog::payload::path_segment;
use crate::datadog::{Api, ApiError, Client, Method, Request, Retry};
use serde_json::{json, Value};

/// The built-in "Standard" case type (Datadog's `type_id` for cases that are not of a custom type).
pub const STANDARD_CASE_TYPE_ID: &str = "00000000-0000-0000-0000-000000000001";
/// Status set at creation: approvers filter on it.
pub const PENDING_STATUS: &str = "PENDING_APPROVAL";

/// Case Management through [`Client`]; every call sends the application key (cases act as a user).
pub struct HttpCaseApi {
    client: Client,
}

impl HttpCaseApi {
    pub fn new(client: Client) -> HttpCaseApi {
        HttpCaseApi { client }
    }

    fn call(&self, method: Method, path: String, body: Option<Value>) -> Result<Value, ApiFailure> {
        let req = Request {
            api: Api::Api,
            method,
            path,
            content_type: "application/json",
            gzip: false,
            app_key: true,
            body: body.map(|b| serde_json::to_vec(&b).unwrap_or_default()).unwrap_or_default(),
        };
        let resp = self.client.send(&req).map_err(failure)?;
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        resp.json().map_err(failure)
    }

    fn case_link(&self, key: &str) -> String {
        format!("{}/cases/{}", self.client.site().app, key)
    }

    fn parse_case(&self, v: &Value) -> Result<CaseInfo, ApiFailure> {
        let data = v.get("data").ok_or_else(|| ApiFailure::permanent("case response without `data`"))?;
        let id = data.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        if id.is_empty() {
            return Err(ApiFailure::permanent("case response without `data.id`"));
        }
        let attr =
            |k: &str| data.pointer(&format!("/attributes/{k}")).and_then(Value::as_str).map(str::to_string);
        let key = attr("key").unwrap_or_else(|| id.clone());
        let status = attr("status_name").or_else(|| attr("status")).unwrap_or_default().to_ascii_uppercase();
        let modified_by =
            data.pointer("/relationships/modified_by/data/id").and_then(Value::as_str).map(str::to_string);
        let modified_by_name = modified_by.as_deref().and_then(|uid| included_user_name(v, uid));
        Ok(CaseInfo {
            link: self.case_link(&key),
            id,
            key,
            status,
            modified_by,
            modified_by_name,
            title: attr("title").unwrap_or_default(),
            description: attr("description").unwrap_or_default(),
            modified_at: attr("modified_at"),
        })
    }
}

/// Maps the client's error (already classified by status) to the flow's.
fn failure(e: ApiError) -> ApiFailure {
    let status = e.status();
    match e.retry() {
        Retry::Later { after } => {
            ApiFailure { msg: e.to_string(), retry_later: true, retry_after: after, status }
        }
        Retry::Never => ApiFailure { msg: e.to_string(), retry_later: false, retry_after: None, status },
    }
}

/// `handle`/`name` of a user in a JSON:API `included` array.
fn included_user_name(v: &Value, uid: &str) -> Option<String> {
    v.get("included")?.as_array()?.iter().find(|i| i.get("id").and_then(Value::as_str) == Some(uid)).and_then(
        |u| {
            ["handle", "name", "email"]
                .iter()
                .find_map(|k| {
                    u.pointer(&format!("/attributes/{k}")).and_then(Value::as_str).filter(|s| !s.is_empty())
                })
                .map(str::to_string)
        },
    )
}

/// The identities (handle, else e-mail, else name) of every user an incident's relationships name (commander,
/// responders...), looked up in the `included` users of the search answer or of the incident item itself;
/// ids that are not included are left out (a bare Datadog id names nobody on the session server).
fn responders(answer: &Value, item: &Value, rels: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    user_ids(rels, &mut ids);
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if let Some(n) = included_user_name(item, &id).or_else(|| included_user_name(answer, &id)) {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// Ids of the `{"id", "type": "users"}` objects anywhere inside `v`.
fn user_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if o.get("type").and_then(Value::as_str).is_some_and(|t| t == "users" || t == "user") {
                if let Some(id) = o.get("id").and_then(Value::as_str) {
                    if !out.iter().any(|x| x == id) {
                        out.push(id.to_string());
                    }
                }
            }
            o.values().for_each(|x| user_ids(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| user_ids(x, out)),
        _ => {}
    }
}

/// True when `needle` is any string value inside `v` (responder and commander relationships nest ids).
fn mentions(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => s == needle,
        Value::Array(a) => a.iter().any(|x| mentions(x, needle)),
        Value::Object(o) => o.values().any(|x| mentions(x, needle)),
        _ => false,
    }
}

impl CaseApi for HttpCaseApi {
    fn current_user(&self) -> Result<UserRef, ApiFailure> {
        let u = self.client.current_user().map_err(failure)?;
        if u.id.is_empty() {
            return Err(ApiFailure::permanent("GET /api/v2/current_user returned no user id"));
        }
        Ok(UserRef { id: u.id, handle: u.handle })
    }

    fn first_project(&self) -> Result<Option<String>, ApiFailure> {
        let v = self.call(Method::Get, "/api/v2/cases/projects".into(), None)?;
        Ok(v.get("data")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|p| p.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    fn create_case(&self, project_id: &str, title: &str, description: &str) -> Result<CaseInfo, ApiFailure> {
        let body = json!({
            "data": {
                "type": "case",
                "attributes": {
                    "title": title,
                    "type_id": STANDARD_CASE_TYPE_ID,
                    "description": description,
                    "priority": "NOT_DEFINED",
                    "status_name": PENDING_STATUS,
                },
                "relationships": {
                    "project": { "data": { "id": project_id, "type": "project" } }
                }
            }
        });
        let v = match self.call(Method::Post, "/api/v2/cases".into(), Some(body.clone())) {
            Err(e) if e.status == Some(400) => {
                // The case type may not define PENDING_APPROVAL: file it in its default status instead.
                let mut plain = body;
                if let Some(a) = plain.pointer_mut("/data/attributes").and_then(Value::as_object_mut) {
                    a.remove("status_name");
                }
                tracing::info!(
                    "creating the case with status_name {PENDING_STATUS} failed ({e}); retrying without it"
                );
                self.call(Method::Post, "/api/v2/cases".into(), Some(plain))?
            }
            other => other?,
        };
        self.parse_case(&v)
    }

    fn get_case(&self, id: &str) -> Result<CaseInfo, ApiFailure> {
        let v = self.call(Method::Get, format!("/api/v2/cases/{}", path_segment(id)), None)?;
        self.parse_case(&v)
    }

    fn user_handles(&self, id: &str) -> Result<Vec<String>, ApiFailure> {
        let v = self.call(Method::Get, format!("/api/v2/users/{}", path_segment(id)), None)?;
        Ok(["handle", "email"]
            .iter()
            .filter_map(|k| v.pointer(&format!("/data/attributes/{k}")).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect())
    }

    fn approver_comment(&self, id: &str, requester_id: &str) -> Result<Option<String>, ApiFailure> {
        let v = match self.call(Method::Get, format!("/api/v2/cases/{}/timelines", path_segment(id)), None) {
            Ok(v) => v,
            // Older sites have no timeline endpoint: the refusal still stands, without its comment.
            Err(e) if e.status == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut best: Option<(String, String)> = None;
        for cell in v.get("data").and_then(Value::as_array).into_iter().flatten() {
            let a = cell.get("attributes").unwrap_or(&Value::Null);
            let kind = a.get("type").and_then(Value::as_str).unwrap_or("COMMENT");
            if !kind.eq_ignore_ascii_case("comment") {
                continue;
            }
            let author = a
                .pointer("/author/content/id")
                .or_else(|| a.pointer("/author/id"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if author == requester_id {
                continue;
            }
            let Some(msg) = a
                .pointer("/cell_content/message")
                .or_else(|| a.get("message"))
                .and_then(Value::as_str)
                .filter(|m| !m.trim().is_empty())
            else {
                continue;
            };
            let at = a.get("created_at").and_then(Value::as_str).unwrap_or_default().to_string();
            if best.as_ref().is_none_or(|(t, _)| at > *t) {
                best = Some((at, msg.trim().to_string()));
            }
        }
        Ok(best.map(|(_, m)| m))
    }

    fn set_status(&self, id: &str, status: &str) -> Result<(), ApiFailure> {
        let path = format!("/api/v2/cases/{}/status", path_segment(id));
        let body = json!({ "data": { "type": "case", "attributes": { "status_name": status } } });
        match self.call(Method::Post, path.clone(), Some(body)) {
            // The case type has no such status (the built-in one knows OPEN, IN_PROGRESS, CLOSED): close it,
            // which every type allows; the comment posted before says why.
            Err(e) if e.status == Some(400) && status != "CLOSED" => {
                let body = json!({ "data": { "type": "case", "attributes": { "status": "CLOSED" } } });
                self.call(Method::Post, path, Some(body)).map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }

    fn comment(&self, id: &str, text: &str) -> Result<(), ApiFailure> {
        let body = json!({ "data": { "type": "case", "attributes": { "comment": text } } });
        self.call(Method::Post, format!("/api/v2/cases/{}/comment", path_segment(id)), Some(body)).map(|_| ())
    }

    fn active_incidents(&self, user: &UserRef) -> Result<Vec<Incident>, ApiFailure> {
        let v = self.call(
            Method::Get,
            "/api/v2/incidents/search?query=state%3Aactive&include=users&page%5Bsize%5D=100".into(),
            None,
        )?;
        let list =
            v.pointer("/data/attributes/incidents").and_then(Value::as_array).cloned().unwrap_or_default();
        // Responders are known from each incident's relationships (commander, responders). A response that
        // carries no relationships at all cannot say who responds: then every active incident is offered.
        let known = list.iter().any(|i| i.get("data").unwrap_or(i).get("relationships").is_some());
        let mut out = Vec::new();
        for item in &list {
            let inc = item.get("data").unwrap_or(item);
            let rels = inc.get("relationships").unwrap_or(&Value::Null);
            let mine = mentions(rels, &user.id) || (!user.handle.is_empty() && mentions(rels, &user.handle));
            if known && !mine {
                continue;
            }
            let a = inc.get("attributes").unwrap_or(&Value::Null);
            let Some(id) = inc.get("id").and_then(Value::as_str) else { continue };
            out.push(Incident {
                id: id.to_string(),
                public_id: a.get("public_id").and_then(Value::as_u64),
                title: a.get("title").and_then(Value::as_str).unwrap_or("(untitled)").to_string(),
                severity: a.get("severity").and_then(Value::as_str).map(str::to_string),
                responders: responders(&v, item, rels),
            });
        }
        Ok(out)
    }

    fn link_incident(&self, case_id: &str, incident_id: &str) -> Result<(), ApiFailure> {
        let body = json!({ "data": { "id": incident_id, "type": "incidents" } });
        self.call(
            Method::Post,
            format!("/api/v2/cases/{}/relationships/incidents", path_segment(case_id)),
            Some(body),
        )
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_finds_nested_ids() {
        let rels = json!({"commander_user": {"data": {"id": "u1", "type": "users"}},
                          "responders": {"data": [{"id": "u2", "type": "users"}]}});
        assert!(mentions(&rels, "u1") && mentions(&rels, "u2"));
        assert!(!mentions(&rels, "u3"));
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("COTERM-12"), "COTERM-12");
        assert_eq!(path_segment("../x?y"), "..%2Fx%3Fy");
    }

    #[test]
    fn responders_come_from_included_users() {
        let answer = json!({"included": [
            {"id": "u1", "type": "users", "attributes": {"handle": "lead@example.com"}},
            {"id": "u2", "type": "users", "attributes": {"email": "ops@example.com"}}]});
        let rels = json!({"commander_user": {"data": {"id": "u1", "type": "users"}},
                          "responders": {"data": [{"id": "u2", "type": "users"}, {"id": "u3", "type": "users"},
                                                  {"id": "u1", "type": "users"}]},
                          "teams": {"data": [{"id": "t1", "type": "teams"}]}});
        assert_eq!(responders(&answer, &json!({}), &rels), ["lead@example.com", "ops@example.com"]);
    }

    #[test]
    fn included_user_names_are_found() {
        let v =
            json!({"included": [{"id": "u9", "type": "user", "attributes": {"handle": "bob@example.com"}}]});
        assert_eq!(included_user_name(&v, "u9").as_deref(), Some("bob@example.com"));
        assert_eq!(included_user_name(&v, "u1"), None);
    }
}
