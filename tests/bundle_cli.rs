//! `bundle keygen|sign|verify|list` end to end, and the example bundle in deploy/bundles.

mod bundle_support;
mod harness;

use bundle_support::*;
use std::path::Path;

#[test]
fn keygen_sign_verify_round_trip() {
    let f = Fleet::new(&[]);
    let prefix = f.root().join("org");
    let out = f.run(&["bundle", "keygen", "--out", prefix.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (key, public) = (f.root().join("org.key"), f.root().join("org.pub"));
    assert_eq!((mode(&key), mode(&public)), (0o600, 0o644));
    assert!(stdout(&out).contains("trusted_keys"), "{}", stdout(&out));
    // A second keygen never overwrites the key.
    let again = f.run(&["bundle", "keygen", "--out", prefix.to_str().unwrap()]);
    assert_ne!(again.status.code(), Some(0));
    assert!(stderr(&again).contains("refusing to overwrite"), "{}", stderr(&again));

    let b = f.root().join("team.yaml");
    std::fs::write(&b, bundle_text("team", 4)).unwrap();
    let out = f.run(&["bundle", "sign", b.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("signed bundle team r4"), "{}", stdout(&out));
    let out = f.run(&["bundle", "verify", b.to_str().unwrap(), "--pubkey", public.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("ok: ") && stdout(&out).contains("bundle team r4"), "{}", stdout(&out));

    // Default keys are the system layer's: this one is not trusted there.
    let out = f.run(&["bundle", "verify", b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not verify against any trusted key"), "{}", stderr(&out));

    // One changed byte after signing.
    std::fs::write(&b, bundle_text("team", 5)).unwrap();
    let out = f.run(&["bundle", "verify", b.to_str().unwrap(), "--pubkey", public.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("FAILED") && stderr(&out).contains("team.yaml"), "{}", stderr(&out));
}

#[test]
fn verify_uses_system_trusted_keys_by_default() {
    let f = Fleet::new(&[]);
    let b = f.root().join("sre.yaml");
    let text = bundle_text("sre", 1);
    std::fs::write(&b, &text).unwrap();
    std::fs::write(f.root().join("sre.yaml.sig"), f.sign(&text)).unwrap();
    let out = f.run(&["bundle", "verify", b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::remove_file(f.root().join("sre.yaml.sig")).unwrap();
    let out = f.run(&["bundle", "verify", b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unsigned bundle refused"), "{}", stderr(&out));
}

#[test]
fn sign_refuses_an_invalid_bundle_and_an_open_key() {
    let f = Fleet::new(&[]);
    let prefix = f.root().join("k");
    assert!(f.run(&["bundle", "keygen", "--out", prefix.to_str().unwrap()]).status.success());
    let key = f.root().join("k.key");
    let b = f.root().join("bad.yaml");
    std::fs::write(&b, bundle_text("bad", 1).replace("return has_arg('delete')", "return has_arg('delete'"))
        .unwrap();
    let out = f.run(&["bundle", "sign", b.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65));
    let err = stderr(&out);
    assert!(
        err.contains("refusing to sign") && err.contains("rules[0].rule") && err.contains("bad.yaml:"),
        "{err}"
    );
    assert!(!Path::new(&format!("{}.sig", b.display())).exists());

    std::fs::write(&b, bundle_text("bad", 1).replace("revision: 1", "revison: 1")).unwrap();
    let out = f.run(&["bundle", "sign", b.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65));
    assert!(stderr(&out).contains("revison"), "{}", stderr(&out));

    std::fs::write(&b, bundle_text("good", 1)).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = f.run(&["bundle", "sign", b.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
}

#[test]
fn list_shows_installed_bundles_and_an_empty_dir() {
    let f = Fleet::new(&[]);
    let out = f.run(&["bundle", "list"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("no bundles installed"), "{}", stdout(&out));

    // Installed by hand (Ansible/Helm deliver bundles this way): listed without a source.
    std::fs::create_dir(f.bundles()).unwrap();
    std::fs::set_permissions(f.bundles(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let text = bundle_text("manual", 7);
    std::fs::write(f.installed("manual"), &text).unwrap();
    std::fs::write(f.bundles().join("manual.yaml.sig"), f.sign(&text)).unwrap();
    let out = f.run(&["bundle", "list"]);
    let s = stdout(&out);
    assert!(s.contains("manual") && s.contains("r7") && s.contains("ok"), "{s}");
    let e = &f.list_json()[0];
    assert_eq!((e["revision"].as_u64(), e["source"].is_null()), (Some(7), true), "{e}");
}

#[test]
fn example_bundle_verifies_against_the_example_key() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/bundles");
    let f = Fleet::new(&[]);
    let out = f.run(&[
        "bundle",
        "verify",
        root.join("sre-baseline.yaml").to_str().unwrap(),
        "--pubkey",
        root.join("example-signing.pub").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("bundle sre-baseline r1"), "{}", stdout(&out));
    let out = std::process::Command::new(root.join("verify.sh"))
        .arg(env!("CARGO_BIN_EXE_ddcoterm"))
        .output()
        .unwrap();
    assert!(out.status.success(), "verify.sh: {}", stderr(&out));
    assert!(!root.join("example-signing.key").exists(), "the private key never lives in the repository");
}
