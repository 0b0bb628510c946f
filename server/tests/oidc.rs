//! Single sign-on against a real OpenID provider: django-oauth-toolkit's OIDC provider (PyPI, pinned in
//! scripts/server-tools.sh), a tiny Django project generated in the test's temp dir with an RSA key made at
//! test time, users, a group and two client applications, served by `runserver` on a free port.
//!
//! The provider is reached through a pass-through HTTP relay in this test (host header kept, so the provider's
//! own URLs name the relay): it lets a test swap the token endpoint's answer on the way back to
//! ddcoterm-server, the way a network attacker would, to show a tampered ID token and one issued to another
//! client are refused. Browsing is done by hand (cookie jar, redirects followed one by one), as a browser would.

mod support;
mod web_support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::blocking::Response;
use sha2::Digest as _;
use support::Server;

const CLIENT_ID: &str = "ddcoterm";
const CLIENT_SECRET: &str = "ddcoterm-client-secret";
const OTHER_ID: &str = "other-app";
const OTHER_SECRET: &str = "other-app-secret";
const OTHER_REDIRECT: &str = "http://127.0.0.1:9/other/callback";

/// The venv scripts/server-tools.sh fills (`make tools`): Django and django-oauth-toolkit.
fn provider_python() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = std::env::var_os("SERVER_VENV").map(PathBuf::from).unwrap_or(root.join(".build/server-venv"));
    let py = venv.join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import django, oauth2_provider"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(py)
    } else {
        Err(format!("{} cannot import django and oauth2_provider (run `make tools`)", py.display()))
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

const SETTINGS: &str = r#"
from pathlib import Path
BASE = Path(__file__).resolve().parent.parent
SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions", "oauth2_provider"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "idp.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE / "db.sqlite3"}}
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [BASE / "templates"],
              "APP_DIRS": True, "OPTIONS": {"context_processors": ["django.template.context_processors.request"]}}]
USE_TZ = True
LOGIN_URL = "/accounts/login/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # test speed only
OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": (BASE / "oidc.key").read_text(),
    "OIDC_ISS_ENDPOINT": (BASE / "issuer").read_text().strip(),
    "PKCE_REQUIRED": True,
    "SCOPES": {"openid": "OpenID Connect", "profile": "Profile", "email": "E-mail"},
    "OAUTH2_VALIDATOR_CLASS": "idp.validator.Validator",
}
"#;

const URLS: &str = r#"
from django.contrib.auth import views as auth
from django.urls import include, path
urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("accounts/login/", auth.LoginView.as_view()),
]
"#;

/// Puts the user name and the groups into the ID token whatever the scopes (the mapping under test).
const VALIDATOR: &str = r#"
from oauth2_provider.oauth2_validators import OAuth2Validator
class Validator(OAuth2Validator):
    oidc_claim_scope = None
    def get_additional_claims(self, request):
        u = request.user
        return {"preferred_username": u.username, "groups": sorted(g.name for g in u.groups.all())}
"#;

const LOGIN_TEMPLATE: &str = r#"<form method="post">{% csrf_token %}
{{ form.username }} {{ form.password }}<input type="hidden" name="next" value="{{ next }}">
<button type="submit">Sign in</button></form>"#;

/// Generates the key, migrates, and creates the users, the group and the applications. argv: our redirect URI.
const SETUP: &str = r#"
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "oidc.key"), "wb") as f:
    f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
os.environ["DJANGO_SETTINGS_MODULE"] = "idp.settings"
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth.models import Group, User
from oauth2_provider.models import Application
auditors = Group.objects.create(name="ddcoterm_auditors")
admins = Group.objects.create(name="ddcoterm_admins")
User.objects.create_user("ann", password="ann-pass").groups.add(auditors)
User.objects.create_user("bob", password="bob-pass")
User.objects.create_user("carol", password="carol-pass")
for cid, secret, redirect in [(sys.argv[1], sys.argv[2], sys.argv[3]), (sys.argv[4], sys.argv[5], sys.argv[6])]:
    Application.objects.create(name=cid, client_id=cid, client_secret=secret, redirect_uris=redirect,
        client_type=Application.CLIENT_CONFIDENTIAL, authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        algorithm=Application.RS256_ALGORITHM, skip_authorization=True)
"#;

/// What the relay does to the next token endpoint answer.
#[derive(Clone)]
enum Tamper {
    None,
    /// Rewrites the ID token's claims (groups -> the admin group), keeping the provider's signature.
    Claims,
    /// Answers with this body instead (a token response the provider issued to another client).
    Replace(String),
}

/// The provider (Django `runserver`) and the relay in front of it.
struct Provider {
    child: Child,
    dir: tempfile::TempDir,
    /// The relay's base URL: what ddcoterm-server and the "browser" talk to.
    url: String,
    tamper: Arc<Mutex<Tamper>>,
    _rt: tokio::runtime::Runtime,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    /// `redirect`: ddcoterm-server's callback URL, registered for our client; the relay listens on
    /// `relay_port` (the issuer ddcoterm-server was given).
    fn start(py: &Path, redirect: &str, relay_port: u16) -> Provider {
        let dir = tempfile::tempdir().unwrap();
        let django_port = free_port();
        let url = format!("http://127.0.0.1:{relay_port}");
        let idp = dir.path().join("idp");
        std::fs::create_dir_all(idp.join("../templates/registration")).unwrap();
        for (name, text) in
            [("__init__.py", ""), ("settings.py", SETTINGS), ("urls.py", URLS), ("validator.py", VALIDATOR)]
        {
            std::fs::write(idp.join(name), text).unwrap();
        }
        std::fs::write(dir.path().join("templates/registration/login.html"), LOGIN_TEMPLATE).unwrap();
        std::fs::write(dir.path().join("issuer"), format!("{url}/o")).unwrap();
        std::fs::write(dir.path().join("setup.py"), SETUP).unwrap();
        let out = Command::new(py)
            .arg(dir.path().join("setup.py"))
            .args([CLIENT_ID, CLIENT_SECRET, redirect, OTHER_ID, OTHER_SECRET, OTHER_REDIRECT])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "provider setup: {}", String::from_utf8_lossy(&out.stderr));
        let log = std::fs::File::create(dir.path().join("django.log")).unwrap();
        let child = Command::new(py)
            .args(["-m", "django", "runserver", "--noreload", "--nothreading"])
            .arg(format!("127.0.0.1:{django_port}"))
            .env("DJANGO_SETTINGS_MODULE", "idp.settings")
            .env("PYTHONPATH", dir.path())
            .current_dir(dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let tamper = Arc::new(Mutex::new(Tamper::None));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let relay = relay(format!("http://127.0.0.1:{django_port}"), tamper.clone());
        let listener = rt.block_on(tokio::net::TcpListener::bind(("127.0.0.1", relay_port))).unwrap();
        rt.spawn(async move { axum::serve(listener, relay).await });
        let p = Provider { child, dir, url, tamper, _rt: rt };
        let deadline = Instant::now() + Duration::from_secs(60);
        let discovery = format!("{}/o/.well-known/openid-configuration", p.url);
        while !web_support::http().get(&discovery).send().is_ok_and(|r| r.status() == 200) {
            assert!(Instant::now() < deadline, "the provider did not start: {}", p.log());
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("django.log")).unwrap_or_default()
    }

    fn tamper(&self, t: Tamper) {
        *self.tamper.lock().unwrap() = t;
    }
}

/// A pass-through relay to `upstream` (method, path, headers including Host, body), changing only token
/// endpoint answers as `tamper` says (then back to passing through).
fn relay(upstream: String, tamper: Arc<Mutex<Tamper>>) -> axum::Router {
    use axum::body::{to_bytes, Body};
    use axum::extract::Request;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    axum::Router::new().fallback(move |req: Request| {
        let (client, upstream, tamper) = (client.clone(), upstream.clone(), tamper.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = to_bytes(body, 1 << 20).await.unwrap();
            let pq = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
            let mut out = client.request(parts.method.clone(), format!("{upstream}{pq}")).body(body.to_vec());
            for (k, v) in &parts.headers {
                if !matches!(k.as_str(), "content-length" | "connection" | "transfer-encoding") {
                    out = out.header(k, v);
                }
            }
            let r = out.send().await.unwrap();
            let status = r.status();
            let headers = r.headers().clone();
            let mut bytes = r.bytes().await.unwrap().to_vec();
            if parts.method == "POST" && parts.uri.path() == "/o/token/" {
                let t = std::mem::replace(&mut *tamper.lock().unwrap(), Tamper::None);
                match t {
                    Tamper::None => {}
                    Tamper::Claims => bytes = tamper_claims(&bytes),
                    Tamper::Replace(b) => bytes = b.into_bytes(),
                }
            }
            let mut res = axum::response::Response::new(Body::from(bytes));
            *res.status_mut() = status;
            for (k, v) in &headers {
                if !matches!(k.as_str(), "content-length" | "connection" | "transfer-encoding") {
                    res.headers_mut().append(k, v.clone());
                }
            }
            res
        }
    })
}

/// The token response with its ID token's payload rewritten to claim the admin group (signature untouched).
fn tamper_claims(body: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut resp: serde_json::Value = serde_json::from_slice(body).unwrap();
    let token = resp["id_token"].as_str().unwrap().to_string();
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["groups"] = serde_json::json!(["ddcoterm_admins"]);
    let payload = b64.encode(serde_json::to_vec(&claims).unwrap());
    resp["id_token"] = format!("{}.{payload}.{}", parts[0], parts[2]).into();
    serde_json::to_vec(&resp).unwrap()
}

/// A browser by hand: one cookie jar for every 127.0.0.1 port (as browsers share cookies across ports),
/// redirects followed one at a time so each hop can be looked at.
#[derive(Default)]
struct Browser {
    jar: BTreeMap<String, String>,
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep(&mut self, r: &Response) {
        for sc in r.headers().get_all("set-cookie") {
            let sc = sc.to_str().unwrap();
            let (kv, attrs) = sc.split_once(';').unwrap_or((sc, ""));
            let (k, v) = kv.split_once('=').unwrap();
            if v.is_empty() || attrs.contains("Max-Age=0") {
                self.jar.remove(k.trim());
            } else {
                self.jar.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
    }

    fn get(&mut self, url: &str) -> Response {
        let r = web_support::http().get(url).header("cookie", self.cookie_header()).send().unwrap();
        self.keep(&r);
        r
    }

    fn post(&mut self, url: &str, origin: &str, pairs: &[(&str, &str)]) -> Response {
        let r = web_support::http()
            .post(url)
            .header("cookie", self.cookie_header())
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(web_support::form(pairs))
            .send()
            .unwrap();
        self.keep(&r);
        r
    }

    /// Follows redirects from `url` until a URL starting with `stop` (not fetched) or a non-redirect answer.
    fn follow(&mut self, mut url: String, stop: &str) -> Result<String, Box<Response>> {
        for _ in 0..10 {
            if url.starts_with(stop) {
                return Ok(url);
            }
            let r = self.get(&url);
            if !r.status().is_redirection() {
                return Err(Box::new(r));
            }
            url = absolute(&url, r.headers()["location"].to_str().unwrap());
        }
        panic!("too many redirects at {url}");
    }
}

fn absolute(base: &str, location: &str) -> String {
    url::Url::parse(base).unwrap().join(location).unwrap().to_string()
}

fn query(url: &str, key: &str) -> Option<String> {
    url::Url::parse(url).unwrap().query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

/// Signs in at the provider's own login form (Django's, with its CSRF token) as `user`.
fn provider_login(b: &mut Browser, p: &Provider, user: &str, password: &str) {
    let page = b.get(&format!("{}/accounts/login/", p.url)).text().unwrap();
    let token =
        page.split("name=\"csrfmiddlewaretoken\" value=\"").nth(1).unwrap().split('"').next().unwrap();
    let r = b.post(
        &format!("{}/accounts/login/", p.url),
        &p.url,
        &[("csrfmiddlewaretoken", token), ("username", user), ("password", password), ("next", "/")],
    );
    assert_eq!(r.status(), 302, "provider login as {user}: {}", r.text().unwrap_or_default());
}

/// ddcoterm-server with single sign-on configured for the provider at `issuer`.
fn server(dir: &Path, issuer: &str, default_role: &str) -> Server {
    let secret = dir.join("client-secret");
    std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).unwrap();
    Server::start_with(&[
        ("DDCOTERMD_OIDC__ISSUER", issuer),
        ("DDCOTERMD_OIDC__CLIENT_ID", CLIENT_ID),
        ("DDCOTERMD_OIDC__CLIENT_SECRET_FILE", secret.to_str().unwrap()),
        ("DDCOTERMD_OIDC__ROLES__DDCOTERM_AUDITORS", "auditor"),
        ("DDCOTERMD_OIDC__ROLES__DDCOTERM_ADMINS", "admin"),
        ("DDCOTERMD_OIDC__DEFAULT_ROLE", default_role),
    ])
}

/// Everything a test needs: the provider, ddcoterm-server (started first: its callback URL is registered at
/// the provider), and a browser.
struct Setup {
    p: Provider,
    s: Server,
    _secret_dir: tempfile::TempDir,
}

fn setup(default_role: &str) -> Option<Setup> {
    let py = match provider_python() {
        Ok(py) => py,
        Err(why) => {
            eprintln!("skipped: {why}");
            return None;
        }
    };
    // The issuer is the relay's URL, on a port reserved here: ddcoterm-server (which discovers lazily, at the
    // first sign-in) starts first, and its callback URL is then registered at the provider.
    let secret_dir = tempfile::tempdir().unwrap();
    let relay_port = free_port();
    let issuer = format!("http://127.0.0.1:{relay_port}/o");
    let s = server(secret_dir.path(), &issuer, default_role);
    let p = Provider::start(&py, &format!("{}/login/oidc/callback", s.url), relay_port);
    Some(Setup { p, s, _secret_dir: secret_dir })
}

/// Starts a sign-in at ddcoterm-server and follows it to the provider and back; returns the callback's answer
/// and the callback URL it was given.
fn sso(b: &mut Browser, st: &Setup, next: &str) -> (Response, String) {
    let start = format!("{}/login/oidc?next={}", st.s.url, next);
    let callback = b
        .follow(start, &format!("{}/login/oidc/callback", st.s.url))
        .unwrap_or_else(|r| panic!("the flow stopped at {}: {}", r.status(), r.text().unwrap_or_default()));
    (b.get(&callback), callback)
}

fn login_cookie(r: &Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("ddcoterm_login=") && !v.starts_with("ddcoterm_login=;"))
}

#[test]
fn code_flow_signs_in_maps_groups_to_roles_and_signs_out() {
    let Some(st) = setup("viewer") else { return };
    let mut b = Browser::default();
    provider_login(&mut b, &st.p, "ann", "ann-pass");

    // The sign-in page offers single sign-on; the start sends the browser to the provider with PKCE (S256),
    // a state and a nonce, and drops the state in a Lax cookie for the callback.
    let page = b.get(&format!("{}/login?next=/sessions/x", st.s.url)).text().unwrap();
    assert!(page.contains(r#"href="/login/oidc?next=%2Fsessions%2Fx""#), "{page}");
    let r = b.get(&format!("{}/login/oidc?next=/", st.s.url));
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with(&format!("{}/o/authorize/", st.p.url)), "{to}");
    assert_eq!(query(&to, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(query(&to, "client_id").as_deref(), Some(CLIENT_ID));
    assert!(query(&to, "nonce").is_some() && query(&to, "state").is_some(), "{to}");
    let sc: Vec<_> =
        r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert!(
        sc.iter().any(|c| c.starts_with("ddcoterm_oidc_state=")
            && c.contains("SameSite=Lax")
            && c.contains("HttpOnly")),
        "{sc:?}"
    );

    // Full flow: ann (group ddcoterm_auditors) becomes an auditor with a login cookie like a local user's.
    let (r, _) = sso(&mut b, &st, "/");
    assert_eq!(r.status(), 200);
    let cookie = login_cookie(&r).expect("a login cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let body = r.text().unwrap();
    assert!(body.contains("Signed in as ann (auditor)") && body.contains(r#"content="0;url=/""#), "{body}");
    let home = b.get(&format!("{}/", st.s.url));
    assert_eq!(home.status(), 200);
    let home = home.text().unwrap();
    assert!(home.contains("ann (auditor)"), "{home}");

    // The same cookie session as a local user: sign-out needs the CSRF token, and ends the login.
    let csrf = home.split(r#"name="csrf" value=""#).nth(1).unwrap().split('"').next().unwrap().to_string();
    let r = b.post(&format!("{}/logout", st.s.url), &st.s.url, &[("csrf", "wrong")]);
    assert_eq!(r.status(), 403);
    let r = b.post(&format!("{}/logout", st.s.url), &st.s.url, &[("csrf", &csrf)]);
    assert_eq!(r.status(), 303);
    assert_eq!(b.get(&format!("{}/", st.s.url)).status(), 303, "signed out: back to the sign-in page");

    // bob has no mapped group: the default role (viewer here).
    let mut b = Browser::default();
    provider_login(&mut b, &st.p, "bob", "bob-pass");
    let (r, _) = sso(&mut b, &st, "/");
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("Signed in as bob (viewer)"));

    // The role follows the claims at each sign-in: ann's group changes at the provider, her next sign-in
    // makes her a viewer, and the login she holds from before stops holding (it was made as an auditor).
    let mut b = Browser::default();
    provider_login(&mut b, &st.p, "ann", "ann-pass");
    let (r, _) = sso(&mut b, &st, "/");
    assert!(r.text().unwrap().contains("Signed in as ann (auditor)"));
    let old = b.jar["ddcoterm_login"].clone();
    let out = Command::new(provider_python().unwrap())
        .args([
            "-c",
            "import django; django.setup(); from django.contrib.auth.models import User; \
                      User.objects.get(username='ann').groups.clear()",
        ])
        .env("DJANGO_SETTINGS_MODULE", "idp.settings")
        .env("PYTHONPATH", st.p.dir.path())
        .current_dir(st.p.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (r, _) = sso(&mut b, &st, "/");
    assert!(r.text().unwrap().contains("Signed in as ann (viewer)"));
    let stale = web_support::http()
        .get(format!("{}/", st.s.url))
        .header("cookie", format!("ddcoterm_login={old}"))
        .send()
        .unwrap();
    assert_eq!(stale.status(), 303, "the auditor login ended with the role change");

    // A local user of the same name is never taken over by single sign-on.
    web_support::add_user(&st.s, "carol", "admin", "local-pass");
    let mut b = Browser::default();
    provider_login(&mut b, &st.p, "carol", "carol-pass");
    let (r, _) = sso(&mut b, &st, "/");
    assert_eq!(r.status(), 403);
    assert!(login_cookie(&r).is_none());
    // And an SSO user has no password that a password sign-in could match.
    let r = b.post(&format!("{}/login", st.s.url), &st.s.url, &[("user", "bob"), ("password", "!oidc")]);
    assert_eq!(r.status(), 401);
}

#[test]
fn forged_replayed_and_tampered_callbacks_are_refused_without_a_cookie() {
    let Some(st) = setup("deny") else { return };
    let mut b = Browser::default();
    provider_login(&mut b, &st.p, "ann", "ann-pass");

    // A good sign-in, whose callback URL is then replayed: the state is spent.
    let (r, callback) = sso(&mut b, &st, "/");
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    let r = b.get(&callback);
    assert_eq!(r.status(), 400);
    assert!(login_cookie(&r).is_none());

    // The spent code with a fresh, valid state: the provider refuses the code; no cookie.
    let start = b.get(&format!("{}/login/oidc", st.s.url));
    let state = query(start.headers()["location"].to_str().unwrap(), "state").unwrap();
    let code = query(&callback, "code").unwrap();
    let r = b.get(&format!("{}/login/oidc/callback?code={code}&state={state}", st.s.url));
    assert_eq!(r.status(), 400);
    let text = r.text().unwrap();
    assert!(text.contains("refused the sign-in code"), "{text}");

    // A wrong state: not this browser's (a login-CSRF attempt), or none at all.
    let start = b.get(&format!("{}/login/oidc", st.s.url));
    let to = start.headers()["location"].to_str().unwrap().to_string();
    let cb = b.follow(to, &format!("{}/login/oidc/callback", st.s.url)).ok().unwrap();
    let code = query(&cb, "code").unwrap();
    for bad in ["", "state=forged&", "state=&"] {
        let r = b.get(&format!("{}/login/oidc/callback?{bad}code={code}", st.s.url));
        assert_eq!(r.status(), 400, "{bad}");
        assert!(login_cookie(&r).is_none());
    }
    // Another browser holding a stolen callback URL has no state cookie.
    let r = Browser::default().get(&cb);
    assert_eq!(r.status(), 400);
    assert!(login_cookie(&r).is_none());

    // A tampered ID token (claims rewritten to the admin group, the provider's signature kept): refused.
    st.p.tamper(Tamper::Claims);
    let (r, _) = sso(&mut b, &st, "/");
    assert_eq!(r.status(), 401);
    assert!(login_cookie(&r).is_none());
    assert!(r.text().unwrap().contains("did not verify"));

    // An ID token the provider really signed, with the right nonce, but issued to another client (aud).
    let start = b.get(&format!("{}/login/oidc", st.s.url));
    let ours = start.headers()["location"].to_str().unwrap().to_string();
    let nonce = query(&ours, "nonce").unwrap();
    st.p.tamper(Tamper::Replace(other_client_tokens(&mut b, &st.p, &nonce)));
    let cb = b.follow(ours, &format!("{}/login/oidc/callback", st.s.url)).ok().unwrap();
    let r = b.get(&cb);
    assert_eq!(r.status(), 401);
    assert!(login_cookie(&r).is_none());
    let text = r.text().unwrap();
    assert!(text.contains("did not verify") && text.to_lowercase().contains("aud"), "{text}");

    // With `default_role: deny`, a user no group maps is refused.
    let mut b = Browser::default();
    provider_login(&mut b, &st.p, "bob", "bob-pass");
    let (r, _) = sso(&mut b, &st, "/");
    assert_eq!(r.status(), 403);
    assert!(login_cookie(&r).is_none());
    assert!(r.text().unwrap().contains("has no ddcoterm role"));
    assert!(st.s.log().contains("single sign-on refused"));
    assert!(!st.s.log().contains(CLIENT_SECRET), "the client secret is never logged");
}

/// A token response the provider issues to the other client for the signed-in user, with `nonce`.
fn other_client_tokens(b: &mut Browser, p: &Provider, nonce: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let verifier = "v".repeat(64);
    let challenge = b64.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let auth = format!(
        "{}/o/authorize/?response_type=code&client_id={OTHER_ID}&redirect_uri={}&scope=openid&state=s&nonce={nonce}\
         &code_challenge={challenge}&code_challenge_method=S256",
        p.url,
        url::form_urlencoded::byte_serialize(OTHER_REDIRECT.as_bytes()).collect::<String>()
    );
    let cb = b.follow(auth, OTHER_REDIRECT).ok().unwrap();
    let code = query(&cb, "code").unwrap();
    let r = web_support::http()
        .post(format!("{}/o/token/", p.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(web_support::form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", OTHER_REDIRECT),
            ("client_id", OTHER_ID),
            ("client_secret", OTHER_SECRET),
            ("code_verifier", &verifier),
        ]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().unwrap()
}
