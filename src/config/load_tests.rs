//! `figment::Jail` tests for every precedence and policy-floor rule of the layer loader.
// figment's Jail closures return figment::Error, which is large; not ours to shrink.
#![allow(clippy::result_large_err)]

use super::load::{load, load_guarded, LoadOptions};
use crate::dirs::Dirs;
use crate::model::{Action, ActionSet};
use figment::Jail;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn dirs(jail: &Jail) -> Dirs {
    Dirs::at(jail.directory().join("etc"), jail.directory().join("home"))
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

fn opts(jail: &Jail, sets: &[&str]) -> LoadOptions {
    LoadOptions { dirs: dirs(jail), sets: sets.iter().map(|s| s.to_string()).collect() }
}

fn primary_group() -> String {
    nix::unistd::Group::from_gid(nix::unistd::getgid()).unwrap().unwrap().name
}

const ORG_POLICY: &str = "process_config:
  default_actions: [record]
  commands:
    - command: kubectl
      lints: [\"return 'org lint'\"]
      rules:
        - rule: has_arg('delete')
          actions: [record, approval]
";

#[test]
fn nothing_configured_gives_builtin_defaults() {
    Jail::expect_with(|jail| {
        let l = load(&opts(jail, &[])).unwrap();
        assert_eq!(l.settings.connection_config.host, "https://app.datadoghq.com");
        assert_eq!(
            l.policy.default_actions,
            ActionSet::new([Action::Record, Action::Logs, Action::ProcessInfo])
        );
        assert!(l.layers.iter().all(|x| !x.exists));
        assert_eq!(l.origins()["spool.max_bytes"].layer, "default");
        Ok(())
    });
}

#[test]
fn scalar_precedence_system_team_user_env_flags() {
    Jail::expect_with(|jail| {
        let d = dirs(jail);
        write(&d.system_config(), &format!("teams:\n  sre: [{}]\nspool:\n  max_bytes: 1\n  flush_timeout: 1s\nrecording:\n  merge_bytes: 1\n  input: false\napproval:\n  poll_interval: 9s\n", primary_group()));
        write(
            &d.teams().join("sre.yaml"),
            "spool:\n  max_bytes: 2\nrecording:\n  merge_bytes: 2\napproval:\n  poll_interval: 8s\n",
        );
        write(&d.user_config(), "spool:\n  max_bytes: 3\nrecording:\n  merge_bytes: 3\n");
        jail.set_env("DDCOTERM_SPOOL__MAX_BYTES", "4");
        let l = load(&opts(jail, &["spool.max_bytes=5"])).unwrap();
        assert_eq!(l.settings.spool.max_bytes, 5, "flags win");
        assert_eq!(l.origins()["spool.max_bytes"].layer, "flags");
        assert_eq!(
            l.settings.spool.flush_timeout.as_str(),
            "1s",
            "system value kept where nothing overrides"
        );
        assert_eq!(l.settings.approval.poll_interval.as_str(), "8s", "team overrides system");
        assert_eq!(l.origins()["approval.poll_interval"].layer, "team");
        assert_eq!(l.settings.recording.merge_bytes, 3, "user overrides team");
        assert_eq!(l.origins()["recording.merge_bytes"].line(), Some(4));
        let l = load(&opts(jail, &[])).unwrap();
        assert_eq!(l.settings.spool.max_bytes, 4, "env overrides user");
        assert_eq!(l.origins()["spool.max_bytes"].source, "DDCOTERM_SPOOL__MAX_BYTES");
        Ok(())
    });
}

#[test]
fn team_file_only_for_members_of_its_groups() {
    Jail::expect_with(|jail| {
        let d = dirs(jail);
        write(&d.system_config(), "teams:\n  other: [no-such-group-xyz]\n");
        write(&d.teams().join("other.yaml"), "spool:\n  max_bytes: 77\n");
        let l = load(&opts(jail, &[])).unwrap();
        assert_ne!(l.settings.spool.max_bytes, 77);
        Ok(())
    });
}

#[test]
fn user_cannot_remove_or_reorder_org_policy() {
    Jail::expect_with(|jail| {
        let d = dirs(jail);
        write(&d.system_config(), ORG_POLICY);
        write(
            &d.user_config(),
            "process_config:\n  default_actions: []\n  commands:\n    - command: kubectl\n      lints: []\n      rules:\n        - rule: 'true'\n          actions: []\n",
        );
        let l = load(&opts(jail, &[])).unwrap();
        let lints: Vec<&str> = l.policy.lints_for("kubectl").map(|x| x.lua.as_str()).collect();
        assert_eq!(lints, ["return 'org lint'"], "org lint survives an empty user list");
        let rules: Vec<&str> = l.policy.rules_for("kubectl").map(|r| r.at.origin.layer.as_str()).collect();
        assert_eq!(rules, ["system", "user"], "org rule evaluated first");
        assert_eq!(l.policy.default_actions, ActionSet::new([Action::Record]), "union keeps org default");
        Ok(())
    });
}

#[test]
fn env_and_flags_cannot_weaken_policy_either() {
    Jail::expect_with(|jail| {
        let d = dirs(jail);
        write(&d.system_config(), ORG_POLICY);
        jail.set_env("DDCOTERM_PROCESS_CONFIG__DEFAULT_ACTIONS", "[]");
        let l = load(&opts(jail, &["process_config.commands=[]"])).unwrap();
        assert_eq!(l.policy.lints_for("kubectl").count(), 1);
        assert_eq!(l.policy.rules_for("kubectl").count(), 1);
        assert_eq!(l.policy.default_actions, ActionSet::new([Action::Record]));
        Ok(())
    });
}

#[test]
fn locked_keys_keep_the_org_value_and_warn() {
    Jail::expect_with(|jail| {
        let d = dirs(jail);
        write(
            &d.system_config(),
            "locked: [redaction.enabled, spool.dir]\nspool:\n  dir: /var/spool/ddcoterm\n",
        );
        write(&d.user_config(), "redaction:\n  enabled: false\nspool:\n  dir: /tmp/mine\n");
        jail.set_env("DDCOTERM_REDACTION__ENABLED", "false");
        let l = load(&opts(jail, &["redaction.enabled=false"])).unwrap();
        assert!(l.settings.redaction.enabled);
        assert_eq!(l.settings.spool.dir.as_deref(), Some(Path::new("/var/spool/ddcoterm")));
        assert!(l.warnings.iter().any(|w| w.contains("`redaction.enabled` is locked")), "{:?}", l.warnings);
        assert_eq!(l.origins()["redaction.enabled"].layer, "system");
        Ok(())
    });
}

#[test]
fn locked_policy_lists_drop_user_rules() {
    Jail::expect_with(|jail| {
        let d = dirs(jail);
        write(&d.system_config(), &format!("locked: [process_config.commands]\n{ORG_POLICY}"));
        write(&d.user_config(), "process_config:\n  commands:\n    - command: kubectl\n      rules:\n        - rule: 'true'\n          actions: []\n");
        let l = load(&opts(jail, &[])).unwrap();
        assert_eq!(l.policy.rules_for("kubectl").count(), 1);
        assert!(l.warnings.iter().any(|w| w.contains("locked")));
        Ok(())
    });
}

#[test]
fn unknown_locked_key_is_a_config_error() {
    Jail::expect_with(|jail| {
        let d = dirs(jail);
        write(&d.system_config(), "locked: [redaction.enabeld]\n");
        let e = load(&opts(jail, &[])).unwrap_err().to_string();
        assert!(e.contains("locked[0]") && e.contains("redaction.enabeld"), "{e}");
        Ok(())
    });
}

#[test]
fn system_only_keys_from_user_are_ignored() {
    Jail::expect_with(|jail| {
        let d = dirs(jail);
        write(&d.system_config(), "bundles:\n  trusted_keys: []\n");
        write(&d.user_config(), "locked: []\nteams:\n  root: [root]\nbundles:\n  trusted_keys: [abc]\n");
        let l = load(&opts(jail, &[])).unwrap();
        assert!(l.settings.bundles.trusted_keys.is_empty());
        assert!(l.settings.teams.is_empty());
        assert!(l.warnings.iter().any(|w| w.contains("`bundles.trusted_keys` is honoured from")));
        Ok(())
    });
}

#[test]
fn dd_env_keys_are_strings_and_site_maps_to_host() {
    Jail::expect_with(|jail| {
        jail.set_env("DD_API_KEY", "12345678901234567890123456789012");
        jail.set_env("DD_SITE", "datadoghq.eu");
        let l = load(&opts(jail, &[])).unwrap();
        assert_eq!(l.settings.connection_config.api_key.as_deref(), Some("12345678901234567890123456789012"));
        assert_eq!(l.settings.connection_config.host, "datadoghq.eu");
        assert_eq!(l.origins()["connection_config.api_key"].source, "DD_API_KEY");
        Ok(())
    });
}

#[test]
fn bad_env_value_names_the_key() {
    Jail::expect_with(|jail| {
        jail.set_env("DDCOTERM_SPOOL__MAX_BYTES", "lots");
        let e = load(&opts(jail, &[])).unwrap_err().to_string();
        assert!(e.contains("spool.max_bytes"), "{e}");
        Ok(())
    });
}

#[test]
fn unknown_env_key_is_an_error() {
    Jail::expect_with(|jail| {
        jail.set_env("DDCOTERM_RECORDING__INPTU", "true");
        let e = load(&opts(jail, &[])).unwrap_err().to_string();
        assert!(e.contains("inptu"), "{e}");
        Ok(())
    });
}

#[test]
fn bad_set_flag_is_an_error() {
    Jail::expect_with(|jail| {
        let e = load(&opts(jail, &["recording.input"])).unwrap_err().to_string();
        assert!(e.contains("KEY=VALUE"), "{e}");
        Ok(())
    });
}

#[test]
fn writable_system_config_is_refused() {
    Jail::expect_with(|jail| {
        let d = dirs(jail);
        write(&d.system_config(), "enable_telemetry: false\n");
        std::fs::set_permissions(d.system_config(), std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = load(&opts(jail, &[])).unwrap_err().to_string();
        assert!(e.contains("writable by everyone") && e.contains("chmod go-w"), "{e}");
        Ok(())
    });
}

#[test]
fn user_file_with_keys_readable_by_others_warns() {
    Jail::expect_with(|jail| {
        let d = dirs(jail);
        write(&d.user_config(), "connection_config:\n  api_key: abc\n");
        let l = load(&opts(jail, &[])).unwrap();
        assert!(l.warnings.iter().any(|w| w.contains("chmod 600")), "{:?}", l.warnings);
        Ok(())
    });
}

#[test]
fn coterm_reference_configs_load_unchanged() {
    Jail::expect_with(|jail| {
        let d = dirs(jail);
        let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy_fixtures");
        for f in ["coterm-config.yaml", "coterm-lint.yaml", "coterm-rules.yaml"] {
            let text = std::fs::read_to_string(reference.join(f)).unwrap();
            write(&d.user_config(), &text);
            std::fs::set_permissions(d.user_config(), std::fs::Permissions::from_mode(0o600)).unwrap();
            let l = load(&opts(jail, &[])).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert!(l.warnings.is_empty() || f == "coterm-config.yaml", "{f}: {:?}", l.warnings);
        }
        Ok(())
    });
}

/// The one-layer shortcut (no figment when a single file and no env/flags are in play) must give exactly what
/// figment's merge gives. An empty user file forces the merge path for the same values.
#[test]
fn one_layer_shortcut_equals_the_figment_merge() {
    let every_section = "connection_config: {host: 'https://app.datadoghq.eu', port: 8443, api_key: k1}
enable_telemetry: true
recording: {input: true, merge_window: 20ms}
redaction:
  patterns: [{name: ticket, regex: 'TCK-[0-9]+'}]
spool: {max_bytes: 1000000}
policy: {snippet_timeout: 80ms, memory_limit: 2097152}
lints: {non_interactive: allow}
process_config:
  default_actions: [record, logs]
  commands:
    - command: kubectl
      lints: [\"'w'\"]
      rules: [{rule: has_arg('x'), actions: [approval]}]
";
    let reference = |name: &str| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy_fixtures").join(name),
        )
        .unwrap()
    };
    let deploy =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config/system.yaml"))
            .unwrap();
    let texts =
        [every_section.to_string(), reference("coterm-config.yaml"), reference("coterm-rules.yaml"), deploy];
    for (i, text) in texts.iter().enumerate() {
        Jail::expect_with(|jail| {
            let d = dirs(jail);
            write(&d.system_config(), text);
            let short = load(&opts(jail, &[])).map_err(|e| format!("text {i}: {e}"))?;
            write(&d.user_config(), "{}\n");
            let merged = load(&opts(jail, &[])).map_err(|e| format!("text {i}: {e}"))?;
            assert_eq!(short.settings, merged.settings, "text {i}");
            assert_eq!(short.policy, merged.policy, "text {i}");
            assert_eq!(short.warnings, merged.warnings, "text {i}");
            Ok(())
        });
    }
}

#[test]
fn agent_paths_come_from_the_system_layer_only() {
    Jail::expect_with(|jail| {
        let d = dirs(jail);
        write(&d.system_config(), "agent:\n  enabled: true\n  state_dir: /var/spool/ddcoterm\n");
        write(&d.user_config(), "agent:\n  enabled: false\n  state_dir: /home/mallory/evidence\n");
        jail.set_env("DDCOTERM_AGENT__SOCKET", "/tmp/fake-agent.sock");
        let l = load(&opts(jail, &["agent.when_full=run_unrecorded"])).unwrap();
        assert!(l.settings.agent.enabled);
        assert_eq!(l.settings.agent.state_dir, Path::new("/var/spool/ddcoterm"));
        assert_eq!(l.settings.agent.socket, Path::new("/run/ddcoterm/agent.sock"));
        assert_eq!(l.settings.agent.when_full, crate::config::settings::WhenFull::Refuse);
        assert!(l.warnings.iter().any(|w| w.contains("`agent` is honoured from")), "{:?}", l.warnings);
        Ok(())
    });
}

#[test]
fn a_broken_user_file_fails_loading_but_is_skipped_on_the_guard_path() {
    Jail::expect_with(|jail| {
        let d = dirs(jail);
        write(&d.system_config(), ORG_POLICY);
        write(&d.user_config(), "spool:\n  max_bytes: 3\nrecording:\n  inptu: true\n");
        let e = load(&opts(jail, &[])).unwrap_err().to_string();
        assert!(e.contains("config.yaml:4:3: key `recording`: unknown field `inptu`"), "{e}");
        let l = load_guarded(&opts(jail, &[])).unwrap();
        let w = l.warnings.iter().find(|w| w.contains("inptu")).expect("warned");
        assert!(w.contains("home/config.yaml:4:3") && w.contains("skipped"), "{w}");
        assert_ne!(l.settings.spool.max_bytes, 3, "the whole user file is skipped, not half of it");
        assert_eq!(l.policy.lints_for("kubectl").count(), 1, "org policy still loaded");
        assert_eq!(l.policy.default_actions, ActionSet::new([Action::Record]));
        // A broken organisation file is never skipped.
        write(&d.system_config(), "process_config:\n  comands: []\n");
        assert!(load_guarded(&opts(jail, &[])).is_err());
        Ok(())
    });
}

#[test]
fn a_broken_ddcoterm_variable_is_skipped_alone_on_the_guard_path_and_a_bad_flag_still_fails() {
    Jail::expect_with(|jail| {
        let d = dirs(jail);
        write(&d.system_config(), ORG_POLICY);
        jail.set_env("DDCOTERM_RECORDING__INPUT", "maybe");
        jail.set_env("DDCOTERM_RECORDING__MERGE_BYTES", "3");
        assert!(load(&opts(jail, &[])).is_err());
        let l = load_guarded(&opts(jail, &[])).unwrap();
        assert_eq!(l.settings.recording.merge_bytes, 3, "the good variable still applies");
        assert!(!l.settings.recording.input);
        let w = l.warnings.iter().find(|w| w.contains("DDCOTERM_RECORDING__INPUT")).expect("warned");
        assert!(w.contains("key `recording.input`") && w.contains("ignored"), "{w}");
        assert_eq!(l.policy.lints_for("kubectl").count(), 1);
        assert!(
            load_guarded(&opts(jail, &["recording.merge_bytes=lots"])).is_err(),
            "--set is typed, not inherited"
        );
        Ok(())
    });
}
