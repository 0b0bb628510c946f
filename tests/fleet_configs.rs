//! The fleet files without containers: deploy/ example configs load and their lints and rules fire through
//! the real binary, the profile snippet puts the shims first exactly once, and the chart's install.sh
//! installs, prunes and stays idempotent.

mod fleet_common;

use fleet_common::repo;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_ddcoterm");

/// A system dir populated from deploy/config (config.yaml + teams/), modes as Ansible installs them.
fn system_dir(root: &Path, edit: impl Fn(String) -> String) -> std::path::PathBuf {
    let sys = root.join("etc-ddcoterm");
    std::fs::create_dir_all(sys.join("teams")).unwrap();
    let cfg = std::fs::read_to_string(repo().join("deploy/config/system.yaml")).unwrap();
    std::fs::write(sys.join("config.yaml"), edit(cfg)).unwrap();
    for team in ["sre", "developers"] {
        std::fs::copy(
            repo().join(format!("deploy/config/teams/{team}.yaml")),
            sys.join(format!("teams/{team}.yaml")),
        )
        .unwrap();
    }
    for e in walk(&sys) {
        let mode = if e.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&e, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    sys
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn ddcoterm(root: &Path, sys: &Path, args: &[&str]) -> Output {
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let kubeconfig = root.join("kubeconfig");
    std::fs::write(&kubeconfig, "apiVersion: v1\nkind: Config\ncurrent-context: dev-cluster\ncontexts: []\n")
        .unwrap();
    Command::new(BIN)
        .args(args)
        .env_remove("DD_API_KEY")
        .env_remove("DD_APP_KEY")
        .env("DDCOTERM_SYSTEM_DIR", sys)
        .env("DDCOTERM_HOME", &home)
        .env("HOME", &home)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn current_group() -> String {
    let o = Command::new("id").arg("-gn").output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn example_system_config_loads_and_its_lint_and_rules_fire() {
    let tmp = tempfile::tempdir().unwrap();
    let sys = system_dir(tmp.path(), |c| c);
    let show = ddcoterm(tmp.path(), &sys, &["config", "show"]);
    assert!(show.status.success(), "config show on deploy/config: {}", text(&show));

    let scale = ddcoterm(tmp.path(), &sys, &["check", "--", "kubectl", "scale", "deploy/web"]);
    assert!(scale.status.success(), "{}", text(&scale));
    assert!(
        text(&scale).contains("No kubectl context specified (effective context: 'dev-cluster')"),
        "the org lint fires with the kubeconfig's context: {}",
        text(&scale)
    );
    let with_ctx =
        ddcoterm(tmp.path(), &sys, &["check", "--", "kubectl", "scale", "deploy/web", "--context", "dev"]);
    assert!(!text(&with_ctx).contains("No kubectl context specified"), "{}", text(&with_ctx));

    let delete = ddcoterm(
        tmp.path(),
        &sys,
        &["check", "--json", "--", "kubectl", "delete", "pod", "x", "--context", "prod-eu"],
    );
    let v: serde_json::Value =
        serde_json::from_slice(&delete.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&delete)));
    assert!(
        v["actions"].as_array().unwrap().iter().any(|a| a == "approval"),
        "prod delete needs approval: {v}"
    );
    assert_eq!(v["rule"]["origin"]["layer"], "system", "{v}");
}

#[test]
fn example_team_layer_applies_to_its_unix_group_only() {
    let tmp = tempfile::tempdir().unwrap();
    let group = current_group();
    // Map `sre` to this process's group; `developers` stays mapped to a group we are not in.
    let sys = system_dir(tmp.path(), |c| c.replace("  sre: [sre]", &format!("  sre: [{group}]")));
    let o = ddcoterm(
        tmp.path(),
        &sys,
        &["check", "--", "kubectl", "delete", "pods", "--all", "--context", "dev"],
    );
    assert!(text(&o).contains("`kubectl delete --all` removes every object"), "sre team lint: {}", text(&o));

    let sys2 = system_dir(&tmp.path().join("other"), |c| c);
    let o =
        ddcoterm(&tmp.path().join("other"), &sys2, &["check", "--", "kubectl", "delete", "pods", "--all"]);
    assert!(!text(&o).contains("removes every object"), "not in the sre group: {}", text(&o));
}

#[test]
fn profile_snippet_puts_the_shims_first_once() {
    let snippet = repo().join("deploy/profile.d/ddcoterm.sh");
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(". {0}; . {0}; printf '%s' \"$PATH\"", snippet.display()))
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "/usr/local/lib/ddcoterm/overrides:/usr/bin:/bin");
}

fn install_sh(src_config: &Path, src_bundles: &Path, dest: &Path, shims: &str) -> Output {
    Command::new("sh")
        .arg(repo().join("helm/ddcoterm/files/install.sh"))
        .env("SRC_CONFIG", src_config)
        .env("SRC_BUNDLES", src_bundles)
        .env("DEST_SYSTEM", dest.join("etc"))
        .env("DEST_SHIMS", dest.join("shims"))
        .env("DEST_PROFILE", dest.join("profile.d"))
        .env("SHIMS", shims)
        // SHIM_TARGET unset: the default, the static shim binary in /usr/local/bin.
        .env_remove("SHIM_TARGET")
        // The cache warm-up runs this build, never whatever ddcoterm the host has in /usr/local/bin.
        .env("WARM_BIN", BIN)
        .env("WRITE_KEYS", "1")
        .env("DD_API_KEY", "k-123")
        .output()
        .unwrap()
}

/// The chart's ConfigMap directories (config: deploy/config/system.yaml as `config.yaml` and the profile
/// snippet; bundles: empty) and where install.sh installs to, under `root`.
fn chart_sources(root: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (cfg, bundles, dest) = (root.join("cfg"), root.join("bundles"), root.join("dest"));
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::create_dir_all(&bundles).unwrap();
    std::fs::copy(repo().join("deploy/config/system.yaml"), cfg.join("config.yaml")).unwrap();
    std::fs::copy(repo().join("helm/ddcoterm/files/ddcoterm.sh"), cfg.join("ddcoterm.sh")).unwrap();
    (cfg, bundles, dest)
}

#[test]
fn chart_install_script_installs_prunes_and_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, bundles, dest) = chart_sources(tmp.path());
    std::fs::copy(repo().join("deploy/config/teams/sre.yaml"), cfg.join("team.sre.yaml")).unwrap();
    std::fs::write(bundles.join("b.yaml"), "name: b\nrevision: 1\n").unwrap();
    std::fs::write(bundles.join("b.yaml.sig"), "c2ln\n").unwrap();

    let first = install_sh(&cfg, &bundles, &dest, "kubectl helm");
    assert!(first.status.success(), "{}", text(&first));
    let mode = |p: &str| std::fs::metadata(dest.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("etc/config.yaml"), 0o644);
    assert_eq!(mode("etc/teams/sre.yaml"), 0o644);
    assert_eq!(mode("etc/bundles/b.yaml.sig"), 0o644);
    assert_eq!(mode("etc/bundles"), 0o755);
    assert_eq!(mode("etc/datadog.env"), 0o600, "keys are 0600");
    assert_eq!(std::fs::read_to_string(dest.join("etc/datadog.env")).unwrap(), "DD_API_KEY=k-123\n");
    assert_eq!(
        std::fs::read_link(dest.join("shims/kubectl")).unwrap(),
        Path::new("/usr/local/bin/ddcoterm-shim")
    );
    assert!(dest.join("profile.d/ddcoterm.sh").exists());

    let second = install_sh(&cfg, &bundles, &dest, "kubectl helm");
    assert!(second.status.success());
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(!out.contains("installed") && !out.contains("shim "), "second run changes nothing: {out}");

    // Removed from the values: the team, the bundle and the helm shim go; a foreign file in shims stays.
    std::fs::remove_file(cfg.join("team.sre.yaml")).unwrap();
    std::fs::remove_file(bundles.join("b.yaml")).unwrap();
    std::fs::remove_file(bundles.join("b.yaml.sig")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/true", dest.join("shims/foreign")).unwrap();
    // A shim of an older chart, pointing at ddcoterm itself, is ours too.
    std::os::unix::fs::symlink("/usr/local/bin/ddcoterm", dest.join("shims/terraform")).unwrap();
    let third = install_sh(&cfg, &bundles, &dest, "kubectl");
    assert!(third.status.success(), "{}", text(&third));
    assert!(!dest.join("etc/teams/sre.yaml").exists());
    assert!(!dest.join("etc/bundles/b.yaml").exists());
    assert!(std::fs::symlink_metadata(dest.join("shims/helm")).is_err(), "helm shim removed");
    assert!(
        std::fs::symlink_metadata(dest.join("shims/terraform")).is_err(),
        "an older chart's shim removed"
    );
    assert!(std::fs::symlink_metadata(dest.join("shims/foreign")).is_ok(), "not ours: left alone");
}

/// The listing of `dir` (file names, sorted).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn chart_install_script_warms_the_policy_cache_the_shims_then_read() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, bundles, dest) = chart_sources(tmp.path());
    let o = install_sh(&cfg, &bundles, &dest, "kubectl");
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("warning"), "{}", text(&o));
    let warmed = names(&dest.join("etc/cache"));
    assert!(warmed.iter().any(|n| n.starts_with("yaml-")), "the layer's parse is cached: {warmed:?}");
    assert!(warmed.iter().any(|n| n.starts_with("luau-")), "kubectl's compiled rules are cached: {warmed:?}");

    // The main container mounts the layer elsewhere (/etc/ddcoterm): entries are named by content, so a
    // guarded call there finds every one it needs and (being allowed to write) adds none.
    let sys = tmp.path().join("mounted-etc-ddcoterm");
    std::fs::rename(dest.join("etc"), &sys).unwrap();
    let (real, shims) = (tmp.path().join("real"), tmp.path().join("shims"));
    std::fs::create_dir_all(&real).unwrap();
    std::fs::create_dir_all(&shims).unwrap();
    std::fs::write(real.join("kubectl"), "#!/bin/sh\necho real-kubectl \"$@\"\n").unwrap();
    std::fs::set_permissions(real.join("kubectl"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(BIN, shims.join("kubectl")).unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let call = Command::new(shims.join("kubectl"))
        .args(["get", "pods", "--context", "dev"])
        .env_clear()
        .env("PATH", format!("{}:{}:/usr/bin:/bin", shims.display(), real.display()))
        .env("HOME", &home)
        .env("DDCOTERM_SYSTEM_DIR", &sys)
        .output()
        .unwrap();
    assert!(call.status.success(), "{}", text(&call));
    assert_eq!(String::from_utf8_lossy(&call.stdout), "real-kubectl get pods --context dev\n");
    assert_eq!(names(&sys.join("cache")), warmed, "the call needed nothing the warm-up had not cached");
}
