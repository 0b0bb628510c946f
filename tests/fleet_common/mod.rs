//! Shared harness of the fleet container tests: docker detection, local image checks, docker exec helpers.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::process::{Command, Output};

/// The runtime image built by `make image` (scripts/image.sh).
pub const IMAGE: (&str, &str) = ("ddcoterm", "dev");
/// The local Debian base built by `make base-image` (scripts/base-image.sh); bastions run on it.
pub const BASE_IMAGE: (&str, &str) = ("ddcoterm-base", "bookworm");

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const SET_BY_CARGO_TEST: [&str; 10] = [
    "CARGO",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_BIN_NAME",
    "OUT_DIR",
    "CXXSTDLIB",
    "RUST_RECURSION_COUNT",
];

/// A `bash -c LINE` in the repository as an operator types it: without the variables `cargo test` sets for
/// the test process (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, `OUT_DIR`, ...). A build started with them is
/// another build: ring's build script reruns when `CARGO_MANIFEST_DIR` changes, and everything above ring
/// with it, so a documented `make package` rebuilt both release binaries and the next plain build rebuilt
/// them back (four minutes of every CI run). Settings a user or CI chose (`CARGO_HOME`, `CARGO_INCREMENTAL`,
/// `CARGO_PROFILE_*`, `CARGO_TARGET_DIR`, ...) are kept.
pub fn operator_shell(line: &str) -> Command {
    let mut c = Command::new("bash");
    c.args(["-c", line]).current_dir(repo());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if SET_BY_CARGO_TEST.contains(&&*k) || k.starts_with("CARGO_PKG_") || k.starts_with("CARGO_BIN_EXE_")
        {
            c.env_remove(&*k);
        }
    }
    c
}

/// True when a Docker engine answers. When it does not, the caller returns early: the only reason a fleet
/// test may skip, said once on stderr.
pub fn docker_available(test: &str) -> bool {
    match Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "SKIP {test}: docker is installed but the engine does not answer: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("SKIP {test}: docker is not installed ({e})");
            false
        }
    }
}

/// With docker present the images are required: a missing one is a failure that says how to build it.
pub fn require_image((name, tag): (&str, &str)) {
    let st = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", &format!("{name}:{tag}")])
        .output()
        .expect("docker image inspect");
    assert!(
        st.status.success(),
        "image {name}:{tag} is missing: run `make base-image image` (scripts/base-image.sh, scripts/image.sh) first"
    );
}

/// Size of a local image in bytes.
pub fn image_size((name, tag): (&str, &str)) -> u64 {
    let o = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", &format!("{name}:{tag}")])
        .output()
        .expect("docker image inspect");
    String::from_utf8_lossy(&o.stdout).trim().parse().expect("image size")
}

/// Result of a command run in a container.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Panics with both streams unless the command exited 0.
    pub fn ok(self, what: &str) -> Run {
        assert_eq!(self.code, 0, "{what} failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
}

/// `docker exec [-u user] [-e K=V]... container cmd...`, no tty and no stdin (like a script or CI would).
pub fn exec(container: &str, user: &str, env: &[(&str, &str)], cmd: &[&str]) -> Run {
    let mut c = Command::new("docker");
    c.args(["exec", "-u", user]);
    for (k, v) in env {
        c.args(["-e", &format!("{k}={v}")]);
    }
    c.arg(container).args(cmd);
    Run::from(c.output().expect("docker exec"))
}

/// A login shell (`bash -lc`) as `user`: reads /etc/profile and /etc/profile.d like a real login.
pub fn login_shell(container: &str, user: &str, env: &[(&str, &str)], script: &str) -> Run {
    exec(container, user, env, &["bash", "-lc", script])
}

/// Prints a number CI should show (tests' stdout is captured on success) and keeps it in
/// `target/tmp/fleet-numbers.txt`, which `.ci/run` prints at the end.
pub fn report(line: &str) {
    println!("{line}");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet-numbers.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes());
    }
}

/// A fenced code block of a Markdown document: its language, body, 1-based line of the opening fence, and
/// the `<!-- RUNNER: NAME -->` marker on the line right above the fence (`None` without one).
#[derive(Debug, Clone)]
pub struct DocBlock {
    pub lang: String,
    pub body: String,
    pub line: usize,
    pub marker: Option<(String, String)>,
}

/// Every fenced block of `doc`, in order.
pub fn doc_blocks(doc: &str) -> Vec<DocBlock> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(lang) = lines[i].trim_start().strip_prefix("```") else {
            i += 1;
            continue;
        };
        let open = i;
        let mut body = String::new();
        i += 1;
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            body.push_str(lines[i]);
            body.push('\n');
            i += 1;
        }
        let marker = open
            .checked_sub(1)
            .and_then(|p| lines[p].trim().strip_prefix("<!--"))
            .and_then(|m| m.strip_suffix("-->"))
            .and_then(|m| m.trim().split_once(':'))
            .map(|(r, n)| (r.trim().to_string(), n.trim().to_string()));
        out.push(DocBlock { lang: lang.trim().to_string(), body, line: open + 1, marker });
        i += 1;
    }
    out
}

/// The body of the fenced block of docs/fleet.md marked `<!-- RUNNER: NAME -->` (RUNNER is the test that
/// runs it, e.g. `fleet_docs`), so a test runs what the document says, not a copy of it.
pub fn doc_block(runner: &str, name: &str) -> String {
    let doc = std::fs::read_to_string(repo().join("docs/fleet.md")).unwrap();
    let want = Some((runner.to_string(), name.to_string()));
    doc_blocks(&doc)
        .into_iter()
        .find(|b| b.marker == want)
        .unwrap_or_else(|| panic!("docs/fleet.md has no fenced block after <!-- {runner}: {name} -->"))
        .body
}

/// The shell commands of a block: comments stripped (` #` to the end of a line), `\` continuations joined,
/// blank lines dropped.
pub fn doc_commands(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for raw in block.lines() {
        let line = strip_comment(raw);
        let (text, cont) = match line.trim_end().strip_suffix('\\') {
            Some(t) => (t.to_string(), true),
            None => (line.trim_end().to_string(), false),
        };
        if !cur.is_empty() {
            cur.push(' ');
            cur.push_str(text.trim());
        } else {
            cur = text.trim().to_string();
        }
        if !cont {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            cur.clear();
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A line without its trailing shell comment: a `#` at the start or after whitespace, outside quotes.
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double, mut prev_space) = (false, false, true);
    for (i, ch) in line.char_indices() {
        match ch {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev_space => return &line[..i],
            _ => {}
        }
        prev_space = ch.is_whitespace();
    }
    line
}

/// The documented Ansible run of block `<!-- runner: name -->`: the lines before `cd ansible` (commands the
/// caller runs first, on the controller) and the words after `ansible-playbook` with each `(documented, own)`
/// word replaced by the test's own (its inventory of containers, its secrets file). Every documented word must
/// be there and the block must be `[commands...] cd ansible; ansible-playbook ...`: a changed doc fails here.
pub fn documented_playbook(runner: &str, name: &str, subs: &[(&str, String)]) -> (Vec<String>, Vec<String>) {
    let cmds = doc_commands(&doc_block(runner, name));
    let cd = cmds
        .iter()
        .position(|c| c == "cd ansible")
        .unwrap_or_else(|| panic!("{name}: no `cd ansible`: {cmds:?}"));
    assert_eq!(
        cmds.len(),
        cd + 2,
        "docs/fleet.md {name}: one ansible-playbook line after `cd ansible`: {cmds:?}"
    );
    let line = &cmds[cd + 1];
    let words = line
        .strip_prefix("ansible-playbook ")
        .unwrap_or_else(|| panic!("docs/fleet.md {name}: {line:?} is not an ansible-playbook line"));
    assert!(!line.contains(['\'', '"', '$', '`']), "docs/fleet.md {name}: {line:?}: no quoting expected");
    let mut args: Vec<String> = words.split_whitespace().map(str::to_string).collect();
    for (doc, own) in subs {
        let at = args
            .iter()
            .position(|a| a == doc)
            .unwrap_or_else(|| panic!("docs/fleet.md {name}: {line:?} no longer has {doc:?}"));
        args[at] = own.clone();
    }
    (cmds[..cd].to_vec(), args)
}
