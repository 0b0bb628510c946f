//! Upgrades (issue #19): a server started on data written by the previous release migrates it and keeps
//! serving everything in it. Two fixtures, each written by the release before this one (`written-by`): two
//! sessions uploaded by that release's client, a host token, an auditor token and an admin user.
//! `tests/fixtures/upgrade-sqlite` is a data directory (SQLite + local directory; regenerate with
//! `tests/fixtures/make-upgrade-fixture.sh`); `tests/fixtures/upgrade-postgres` is that release's PostgreSQL
//! database as plain SQL (`dump.sql`, pg_dump) with its recording objects (`objects/`), restored into the
//! test cluster and the S3 bucket (regenerate with `tests/fixtures/make-upgrade-fixture-postgres.sh`). Each
//! runs on its backend (`DDCOTERM_SERVER_BACKEND=postgres-s3` for PostgreSQL; `make test` runs both).

mod support;

use std::path::{Path, PathBuf};

use support::{backends, Server};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade-sqlite")
}

fn pg_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade-postgres")
}

fn read(fixture: &Path, name: &str) -> String {
    std::fs::read_to_string(fixture.join(name)).unwrap().trim().to_string()
}

/// How many migrations this release has for a backend (`sqlite`, `postgres`).
fn latest_migration(backend: &str) -> usize {
    std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend)).unwrap().count()
}

/// The highest migration recorded in a SQLite database (read with the `sqlite3` CLI that `make tools` installs).
fn applied_migrations(db: &Path) -> usize {
    let out = std::process::Command::new("sqlite3")
        .arg(db)
        .arg("SELECT max(version) FROM schema_migrations")
        .output()
        .expect("sqlite3 (make tools installs it)");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("{out:?}"))
}

#[test]
fn the_previous_release_data_is_migrated_and_everything_in_it_still_served() {
    if backends::enabled() {
        println!("skipped: the upgrade fixture is SQLite + a local directory (this run is PostgreSQL + S3)");
        return;
    }
    // The fixture really is older: its schema stops before this release's last migration.
    let before = applied_migrations(&fixture().join("data/ddcoterm.db"));
    let latest = latest_migration("sqlite");
    assert!(
        before < latest,
        "the fixture has migrations 1..={before} of {latest}: regenerate it from the previous release"
    );
    let s = Server::start_on_copy_of(&fixture().join("data"));
    assert_eq!(
        applied_migrations(&s.data().join("ddcoterm.db")),
        latest,
        "every later migration applied at start"
    );
    everything_still_served(s, &fixture());
}

#[test]
fn the_previous_release_postgres_data_is_migrated_and_everything_in_it_still_served() {
    if !backends::enabled() {
        println!(
            "skipped: the PostgreSQL upgrade fixture runs on PostgreSQL + S3 (DDCOTERM_SERVER_BACKEND=postgres-s3)"
        );
        return;
    }
    let fx = pg_fixture();
    let env = backends::restore(&fx.join("dump.sql"), &fx.join("objects"));
    let migrations = |env: &[(String, String)]| -> usize {
        backends::query(env, "SELECT max(version) FROM schema_migrations").parse().unwrap()
    };
    // The fixture really is older: its schema stops before this release's last migration.
    let (before, latest) = (migrations(&env), latest_migration("postgres"));
    assert!(
        before < latest,
        "the fixture has migrations 1..={before} of {latest}: regenerate it from the previous release"
    );
    let s = Server::start_on_backends(env.clone());
    assert_eq!(migrations(&env), latest, "every later migration applied at start\n{}", s.log());
    let applied = backends::query(&env, "SELECT count(*) FROM schema_migrations");
    assert_eq!(applied, latest.to_string(), "each migration recorded once");
    everything_still_served(s, &fx);
}

/// The fixture's sessions, tokens and admin, as the old release stored them, served by this release.
fn everything_still_served(s: Server, fixture: &Path) {
    let (host, auditor) = (read(fixture, "host.token"), read(fixture, "auditor.token"));

    // The sessions, listed and served as the old release stored them: every cast byte for byte as the host
    // recorded it, and the hash chain re-checked end to end by `verify`.
    let (code, list) = s.get_json(&auditor, "/api/v1/sessions");
    assert_eq!(code, 200, "{list}\n{}", s.log());
    let listed: Vec<String> =
        list["sessions"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_string()).collect();
    let mut casts: Vec<PathBuf> =
        std::fs::read_dir(fixture.join("casts")).unwrap().map(|e| e.unwrap().path()).collect();
    casts.sort();
    assert_eq!(listed.len(), casts.len(), "{list}");
    for cast in &casts {
        let id = cast.file_stem().unwrap().to_str().unwrap();
        assert!(listed.iter().any(|l| l == id), "{id} listed: {listed:?}");
        let (code, detail) = s.get_json(&auditor, &format!("/api/v1/sessions/{id}"));
        assert_eq!(code, 200, "{detail}");
        assert_eq!(detail["state"], "complete", "{detail}");
        assert_eq!(s.cast(&auditor, id), std::fs::read(cast).unwrap(), "{id}: the host's cast byte for byte");
        let out = s.cli(&["verify", id]);
        assert!(out.status.success(), "verify {id}: {}", String::from_utf8_lossy(&out.stdout));
    }
    // A migration of this release ran (single sign-on's table) and the old rows still read: the tokens list.
    let out = s.cli(&["token", "list"]);
    let tokens = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && tokens.contains("bastion-1") && tokens.contains("reviewer"), "{tokens}");

    // The old host token still uploads a new session; the old admin still signs in with the old password.
    let id = "0190d6c0-0000-7000-8000-00000000a001";
    assert_eq!(s.create(&host, id, "carol").status(), 201, "{}", s.log());
    let chunk = support::HEADER;
    assert_eq!(s.chunk(&host, id, 0, chunk, None).status(), 201);
    assert_eq!(s.end(&host, id, 0).status(), 200);
    let no_redirects =
        reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed_in = no_redirects
        .post(format!("{}/login", s.url))
        .header("origin", &s.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user=alice&password=upgrade-fixture-pw&next=%2F")
        .send()
        .unwrap();
    assert_eq!(signed_in.status(), 303, "{}", s.log());
    assert!(signed_in.headers().get("set-cookie").is_some(), "a login cookie");

    // Migrations are recorded: a second start on the migrated data applies nothing again and serves the same.
    let mut s = s;
    s.restart();
    let (code, list) = s.get_json(&auditor, "/api/v1/sessions");
    assert_eq!(code, 200);
    assert_eq!(list["sessions"].as_array().unwrap().len(), casts.len() + 1, "{list}");
}
