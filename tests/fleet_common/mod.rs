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
