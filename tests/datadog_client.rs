//! The client against the fake: headers, error classes and messages, rate limits, timeouts, approval endpoints.

mod harness;
mod support;

use ddcoterm::datadog::{Api, ApiError, Client, ClientOptions, Method, Request, Retry, Secret, Site};
use serde_json::json;
use std::time::Duration;
use support::{Fake, Fault, API_KEY, APP_KEY, CURRENT_USER_ID};

fn client(host: &str, api: &str, app: Option<&str>) -> Client {
    Client::new(
        Site::resolve(host, 443).unwrap(),
        Some(Secret::new(api)),
        app.map(Secret::new),
        ClientOptions { connect_timeout: Duration::from_secs(1), timeout: Duration::from_millis(300) },
    )
    .unwrap()
}

fn post(path: &str, body: serde_json::Value) -> Request {
    Request {
        api: Api::Api,
        method: Method::Post,
        path: path.into(),
        content_type: "application/json",
        gzip: false,
        app_key: true,
        body: serde_json::to_vec(&body).unwrap(),
    }
}

#[test]
fn loopback_host_forms_all_reach_the_one_server() {
    let fake = Fake::start();
    let port = fake.uri().rsplit(':').next().unwrap().to_string();
    for host in [fake.uri(), format!("127.0.0.1:{port}"), format!("http://localhost:{port}/")] {
        let c = client(&host, API_KEY, None);
        c.validate().unwrap_or_else(|e| panic!("{host}: {e}"));
        let r = Request { api: Api::Logs, ..Request::get(Api::Logs, "/api/v1/validate", false) };
        c.send(&r).unwrap();
    }
    let r = &fake.requests()[0];
    assert_eq!(r.header("dd-api-key"), Some(API_KEY));
    assert!(r.header("user-agent").unwrap().starts_with("ddcoterm/"));
}

#[test]
fn error_classes_and_server_messages() {
    let fake = Fake::start();
    let c = client(&fake.uri(), API_KEY, None);
    fake.fail_next([
        Fault::Status(503),
        Fault::RateLimited { reset_secs: 7 },
        Fault::BadKey,
        Fault::Status(413),
        Fault::Delay(Duration::from_secs(2)),
    ]);
    let get = || c.validate().unwrap_err();
    let e = get();
    assert!(matches!(e.retry(), Retry::Later { after: None }), "{e}");
    let e = get();
    assert_eq!(e.retry(), Retry::Later { after: Some(Duration::from_secs(7)) }, "{e}");
    let e = get();
    assert_eq!(e.retry(), Retry::Never);
    assert!(e.to_string().contains("HTTP 403: Forbidden"), "{e}");
    let e = get();
    assert_eq!((e.retry(), e.status()), (Retry::Never, Some(413)));
    let e = get();
    assert!(matches!(e, ApiError::Transport { timeout: true, .. }), "{e}");
    assert!(matches!(e.retry(), Retry::Later { .. }));
    let down = client(&support::closed_port_uri(), API_KEY, None).validate().unwrap_err();
    assert!(
        matches!(down.retry(), Retry::Later { .. }) && down.to_string().contains("cannot connect"),
        "{down}"
    );
    for e in [down.to_string(), format!("{down:?}")] {
        assert!(!e.contains(API_KEY));
    }
}

#[test]
fn wrong_key_is_forbidden_and_app_key_is_required_for_v2_user_endpoints() {
    let fake = Fake::start();
    let e = client(&fake.uri(), "nope-nope-nope-nope", None).validate().unwrap_err();
    assert_eq!(e.status(), Some(403));
    let e = client(&fake.uri(), API_KEY, None).current_user().unwrap_err();
    assert!(e.to_string().contains("application key"), "{e}");
    let u = client(&fake.uri(), API_KEY, Some(APP_KEY)).current_user().unwrap();
    assert_eq!(u.id, CURRENT_USER_ID);
    let e = client(&fake.uri(), API_KEY, Some("wrong-app-key-0000000000")).current_user().unwrap_err();
    assert_eq!(e.status(), Some(403));
}

/// The approval endpoints the approvals stream drives (shapes per DESIGN.md §6).
#[test]
fn fake_case_management_and_incidents_endpoints() {
    let fake = Fake::start();
    let c = client(&fake.uri(), API_KEY, Some(APP_KEY));
    let projects = c.send(&Request::get(Api::Api, "/api/v2/cases/projects", true)).unwrap().json().unwrap();
    let project = projects["data"][0]["id"].as_str().unwrap().to_string();
    let created = c
        .send(&post(
            "/api/v2/cases",
            json!({ "data": { "type": "case", "attributes": { "title": "Approve kubectl delete", "type_id": "00000000-0000-0000-0000-000000000001", "priority": "P3" },
                "relationships": { "project": { "data": { "id": project, "type": "project" } } } } }),
        ))
        .unwrap();
    assert_eq!(created.status, 201);
    let v = created.json().unwrap();
    let id = v["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["data"]["attributes"]["status"], "OPEN");
    assert_eq!(v["data"]["relationships"]["created_by"]["data"]["id"], CURRENT_USER_ID);
    let req = fake.requests().into_iter().find(|r| r.path == "/api/v2/cases").unwrap();
    assert_eq!(req.header("dd-application-key"), Some(APP_KEY));

    fake.set_case_status(&id, "APPROVED", "approver-1");
    let got = c.send(&Request::get(Api::Api, format!("/api/v2/cases/{id}"), true)).unwrap().json().unwrap();
    assert_eq!(got["data"]["attributes"]["status"], "APPROVED");
    assert_eq!(got["data"]["relationships"]["modified_by"]["data"]["id"], "approver-1");

    c.send(&post(
        &format!("/api/v2/cases/{id}/comment"),
        json!({ "data": { "type": "case", "attributes": { "comment": "ran it" } } }),
    ))
    .unwrap();
    let closed = c
        .send(&post(
            &format!("/api/v2/cases/{id}/status"),
            json!({ "data": { "type": "case", "attributes": { "status": "CLOSED" } } }),
        ))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(closed["data"]["attributes"]["status"], "CLOSED");
    let bad = c
        .send(&post(
            &format!("/api/v2/cases/{id}/status"),
            json!({ "data": { "attributes": { "status": "MAYBE" } } }),
        ))
        .unwrap_err();
    assert_eq!(bad.status(), Some(400));
    assert!(bad.to_string().contains("Bad Request: status must be"), "{bad}");

    let inc = fake.add_incident("db down");
    let found = c
        .send(&Request::get(Api::Api, "/api/v2/incidents/search?query=state%3Aactive", true))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(found["data"]["attributes"]["incidents"][0]["data"]["id"], inc);
    c.send(&post(
        &format!("/api/v2/cases/{id}/relationships/incidents"),
        json!({ "data": { "id": inc, "type": "incidents" } }),
    ))
    .unwrap();
    let case = &fake.cases()[0];
    assert_eq!((case.comments.len(), case.incidents.len()), (1, 1));
    let missing = c.send(&Request::get(Api::Api, "/api/v2/cases/does-not-exist", true)).unwrap_err();
    assert_eq!(missing.status(), Some(404));
}
