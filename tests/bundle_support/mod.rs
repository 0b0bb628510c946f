//! Helpers of the bundle integration tests: a signing key, bundle texts, and loading the configuration through
//! the library, over the one isolated world of `tests/harness` (every test binary that uses this module also
//! declares `mod harness;`).
#![allow(dead_code)]

use crate::harness::World;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub struct Fleet {
    pub world: World,
    /// The system dir (organisation layers, `bundles/`).
    pub system: PathBuf,
    /// `DDCOTERM_HOME`.
    pub home: PathBuf,
    pub key: SigningKey,
}

impl Fleet {
    /// A world whose system config trusts `key` and pulls from `sources`.
    pub fn new(sources: &[String]) -> Fleet {
        let world = World::bare();
        std::fs::set_permissions(world.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let (system, home) = (world.system(), world.ddhome());
        let key = SigningKey::from_bytes(&[42u8; 32]);
        let f = Fleet { world, system, home, key };
        f.configure(sources);
        f
    }

    /// The temp dir the world lives in (free for a test's own files).
    pub fn root(&self) -> &Path {
        self.world.root()
    }

    pub fn trusted_key(&self) -> String {
        B64.encode(self.key.verifying_key().as_bytes())
    }

    /// Rewrites the system config with these sources.
    pub fn configure(&self, sources: &[String]) {
        let mut cfg = format!("bundles:\n  trusted_keys:\n    - {}\n  sources:\n", self.trusted_key());
        for s in sources {
            cfg.push_str(&format!("    - {s}\n"));
        }
        if sources.is_empty() {
            cfg = cfg.replace("  sources:\n", "  sources: []\n");
        }
        let p = self.system.join("config.yaml");
        std::fs::write(&p, cfg).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    pub fn bundles(&self) -> PathBuf {
        self.system.join("bundles")
    }

    pub fn installed(&self, name: &str) -> PathBuf {
        self.bundles().join(format!("{name}.yaml"))
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.world.ddcoterm(args).output().unwrap()
    }

    pub fn sign(&self, data: &str) -> String {
        format!("{}\n", B64.encode(self.key.sign(data.as_bytes()).to_bytes()))
    }

    /// Loads the layered configuration the way every command does.
    pub fn load(&self) -> Result<ddcoterm::config::Loaded, ddcoterm::error::ConfigError> {
        let opts = ddcoterm::config::LoadOptions { dirs: self.world.dirs(), sets: Vec::new() };
        ddcoterm::config::load(&opts)
    }

    /// The revision of bundle `name` in force, per the loader, and the source of its first rule.
    pub fn in_force(&self, name: &str) -> (u64, String) {
        let l = self.load().unwrap_or_else(|e| panic!("config does not load: {e}"));
        let b = l.bundles.iter().find(|b| b.doc.name == name).expect("bundle in force");
        let rule = l.policy.rules.first().expect("a rule").at.to_string();
        (b.doc.revision, rule)
    }

    pub fn list_json(&self) -> serde_json::Value {
        let out = self.run(&["bundle", "list", "--json"]);
        assert!(out.status.success(), "bundle list failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// A bundle whose single kubectl rule names its revision in the user message.
pub fn bundle_text(name: &str, revision: u64) -> String {
    format!(
        "name: {name}\nrevision: {revision}\nprocess_config:\n  commands:\n    - command: kubectl\n      rules:\n        \
         - rule: |\n            return has_arg('delete'), 'r{revision} says: needs approval', 'approve r{revision}'\n          \
         actions: [record, approval]\n"
    )
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}
