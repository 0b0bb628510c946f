//! The shim's organisation cache never decides from stale or forged input (policy, kubeconfig, user layer,
//! a new layer file and the environment changing between calls; tampered and corrupt entries), and a broken
//! user layer is reported and skipped while a broken organisation layer still fails closed.

mod harness;

use harness::{no_tty, text, World};
use sha2::Digest;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

/// Org policy observable without a terminal: a lint that warns refuses the call (exit 1, its message on
/// stderr); no warning execs the fake (exit 0, `REAL kubectl ...` on stdout).
fn org(delete_word: &str) -> String {
    format!(
        "process_config:\n  default_actions: []\n  commands:\n    - command: kubectl\n      lints:\n        - \"if (k8s_context or ''):match('^prod') then return 'PROD CONTEXT' end\"\n        - \"if has_arg('{delete_word}') then return 'ORG SAYS NO' end\"\n"
    )
}

fn shim(w: &World, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = w.cmd(w.shim("kubectl"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    no_tty(c)
}

fn runs(o: &Output) -> bool {
    o.status.code() == Some(0) && text(&o.stdout).starts_with("REAL kubectl")
}

fn refused(o: &Output, why: &str) -> bool {
    o.status.code() == Some(1) && text(&o.stdout).is_empty() && text(&o.stderr).contains(why)
}

/// The organisation cache's entries of `kind` (`yaml-v1`, `luau-v1`).
fn entries(w: &World, kind: &str) -> Vec<std::path::PathBuf> {
    let Ok(rd) = std::fs::read_dir(w.path("etc/cache")) else { return Vec::new() };
    rd.filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{kind}-")))
        .collect()
}

/// Rewrites `rel` with `text` of the same size and gives it back its old modification time, the way a quick
/// edit within one timestamp tick looks to anything that trusts (size, mtime).
fn rewrite_same_size_and_mtime(w: &World, rel: &str, text: &str) {
    let p = w.path(rel);
    let before = std::fs::metadata(&p).unwrap();
    assert_eq!(before.len(), text.len() as u64, "the test needs the same size");
    let mode = before.permissions().mode();
    w.write(rel, text, mode & 0o777);
    let f = std::fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(before.modified().unwrap()).unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), before.modified().unwrap());
}

fn world() -> World {
    let w = World::new();
    w.system_config(&org("delete")).kubeconfig("dev-01").fake("kubectl");
    w
}

#[test]
fn first_call_after_a_policy_change_decides_by_the_new_policy() {
    let w = world();
    assert!(runs(&shim(&w, &["get", "pods"], &[])));
    assert!(!entries(&w, "yaml-v1").is_empty(), "the org file's parse was cached");
    assert!(!entries(&w, "luau-v1").is_empty(), "the org snippets' bytecode was cached");
    assert!(refused(&shim(&w, &["delete", "pod"], &[]), "ORG SAYS NO"));
    // `delete` -> `pods!`: same size, same mtime.
    let before = std::fs::read_to_string(w.path("etc/config.yaml")).unwrap();
    rewrite_same_size_and_mtime(&w, "etc/config.yaml", &before.replace("'delete'", "'pods!!'"));
    assert!(runs(&shim(&w, &["delete", "pod"], &[])), "the old rule no longer applies");
    assert!(refused(&shim(&w, &["get", "pods!!"], &[]), "ORG SAYS NO"), "the new one does");
}

#[test]
fn first_call_after_a_kube_context_switch_sees_the_new_context() {
    let w = world();
    assert!(runs(&shim(&w, &["get", "pods"], &[])));
    // `kubectl config use-context prod-1`, within the same second and at the same size.
    let kc = std::fs::read_to_string(w.path("home/.kube/config")).unwrap();
    rewrite_same_size_and_mtime(&w, "home/.kube/config", &kc.replace("dev-01", "prod-1"));
    assert!(refused(&shim(&w, &["get", "pods"], &[]), "PROD CONTEXT"));
    rewrite_same_size_and_mtime(&w, "home/.kube/config", &kc);
    assert!(runs(&shim(&w, &["get", "pods"], &[])));
}

#[test]
fn a_user_layer_that_appears_changes_or_goes_is_seen_at_once() {
    let w = world();
    assert!(runs(&shim(&w, &["get", "pods"], &[])));
    let lint = |word: &str| {
        format!("process_config:\n  commands:\n    - command: kubectl\n      lints:\n        - \"if has_arg('{word}') then return 'USER LINT' end\"\n")
    };
    w.user_config(&lint("pods"));
    assert!(refused(&shim(&w, &["get", "pods"], &[]), "USER LINT"));
    rewrite_same_size_and_mtime(&w, "home/.ddcoterm/config.yaml", &lint("podz"));
    assert!(runs(&shim(&w, &["get", "pods"], &[])));
    assert!(refused(&shim(&w, &["get", "podz"], &[]), "USER LINT"));
    std::fs::remove_file(w.path("home/.ddcoterm/config.yaml")).unwrap();
    assert!(runs(&shim(&w, &["get", "podz"], &[])));
}

#[test]
fn a_bundle_that_appears_in_the_bundle_directory_is_enforced_at_once() {
    let w = world();
    std::fs::create_dir_all(w.path("etc/bundles")).unwrap();
    std::fs::set_permissions(w.path("etc/bundles"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(runs(&shim(&w, &["get", "pods"], &[])));
    w.write(
        "etc/bundles/extra.yaml",
        "name: extra\nrevision: 1\nprocess_config:\n  commands:\n    - command: kubectl\n      lints:\n        - \"if has_arg('pods') then return 'BUNDLE LINT' end\"\n",
        0o644,
    );
    assert!(refused(&shim(&w, &["get", "pods"], &[]), "BUNDLE LINT"));
}

#[test]
fn an_environment_change_is_seen_at_once() {
    let w = world();
    let prod = w.write("prod.kubeconfig", "apiVersion: v1\ncurrent-context: prod-eu\n", 0o600);
    assert!(runs(&shim(&w, &["get", "pods"], &[])));
    let kubeconfig = prod.to_str().unwrap();
    assert!(refused(&shim(&w, &["get", "pods"], &[("KUBECONFIG", kubeconfig)]), "PROD CONTEXT"));
    assert!(runs(&shim(&w, &["get", "pods"], &[])));
    // Another organisation directory is another policy, never the first one's cached result.
    let other = World::new();
    other.system_config(&org("pods"));
    let sys = other.path("etc");
    assert!(refused(
        &shim(&w, &["get", "pods"], &[("DDCOTERM_SYSTEM_DIR", sys.to_str().unwrap())]),
        "ORG SAYS NO"
    ));
}

/// A cache entry with a valid digest over `payload`: what someone able to write the entry could put there.
fn forge(path: &std::path::Path, payload: &[u8]) {
    let digest: String = sha2::Sha256::digest(payload).iter().map(|b| format!("{b:02x}")).collect();
    let mut data = format!("ddcoterm-org-cache 1 {digest}\n").into_bytes();
    data.extend_from_slice(payload);
    std::fs::write(path, data).unwrap();
}

#[test]
fn a_cache_entry_others_can_write_cannot_loosen_an_org_rule() {
    let w = world();
    assert!(refused(&shim(&w, &["delete", "pod"], &[]), "ORG SAYS NO"));
    let yaml = entries(&w, "yaml-v1");
    assert_eq!(yaml.len(), 1);
    // A forged parse (the org file without its lints) in an entry that is writable by others: ignored.
    forge(&yaml[0], b"{}");
    std::fs::set_permissions(&yaml[0], std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(refused(&shim(&w, &["delete", "pod"], &[]), "ORG SAYS NO"));
    // The same forgery in a cache directory others can write (entries of any mode): ignored too.
    std::fs::set_permissions(&yaml[0], std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(w.path("etc/cache"), std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(refused(&shim(&w, &["delete", "pod"], &[]), "ORG SAYS NO"));
    // A cache in the user's own directory is never read at all.
    let mine = w.ddhome().join("cache");
    std::fs::create_dir_all(&mine).unwrap();
    forge(&mine.join(yaml[0].file_name().unwrap()), b"{}");
    assert!(refused(&shim(&w, &["delete", "pod"], &[]), "ORG SAYS NO"));
}

#[test]
fn a_corrupt_cache_entry_is_ignored_and_rebuilt_without_a_word() {
    let w = world();
    assert!(runs(&shim(&w, &["get", "pods"], &[])));
    let all: Vec<_> = entries(&w, "yaml-v1").into_iter().chain(entries(&w, "luau-v1")).collect();
    assert_eq!(all.len(), 2, "{all:?}");
    for e in &all {
        std::fs::write(e, b"ddcoterm-org-cache 1 0000\n\x00\x01garbage").unwrap();
    }
    let out = shim(&w, &["delete", "pod"], &[]);
    assert!(refused(&out, "ORG SAYS NO"), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("cache"), "{}", text(&out.stderr));
    for e in &all {
        assert!(std::fs::read(e).unwrap().starts_with(b"ddcoterm-org-cache 1 "), "rebuilt");
        assert!(!std::fs::read(e).unwrap().ends_with(b"garbage"), "rebuilt");
    }
    assert!(runs(&shim(&w, &["get", "pods"], &[])));
}

#[test]
fn a_broken_user_layer_is_reported_once_and_skipped_while_org_policy_holds() {
    let w = world();
    w.user_config("recording:\n  input: true\nproces_config: {}\n");
    let out = shim(&w, &["get", "pods"], &[]);
    assert!(runs(&out), "a typo in the user's own file does not block kubectl: {}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(err.matches("warning:").count(), 1, "{err}");
    assert!(err.contains("home/.ddcoterm/config.yaml:3:1: unknown field `proces_config`"), "{err}");
    assert!(err.contains("skipped") && err.contains("organisation's policy still applies"), "{err}");
    assert!(refused(&shim(&w, &["delete", "pod"], &[]), "ORG SAYS NO"), "org rules are still enforced");
    // Outside the guard path the same file is an error, so the user finds and fixes it.
    let show = w.ddcoterm(&["config", "show"]).output().unwrap();
    assert_eq!(show.status.code(), Some(78));
    assert!(text(&show.stderr).contains("config.yaml:3:1"), "{}", text(&show.stderr));
    let check = w.ddcoterm(&["check", "--", "kubectl", "get"]).output().unwrap();
    assert_eq!(check.status.code(), Some(78));
}

#[test]
fn a_broken_org_layer_still_fails_closed() {
    let w = world();
    w.system_config("process_config:\n  comands: []\n");
    let out = shim(&w, &["get", "pods"], &[]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    assert!(text(&out.stdout).is_empty(), "kubectl must not run");
    assert!(
        text(&out.stderr).contains("etc/config.yaml:4:3: key `process_config`: unknown field `comands`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_broken_ddcoterm_variable_is_reported_and_skipped_on_the_guard_path_only() {
    let w = world();
    let bad = [("DDCOTERM_RECORDING__INPUT", "maybe")];
    let out = shim(&w, &["get", "pods"], &bad);
    assert!(runs(&out), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("environment variable DDCOTERM_RECORDING__INPUT: key `recording.input`"), "{err}");
    assert!(err.contains("ignored for this command"), "{err}");
    assert!(refused(&shim(&w, &["delete", "pod"], &bad), "ORG SAYS NO"));
    let mut show = w.ddcoterm(&["config", "show"]);
    show.env("DDCOTERM_RECORDING__INPUT", "maybe");
    let show = show.output().unwrap();
    assert_eq!(show.status.code(), Some(78), "{}", text(&show.stderr));
}

#[test]
fn a_batch_holding_a_user_snippet_is_never_taken_from_or_stored_in_the_cache() {
    let w = world();
    w.user_config("process_config:\n  commands:\n    - command: kubectl\n      lints:\n        - \"if has_arg('mine') then return 'USER LINT' end\"\n");
    assert!(runs(&shim(&w, &["get", "pods"], &[])));
    assert!(refused(&shim(&w, &["get", "mine"], &[]), "USER LINT"));
    assert!(refused(&shim(&w, &["delete", "pod"], &[]), "ORG SAYS NO"));
    assert!(entries(&w, "luau-v1").is_empty(), "bytecode is cached for organisation-only batches");
    assert!(!entries(&w, "yaml-v1").is_empty(), "the org file's parse is still cached");
}
