//! The shim's policy cost: `PolicyEngine::evaluate` for `kubectl get pods` against 20 organisation rules that
//! do not match (the DESIGN.md §11 scenario), plus the whole decision with config loading.

use criterion::{criterion_group, criterion_main, Criterion};
use ddcoterm::config::policy_set::PolicyLayer;
use ddcoterm::config::settings::PolicySettings;
use ddcoterm::config::{file_layer, PolicySet};
use ddcoterm::policy::{Invocation, PolicyEngine};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;

fn org_policy_yaml() -> String {
    let mut y = String::from("process_config:\n  commands:\n    - command: kubectl\n      rules:\n");
    for i in 0..20 {
        y.push_str(&format!(
            "        - rule: has_arg(\"delete-{i}\") and k8s_context == \"prod-{i}\"\n          actions: [record, approval]\n"
        ));
    }
    y
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".kube")).unwrap();
    std::fs::write(dir.path().join(".kube/config"), "apiVersion: v1\ncurrent-context: dev\n").unwrap();
    let yaml = org_policy_yaml();
    let f = file_layer::parse(Path::new("/etc/ddcoterm/config.yaml"), &yaml).unwrap();
    let layer = PolicyLayer {
        layer: "system".into(),
        source: "/etc/ddcoterm/config.yaml".into(),
        process_config: f.settings.process_config,
        lines: Some(f.lines),
        detail: None,
    };
    let set = PolicySet::compose(&[layer]);
    let engine = PolicyEngine::from_settings(&set, &PolicySettings::default()).unwrap();
    let inv = Invocation {
        executable: "kubectl".into(),
        args: vec!["get".into(), "pods".into()],
        env: BTreeMap::from([("HOME".to_string(), dir.path().display().to_string())]),
        cwd: dir.path().into(),
        user: "alice".into(),
        hostname: "bastion".into(),
    };
    let d = engine.evaluate(&inv, None);
    assert!(d.rule.is_none() && d.errors.is_empty(), "{d:?}");

    c.bench_function("evaluate kubectl, 20 non-matching org rules", |b| {
        b.iter(|| black_box(engine.evaluate(black_box(&inv), None)))
    });
    let helm = Invocation { executable: "helm".into(), ..inv.clone() };
    c.bench_function("evaluate an executable with no snippets", |b| {
        b.iter(|| black_box(engine.evaluate(black_box(&helm), None)))
    });

    let flags = BTreeMap::new();
    let ctx = BTreeMap::new();
    let cwd = "/tmp";
    let globals = ddcoterm::policy::sandbox::Globals {
        libraries: ddcoterm::policy::sandbox::Libraries::all(),
        executable: "kubectl",
        args: &inv.args,
        flags: &flags,
        env: None,
        user: Some("alice"),
        hostname: Some("bastion"),
        cwd,
        context: &ctx,
    };
    let budget = std::time::Duration::from_millis(50);
    c.bench_function("sandbox: create the Lua state", |b| {
        b.iter(|| black_box(ddcoterm::policy::sandbox::Sandbox::new(16 << 20, budget, &globals).unwrap()))
    });
    let sb = ddcoterm::policy::sandbox::Sandbox::new(16 << 20, budget, &globals).unwrap();
    c.bench_function("sandbox: compile one rule", |b| {
        b.iter(|| black_box(sb.compile("r", "has_arg(\"delete-1\") and k8s_context == \"prod-1\"").unwrap()))
    });
    let f = sb.compile("r", "has_arg(\"delete-1\") and k8s_context == \"prod-1\"").unwrap();
    c.bench_function("sandbox: run one rule", |b| b.iter(|| black_box(sb.run(&f).unwrap())));

    // Whole decision as the shim does it: layered load (system file with the 20 rules) + engine + evaluate.
    let sys = dir.path().join("sys");
    std::fs::create_dir_all(&sys).unwrap();
    std::fs::write(sys.join("config.yaml"), &yaml).unwrap();
    let opts = ddcoterm::config::LoadOptions {
        dirs: ddcoterm::dirs::Dirs::at(sys, dir.path().join("home")),
        sets: Vec::new(),
    };
    c.bench_function("config load + evaluate kubectl, 20 org rules", |b| {
        b.iter(|| {
            let loaded = ddcoterm::config::load(&opts).unwrap();
            let e = PolicyEngine::from_settings(&loaded.policy, &loaded.settings.policy).unwrap();
            black_box(e.evaluate(&inv, None))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
