//! Cost of loading signed bundles on every shim call: read + ed25519 verify + YAML parse of the example
//! bundle, its parts (signature, YAML, line map), and 10 bundles installed (DESIGN.md §11: shim decision <= 2 ms).

use criterion::{criterion_group, criterion_main, Criterion};
use ddcoterm::config::bundle_layer::{load_dir, parse_public_key, verify_detached, BundleDoc};
use ddcoterm::config::file_layer::line_map;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn install(dir: &Path, copies: usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/bundles");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for i in 0..copies {
        let p = dir.join(format!("b{i:02}.yaml"));
        std::fs::copy(root.join("sre-baseline.yaml"), &p).unwrap();
        std::fs::copy(root.join("sre-baseline.yaml.sig"), dir.join(format!("b{i:02}.yaml.sig"))).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/bundles");
    let pubkey = std::fs::read_to_string(root.join("example-signing.pub")).unwrap();
    parse_public_key(&pubkey).unwrap();
    let line = pubkey.lines().find(|l| !l.starts_with('#')).unwrap().to_string();
    let keys = vec![line];
    let data = std::fs::read(root.join("sre-baseline.yaml")).unwrap();
    let sig = std::fs::read_to_string(root.join("sre-baseline.yaml.sig")).unwrap();
    let vk = [parse_public_key(&pubkey).unwrap()];
    c.bench_function("verify signature", |b| b.iter(|| verify_detached(&data, &sig, &vk).unwrap()));
    let text = std::str::from_utf8(&data).unwrap();
    c.bench_function("parse bundle yaml", |b| b.iter(|| serde_yaml::from_str::<BundleDoc>(text).unwrap()));
    c.bench_function("line map", |b| b.iter(|| line_map(text)));
    for copies in [1, 10] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bundles");
        install(&dir, copies);
        c.bench_function(&format!("load_dir signed x{copies}"), |b| {
            b.iter(|| assert_eq!(load_dir(&dir, &keys).unwrap().len(), copies))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
