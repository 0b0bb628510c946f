//! The Case Management HTTP adapter against answers the shared fake does not give: case types with their own
//! statuses (`status_name`), the approver's comment from the case timeline, responder filtering of incidents,
//! and the creation fallback for case types without `PENDING_APPROVAL`.

use ddcoterm::approval::http::HttpCaseApi;
use ddcoterm::approval::{CaseApi, UserRef};
use ddcoterm::datadog::{Client, ClientOptions, Secret, Site};
use serde_json::{json, Value};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ME: &str = "u-requester";

struct Server {
    rt: tokio::runtime::Runtime,
    server: MockServer,
}

impl Server {
    fn start() -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let server = rt.block_on(MockServer::start());
        Server { rt, server }
    }
    fn mount(&self, m: Mock) {
        self.rt.block_on(m.mount(&self.server));
    }
    fn api(&self) -> HttpCaseApi {
        let site = Site::resolve(&self.server.uri(), 443).unwrap();
        let client = Client::new(
            site,
            Some(Secret::new("k".repeat(32))),
            Some(Secret::new("a".repeat(40))),
            ClientOptions::default(),
        )
        .unwrap();
        HttpCaseApi::new(client)
    }
    fn received(&self) -> Vec<wiremock::Request> {
        self.rt.block_on(self.server.received_requests()).unwrap_or_default()
    }
}

fn jsonapi(v: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(v.to_string().into_bytes(), "application/vnd.api+json")
}

#[test]
fn case_status_name_and_approver_from_included_users() {
    let s = Server::start();
    s.mount(Mock::given(method("GET")).and(path("/api/v2/cases/c-1")).respond_with(jsonapi(json!({
        "data": {"id": "c-1", "type": "case",
                 "attributes": {"key": "OPS-4", "status": "OPEN", "status_name": "Approved"},
                 "relationships": {"modified_by": {"data": {"id": "u-bob", "type": "user"}}}},
        "included": [{"id": "u-bob", "type": "user", "attributes": {"handle": "bob@example.com"}}]
    }))));
    let c = s.api().get_case("c-1").unwrap();
    assert_eq!((c.key.as_str(), c.status.as_str()), ("OPS-4", "APPROVED"), "status_name wins, upper-cased");
    assert_eq!(c.modified_by.as_deref(), Some("u-bob"));
    assert_eq!(c.modified_by_name.as_deref(), Some("bob@example.com"));
    assert!(c.link.ends_with("/cases/OPS-4"), "{}", c.link);
}

#[test]
fn approvers_latest_comment_comes_from_the_timeline() {
    let s = Server::start();
    s.mount(Mock::given(method("GET")).and(path("/api/v2/cases/c-1/timelines")).respond_with(jsonapi(json!({
        "data": [
            {"id": "1", "type": "timeline_cell", "attributes": {"type": "COMMENT", "created_at": "2026-11-25T18:00:00Z",
              "author": {"type": "USER", "content": {"id": "u-bob"}}, "cell_content": {"message": "first thought"}}},
            {"id": "2", "type": "timeline_cell", "attributes": {"type": "COMMENT", "created_at": "2026-11-25T18:05:00Z",
              "author": {"type": "USER", "content": {"id": "u-bob"}}, "cell_content": {"message": "no rollback plan"}}},
            {"id": "3", "type": "timeline_cell", "attributes": {"type": "COMMENT", "created_at": "2026-11-25T18:09:00Z",
              "author": {"type": "USER", "content": {"id": ME}}, "cell_content": {"message": "please?"}}},
            {"id": "4", "type": "timeline_cell", "attributes": {"type": "STATUS_CHANGE", "created_at": "2026-11-25T18:10:00Z",
              "author": {"type": "USER", "content": {"id": "u-bob"}}, "cell_content": {"message": "DECLINED"}}}
        ]
    }))));
    assert_eq!(s.api().approver_comment("c-1", ME).unwrap().as_deref(), Some("no rollback plan"));
}

#[test]
fn no_timeline_endpoint_means_no_comment_not_an_error() {
    let s = Server::start();
    assert_eq!(s.api().approver_comment("c-1", ME).unwrap(), None);
}

#[test]
fn incidents_are_kept_to_those_the_user_responds_to() {
    let s = Server::start();
    let inc = |id: &str, n: u64, rel: Value| {
        json!({"data": {"id": id, "type": "incidents",
                        "attributes": {"title": format!("incident {n}"), "public_id": n, "severity": "SEV-2"},
                        "relationships": rel}})
    };
    s.mount(Mock::given(method("GET")).and(path("/api/v2/incidents/search")).respond_with(jsonapi(json!({
        "data": {"type": "incidents_search_results", "attributes": {"incidents": [
            inc("i-1", 1, json!({"commander_user": {"data": {"id": ME, "type": "users"}}})),
            inc("i-2", 2, json!({"commander_user": {"data": {"id": "u-other", "type": "users"}}})),
            inc("i-3", 3, json!({"responders": {"data": [{"id": ME, "type": "users"}]}})),
        ], "total": 3}}
    }))));
    let got = s.api().active_incidents(&UserRef { id: ME.into(), handle: "me@example.com".into() }).unwrap();
    let ids: Vec<&str> = got.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["i-1", "i-3"]);
    assert_eq!(got[0].label(), "#1 (SEV-2) incident 1");
    let q = s.received()[0].url.query().unwrap_or_default().to_string();
    assert!(q.contains("query=state%3Aactive"), "{q}");
}

#[test]
fn creation_falls_back_when_the_case_type_has_no_pending_approval_status() {
    let s = Server::start();
    s.mount(
        Mock::given(method("POST"))
            .and(path("/api/v2/cases"))
            .and(body_partial_json(json!({"data": {"attributes": {"status_name": "PENDING_APPROVAL"}}})))
            .respond_with(
                ResponseTemplate::new(400).set_body_raw(
                    json!({"errors": [{"title": "Bad Request", "detail": "unknown status"}]})
                        .to_string()
                        .into_bytes(),
                    "application/vnd.api+json",
                ),
            )
            .with_priority(1),
    );
    s.mount(Mock::given(method("POST")).and(path("/api/v2/cases")).respond_with(jsonapi(json!({
        "data": {"id": "c-9", "type": "case", "attributes": {"key": "OPS-9", "status": "OPEN"}}
    }))));
    let c = s.api().create_case("p-1", "t", "d").unwrap();
    assert_eq!(c.key, "OPS-9");
    let posts: Vec<Value> = s
        .received()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(posts.len(), 2);
    assert!(posts[1]["data"]["attributes"].get("status_name").is_none());
    assert_eq!(posts[1]["data"]["attributes"]["type_id"], "00000000-0000-0000-0000-000000000001");
}
