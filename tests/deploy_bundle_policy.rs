//! The example organisation bundle shipped in deploy/bundles passes its own policy tests and verifies
//! against the shipped public key: what an org runs in CI before pushing a bundle.

use std::path::Path;
use std::process::Command;

#[test]
fn example_bundle_policy_tests_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/bundles");
    let out = Command::new(env!("CARGO_BIN_EXE_ddcoterm"))
        .args(["policy", "test"])
        .arg(dir.join("sre-baseline.tests.yaml"))
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.ends_with(" passed, 0 failed") && !last.starts_with("0 "), "{last}");
}

#[test]
fn example_bundle_signature_verifies() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/bundles");
    let out = Command::new(env!("CARGO_BIN_EXE_ddcoterm"))
        .args(["bundle", "verify"])
        .arg(dir.join("sre-baseline.yaml"))
        .arg("--pubkey")
        .arg(dir.join("example-signing.pub"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
