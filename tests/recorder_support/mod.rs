//! Helpers of the recorder integration tests (reading casts and event logs), over the one isolated world of
//! `tests/harness` (every test binary that uses this module also declares `mod harness;`).
#![allow(dead_code)]

use crate::harness::World;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_ddcoterm");

/// One isolated installation ([`World::bare`]: no organisation config) and its recordings.
pub struct Env {
    pub world: World,
}

impl Env {
    pub fn new() -> Env {
        Env { world: World::bare() }
    }

    /// The temp dir the installation lives in (free for a test's own files).
    pub fn root(&self) -> &Path {
        self.world.root()
    }

    /// `DDCOTERM_HOME`.
    pub fn home(&self) -> PathBuf {
        self.world.ddhome()
    }

    /// The user's HOME (no rc files unless a test writes some).
    pub fn user_home(&self) -> PathBuf {
        self.world.home()
    }

    /// The system dir (organisation layers).
    pub fn system(&self) -> PathBuf {
        self.world.system()
    }

    pub fn recordings(&self) -> PathBuf {
        self.world.recordings()
    }

    /// `~/.ddcoterm/config.yaml` for this installation.
    pub fn config(&self, yaml: &str) {
        self.world.user_config(yaml);
    }

    /// The binary with this installation's environment, outside any recorded session.
    pub fn cmd(&self) -> Command {
        self.world.cmd(BIN)
    }

    /// Gives `c` this installation's environment ([`World::apply`]).
    pub fn apply(&self, c: &mut Command) {
        self.world.apply(c);
    }

    /// Every `.cast` file, sorted.
    pub fn casts(&self) -> Vec<PathBuf> {
        self.files("cast")
    }

    pub fn files(&self, ext: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = match std::fs::read_dir(self.recordings()) {
            Ok(d) => d.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
            Err(_) => Vec::new(),
        };
        v.retain(|p| p.to_string_lossy().ends_with(&format!(".{ext}")));
        v.sort();
        v
    }

    /// The single recording's header and events.
    pub fn only_cast(&self) -> (Value, Vec<(f64, String, String)>) {
        let casts = self.casts();
        assert_eq!(casts.len(), 1, "expected one recording, found {casts:?}");
        read_cast(&casts[0])
    }

    /// The single session's process events.
    pub fn events(&self) -> Vec<Value> {
        let files = self.files("events.jsonl");
        assert_eq!(files.len(), 1, "expected one event log, found {files:?}");
        std::fs::read_to_string(&files[0])
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Header and events; every line after the header must parse (no partial lines here).
pub fn read_cast(path: &Path) -> (Value, Vec<(f64, String, String)>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let events = lines
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"));
            (v[0].as_f64().unwrap(), v[1].as_str().unwrap().to_string(), v[2].as_str().unwrap().to_string())
        })
        .collect();
    (header, events)
}

/// All `o` data joined.
pub fn output(events: &[(f64, String, String)]) -> String {
    events.iter().filter(|e| e.1 == "o").map(|e| e.2.as_str()).collect()
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
