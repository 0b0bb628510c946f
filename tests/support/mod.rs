//! A wiremock fake of the Datadog endpoints ddcoterm uses (DESIGN.md §6), with fault injection and decoders.
//!
//! Use from any `tests/*.rs` with `mod support;`. The fake owns its tokio runtime, so tests stay synchronous
//! (ddcoterm's blocking client must not run inside an async runtime):
//! ```ignore
//! let fake = support::Fake::start();
//! fake.fail_next([support::Fault::Status(503)]);
//! // ... run ddcoterm with connection_config.host = fake.uri() ...
//! let events = fake.accepted_path_prefix("/api/v1/events");
//! ```
//! Recordings go to the session server, never to Datadog: tests that check uploads start the REAL
//! `ddcoterm-server` (`server.rs`).
#![allow(dead_code)]

pub mod certs;
pub mod server;

use flate2::read::GzDecoder;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::{matchers::any, Mock, MockServer, Request, Respond, ResponseTemplate};

/// The API key the fake accepts (anything else: 403).
pub const API_KEY: &str = "fakeapikey0123456789abcdef0000001";
/// The application key the fake accepts on v2 user-scoped endpoints.
pub const APP_KEY: &str = "fakeappkey0123456789abcdef00000000000002";
/// `id` of the user behind [`APP_KEY`] (the requester, for approval tests).
pub const CURRENT_USER_ID: &str = "00000000-0000-0000-0000-00000000a11c";

const JSON: &str = "application/json";
const JSONAPI: &str = "application/vnd.api+json";

/// An injected failure for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer with this status and a Datadog error body.
    Status(u16),
    /// 429 with Datadog's rate-limit headers; `reset_secs` in `X-RateLimit-Reset`.
    RateLimited { reset_secs: u64 },
    /// Hold the answer (a 503) this long: longer than the client timeout, it is a timeout.
    Delay(Duration),
    /// 403 as for a revoked key.
    BadKey,
}

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Lower-case header names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// The status the fake answered.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
    /// The body, gunzipped when `Content-Encoding: gzip`.
    pub fn decoded(&self) -> Vec<u8> {
        if self.header("content-encoding") == Some("gzip") {
            gunzip(&self.body)
        } else {
            self.body.clone()
        }
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.decoded()).unwrap_or(Value::Null)
    }
    /// The log entries of a `POST /api/v2/logs`.
    pub fn logs(&self) -> Vec<Value> {
        serde_json::from_slice(&self.decoded()).unwrap_or_default()
    }
}

pub fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(b).read_to_end(&mut out).expect("valid gzip");
    out
}

/// A URL on a port where nothing listens (connection refused).
pub fn closed_port_uri() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    pub key: String,
    pub title: String,
    pub description: String,
    pub status: String,
    pub project_id: String,
    pub created_by: String,
    pub modified_by: String,
    /// RFC 3339; set when the case is created and whenever its status changes.
    pub modified_at: String,
    pub comments: Vec<String>,
    pub incidents: Vec<String>,
}

#[derive(Default)]
struct Faults {
    queue: VecDeque<Fault>,
    random: Option<(f64, rand::rngs::StdRng, Vec<Fault>)>,
}

#[derive(Default)]
struct State {
    log: Vec<Received>,
    faults: Faults,
    cases: Vec<Case>,
    /// (id, title, responders' handles): with responders, the search answer names them (relationships and
    /// included users) and lists the requester as commander.
    incidents: Vec<(String, String, Vec<String>)>,
    events: u64,
}

/// The running fake.
pub struct Fake {
    rt: tokio::runtime::Runtime,
    server: MockServer,
    state: Arc<Mutex<State>>,
}

impl Fake {
    pub fn start() -> Fake {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let server = rt.block_on(async {
            let s = MockServer::start().await;
            Mock::given(any()).respond_with(Handler { state: state.clone() }).mount(&s).await;
            s
        });
        Fake { rt, server, state }
    }

    /// `http://127.0.0.1:PORT`: use as `connection_config.host`.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The next requests fail with these faults, in order.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.lock().unwrap().faults.queue.extend(faults);
    }

    /// Each request fails with probability `rate`, with a fault picked from `choices` (seeded: reproducible).
    pub fn fail_randomly(&self, rate: f64, seed: u64, choices: Vec<Fault>) {
        self.state.lock().unwrap().faults.random =
            Some((rate, rand::rngs::StdRng::seed_from_u64(seed), choices));
    }

    pub fn stop_failing(&self) {
        let mut s = self.state.lock().unwrap();
        s.faults = Faults::default();
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        self.state.lock().unwrap().log.clone()
    }

    /// Requests answered 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.requests().into_iter().filter(|r| (200..300).contains(&r.status)).collect()
    }

    pub fn accepted_path_prefix(&self, prefix: &str) -> Vec<Received> {
        self.accepted().into_iter().filter(|r| r.path.starts_with(prefix)).collect()
    }

    pub fn cases(&self) -> Vec<Case> {
        self.state.lock().unwrap().cases.clone()
    }
    /// Moves a case as if `by_user` changed it in the UI (approvers are anyone but [`CURRENT_USER_ID`]).
    pub fn set_case_status(&self, id_or_key: &str, status: &str, by_user: &str) {
        let mut s = self.state.lock().unwrap();
        let c = s.cases.iter_mut().find(|c| c.id == id_or_key || c.key == id_or_key).expect("case exists");
        c.status = status.into();
        c.modified_by = by_user.into();
        c.modified_at = now_rfc3339();
    }
    /// Adds an active incident (`incidents/search` returns it).
    pub fn add_incident(&self, title: &str) -> String {
        let mut s = self.state.lock().unwrap();
        let id = format!("00000000-0000-0000-0000-{:012}", s.incidents.len() + 1);
        s.incidents.push((id.clone(), title.to_string(), Vec::new()));
        id
    }
    /// Adds an active incident commanded by the requester, with these responders (handles).
    pub fn add_incident_with_responders(&self, title: &str, responders: &[&str]) -> String {
        let mut s = self.state.lock().unwrap();
        let id = format!("00000000-0000-0000-0000-{:012}", s.incidents.len() + 1);
        s.incidents.push((id.clone(), title.to_string(), responders.iter().map(|r| r.to_string()).collect()));
        id
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        // Let the server shut down inside its runtime.
        let _ = &self.rt;
    }
}

struct Handler {
    state: Arc<Mutex<State>>,
}

fn err(status: u16, msg: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(json!({ "errors": [msg] }).to_string().into_bytes(), JSON)
}

fn jsonapi_err(status: u16, title: &str, detail: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(
        json!({ "errors": [{ "status": status.to_string(), "title": title, "detail": detail }] })
            .to_string()
            .into_bytes(),
        JSONAPI,
    )
}

fn ok(status: u16, v: Value, ct: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_raw(v.to_string().into_bytes(), ct)
        .insert_header("X-RateLimit-Limit", "1000")
        .insert_header("X-RateLimit-Period", "60")
        .insert_header("X-RateLimit-Remaining", "999")
        .insert_header("X-RateLimit-Reset", "60")
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap()
}

fn case_json(c: &Case) -> Value {
    json!({
        "data": {
            "id": c.id,
            "type": "case",
            "attributes": {
                "key": c.key,
                "title": c.title,
                "description": c.description,
                "status": c.status,
                "priority": "NOT_DEFINED",
                "type": "STANDARD",
                "created_at": "2026-11-25T18:00:00.000Z",
                "modified_at": c.modified_at,
            },
            "relationships": {
                "created_by": { "data": { "id": c.created_by, "type": "user" } },
                "modified_by": { "data": { "id": c.modified_by, "type": "user" } },
                "project": { "data": { "id": c.project_id, "type": "project" } },
            }
        }
    })
}

impl Respond for Handler {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.state.lock().unwrap();
        let headers: BTreeMap<String, String> = req
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let mut rec = Received {
            method: req.method.to_string(),
            path: req.url.path().to_string(),
            query: req.url.query().map(str::to_string),
            headers,
            body: req.body.clone(),
            status: 0,
        };
        let (status, resp) = route(&mut st, &rec);
        rec.status = status;
        st.log.push(rec);
        resp
    }
}

fn pick_fault(st: &mut State) -> Option<Fault> {
    if let Some(f) = st.faults.queue.pop_front() {
        return Some(f);
    }
    let (rate, rng, choices) = st.faults.random.as_mut()?;
    if choices.is_empty() || rng.random::<f64>() >= *rate {
        return None;
    }
    let i = rng.random_range(0..choices.len());
    Some(choices[i].clone())
}

fn route(st: &mut State, r: &Received) -> (u16, ResponseTemplate) {
    if let Some(f) = pick_fault(st) {
        return match f {
            Fault::Status(s) => (s, err(s, "injected failure")),
            Fault::RateLimited { reset_secs } => (
                429,
                err(429, "Too many requests")
                    .insert_header("X-RateLimit-Limit", "100")
                    .insert_header("X-RateLimit-Period", "10")
                    .insert_header("X-RateLimit-Remaining", "0")
                    .insert_header("X-RateLimit-Reset", reset_secs.to_string().as_str())
                    .insert_header("X-RateLimit-Name", "fake"),
            ),
            Fault::Delay(d) => (503, err(503, "slow").set_delay(d)),
            Fault::BadKey => (403, err(403, "Forbidden")),
        };
    }
    if r.header("dd-api-key") != Some(API_KEY) {
        return (403, err(403, "Forbidden"));
    }
    let needs_app = r.path.starts_with("/api/v2/cases")
        || r.path.starts_with("/api/v2/incidents")
        || r.path.starts_with("/api/v2/users/")
        || r.path == "/api/v2/current_user";
    if needs_app && r.header("dd-application-key") != Some(APP_KEY) {
        return (403, err(403, "Forbidden"));
    }
    let body = r.decoded();
    let segs: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    let json_body = || serde_json::from_slice::<Value>(&body).ok();
    match (r.method.as_str(), segs.as_slice()) {
        ("GET", ["api", "v2", "users", id]) => {
            let handle = if *id == CURRENT_USER_ID {
                "requester@example.com".to_string()
            } else {
                format!("{id}@example.com")
            };
            (
                200,
                ok(
                    200,
                    json!({ "data": { "type": "users", "id": id, "attributes": {
                        "handle": handle, "email": handle, "name": id, "status": "Active" } } }),
                    JSONAPI,
                ),
            )
        }
        ("GET", ["api", "v1", "validate"]) => (200, ok(200, json!({ "valid": true }), JSON)),
        ("GET", ["api", "v2", "current_user"]) => (
            200,
            ok(
                200,
                json!({ "data": { "type": "users", "id": CURRENT_USER_ID, "attributes": {
                    "handle": "requester@example.com", "email": "requester@example.com", "name": "Requester",
                    "status": "Active", "disabled": false } } }),
                JSONAPI,
            ),
        ),
        ("POST", ["api", "v1", "events"]) => {
            let Some(v) = json_body() else { return (400, err(400, "Payload is not valid JSON")) };
            if v.get("title").and_then(Value::as_str).unwrap_or_default().is_empty()
                || v.get("text").is_none()
            {
                return (400, err(400, "Event title and text are required"));
            }
            st.events += 1;
            let mut ev = v.clone();
            ev["id"] = json!(st.events);
            (202, ok(202, json!({ "status": "ok", "event": ev }), JSON))
        }
        ("POST", ["api", "v2", "logs"]) => {
            if body.len() > 5 * 1000 * 1000 {
                return (413, err(413, "Payload too large"));
            }
            match serde_json::from_slice::<Vec<Value>>(&body) {
                Ok(items) if items.len() <= 1000 => (202, ok(202, json!({}), JSON)),
                Ok(_) => (400, err(400, "Too many log entries in one payload (max 1000)")),
                Err(_) => (400, err(400, "Malformed payload")),
            }
        }
        ("GET", ["api", "v2", "cases", "projects"]) => (
            200,
            ok(
                200,
                json!({ "data": [ { "id": "d4bbe1af-0000-0000-0000-0000000000c7", "type": "project",
                "attributes": { "key": "CT", "name": "CoTerm approvals" } } ] }),
                JSONAPI,
            ),
        ),
        ("POST", ["api", "v2", "cases"]) => {
            let Some(v) = json_body() else { return (400, jsonapi_err(400, "Bad Request", "invalid JSON")) };
            let a = &v["data"]["attributes"];
            let title = a["title"].as_str().unwrap_or_default().to_string();
            let project =
                v["data"]["relationships"]["project"]["data"]["id"].as_str().unwrap_or_default().to_string();
            if v["data"]["type"] != "case" || title.is_empty() || project.is_empty() {
                return (
                    400,
                    jsonapi_err(
                        400,
                        "Bad Request",
                        "data.type case, attributes.title and relationships.project are required",
                    ),
                );
            }
            let n = st.cases.len() + 1;
            let c = Case {
                id: format!("00000000-0000-0000-cafe-{n:012}"),
                key: format!("CT-{n}"),
                title,
                description: a["description"].as_str().unwrap_or_default().to_string(),
                status: "OPEN".into(),
                project_id: project,
                created_by: CURRENT_USER_ID.into(),
                modified_by: CURRENT_USER_ID.into(),
                modified_at: now_rfc3339(),
                comments: Vec::new(),
                incidents: Vec::new(),
            };
            let out = case_json(&c);
            st.cases.push(c);
            (201, ok(201, out, JSONAPI))
        }
        (m, ["api", "v2", "cases", id, rest @ ..]) => {
            let Some(c) = st.cases.iter_mut().find(|c| c.id == *id || c.key == *id) else {
                return (404, jsonapi_err(404, "Not Found", "case not found"));
            };
            match (m, rest) {
                ("GET", []) => (200, ok(200, case_json(c), JSONAPI)),
                ("POST", ["status"]) => {
                    let s = json_body()
                        .and_then(|v| v["data"]["attributes"]["status"].as_str().map(str::to_string));
                    match s.as_deref() {
                        Some("OPEN" | "IN_PROGRESS" | "CLOSED") => {
                            c.status = s.unwrap_or_default();
                            c.modified_by = CURRENT_USER_ID.into();
                            c.modified_at = now_rfc3339();
                            (200, ok(200, case_json(c), JSONAPI))
                        }
                        _ => (
                            400,
                            jsonapi_err(400, "Bad Request", "status must be OPEN, IN_PROGRESS or CLOSED"),
                        ),
                    }
                }
                ("POST", ["comment"]) => {
                    let Some(text) = json_body()
                        .and_then(|v| v["data"]["attributes"]["comment"].as_str().map(str::to_string))
                    else {
                        return (400, jsonapi_err(400, "Bad Request", "data.attributes.comment is required"));
                    };
                    c.comments.push(text.clone());
                    let out = json!({ "data": [ { "id": format!("comment-{}", c.comments.len()), "type": "timeline_cell",
                        "attributes": { "type": "COMMENT", "cell_content": { "message": text } } } ] });
                    (200, ok(200, out, JSONAPI))
                }
                ("POST", ["relationships", "incidents"]) => {
                    let Some(inc) = json_body().and_then(|v| v["data"]["id"].as_str().map(str::to_string))
                    else {
                        return (400, jsonapi_err(400, "Bad Request", "data.id (incident) is required"));
                    };
                    c.incidents.push(inc);
                    (200, ok(200, case_json(c), JSONAPI))
                }
                _ => (404, jsonapi_err(404, "Not Found", "no such endpoint")),
            }
        }
        ("GET", ["api", "v2", "incidents", "search"]) => {
            let q = r.query.clone().unwrap_or_default();
            if !q.contains("query=") {
                return (400, jsonapi_err(400, "Bad Request", "query is required"));
            }
            let mut included = Vec::new();
            let incidents: Vec<Value> = st
                .incidents
                .iter()
                .enumerate()
                .map(|(i, (id, title, responders))| {
                    let mut data = json!({ "id": id, "type": "incidents",
                        "attributes": { "title": title, "state": "active", "public_id": i + 1 } });
                    if !responders.is_empty() {
                        let ids: Vec<Value> = responders
                            .iter()
                            .enumerate()
                            .map(|(j, handle)| {
                                let uid = format!("resp-{i}-{j}");
                                included.push(json!({ "id": uid, "type": "users",
                                    "attributes": { "handle": handle, "email": handle } }));
                                json!({ "id": uid, "type": "users" })
                            })
                            .collect();
                        data["relationships"] = json!({
                            "commander_user": { "data": { "id": CURRENT_USER_ID, "type": "users" } },
                            "responders": { "data": ids },
                        });
                    }
                    json!({ "data": data })
                })
                .collect();
            let total = incidents.len();
            (
                200,
                ok(
                    200,
                    json!({ "data": { "type": "incidents_search_results",
                "attributes": { "incidents": incidents, "total": total } }, "included": included }),
                    JSONAPI,
                ),
            )
        }
        _ => (404, err(404, "Not found")),
    }
}

/// An isolated installation (the one world of `tests/harness`; every test binary that uses this module also
/// declares `mod harness;`), with a user config pointing at a fake (or anywhere).
pub struct Home {
    pub world: crate::harness::World,
}

impl Home {
    pub fn new() -> Home {
        Home { world: crate::harness::World::new() }
    }
    /// Writes the organisation's `config.yaml` ([`crate::harness::World::system_config`]: plus
    /// `connection_config.allow_loopback: true`, which the fake on 127.0.0.1 needs).
    pub fn system_config(&self, text: &str) -> &Home {
        self.world.system_config(text);
        self
    }
    /// The temp dir the installation lives in (free for a test's own files; the commands' working dir).
    pub fn root(&self) -> &std::path::Path {
        self.world.root()
    }
    /// `DDCOTERM_HOME`: the user config, recordings, spool, audit log.
    pub fn home(&self) -> std::path::PathBuf {
        self.world.ddhome()
    }
    /// The user's `HOME` (rc files).
    pub fn user_home(&self) -> std::path::PathBuf {
        self.world.home()
    }
    pub fn system(&self) -> std::path::PathBuf {
        self.world.system()
    }
    pub fn spool(&self) -> std::path::PathBuf {
        self.home().join("spool")
    }
    /// Writes `~/.ddcoterm/config.yaml` (0600) with host, API key and app key, plus `extra` YAML.
    pub fn config(&self, host: &str, api_key: &str, extra: &str) -> &Home {
        self.world.user_config(&format!(
            "connection_config:\n  host: {host}\n  api_key: {api_key}\n  app_key: {APP_KEY}\n{extra}"
        ));
        self
    }
    /// The configuration as a command would load it.
    pub fn loaded(&self) -> ddcoterm::config::Loaded {
        let opts = ddcoterm::config::LoadOptions { dirs: self.world.dirs(), sets: Vec::new() };
        ddcoterm::config::load(&opts).expect("config loads")
    }
    /// The ddcoterm binary in this world ([`crate::harness::World::apply`]).
    pub fn cmd(&self) -> std::process::Command {
        let mut c = self.world.ddcoterm(&[]);
        // A detached flusher would race the tests' own `spool flush`; tests that want one turn it back on.
        c.env("DDCOTERM_SPOOL__BACKGROUND_FLUSH", "false");
        c
    }
    /// Every byte under the spool dir (for leak checks).
    pub fn spool_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in walk(&self.spool()) {
            out.extend(std::fs::read(e).unwrap_or_default());
        }
        out
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// True when `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}
