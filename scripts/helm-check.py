#!/usr/bin/env python3
"""Lints and renders helm/ddcoterm with the Helm 4 engine (helm-python-sdk), validates every rendered manifest
against the Kubernetes schemas offline (kubernetes-validate, strict), for the default values and for each
non-default values file, and checks chart invariants (security context, limits, no keys in ConfigMaps).

With --ddcoterm BIN, each rendering's organisation layer (config.yaml, teams, bundles) is also written to a
temporary /etc/ddcoterm and loaded by `BIN config show`, so a value that ddcoterm would reject fails here.

Usage: .build/venv/bin/python scripts/helm-check.py [--ddcoterm target/release/ddcoterm] [--kube-version 1.30.0]
Exit status: 0 when everything passes; 1 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "ddcoterm"
RELEASE = "fleet"
NAMESPACE = "coterm"


def load_values(path: Path | None) -> dict:
    if path is None:
        return {}
    with path.open() as f:
        return yaml.safe_load(f) or {}


def lint(values: dict, label: str, kube_version: str) -> list[str]:
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE, kube_version=f"v{kube_version}")
    problems = [f"{label}: lint error: {e}" for e in report.get("errors") or []]
    for m in report.get("messages") or []:
        if m.get("severity", 0) >= 2:  # warning or error; strict lint treats both as failures
            problems.append(f"{label}: lint {m.get('path')}: {m.get('error')}")
    return problems


def render(values: dict) -> dict[str, list[dict]]:
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(values)
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    out: dict[str, list[dict]] = {}
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            if not text.strip():
                raise SystemExit(f"{template}: renders empty")
            continue
        docs = [d for d in yaml.safe_load_all(text) if d]
        if docs:
            out[template] = docs
    return out


def validate(manifests: dict[str, list[dict]], label: str, kube_version: str) -> list[str]:
    problems = []
    for template, docs in manifests.items():
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, kube_version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = "/".join(str(p) for p in e.caught.path)
                problems.append(f"{label}: {template}: {doc.get('kind')}: {path}: {e.caught.message}")
            except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as e:
                problems.append(f"{label}: {template}: {e}")
    return problems


def invariants(manifests: dict[str, list[dict]], label: str) -> list[str]:
    """What the chart promises beyond the Kubernetes schema."""
    problems = []
    for template, docs in manifests.items():
        for doc in docs:
            kind = doc["kind"]
            name = doc["metadata"]["name"]
            where = f"{label}: {template}: {kind}/{name}"
            if kind == "ConfigMap":
                for key, text in (doc.get("data") or {}).items():
                    if key.endswith(".yaml") and not key.endswith(".sig"):
                        parsed = yaml.safe_load(text) or {}
                        conn = parsed.get("connection_config") or {}
                        if "api_key" in conn or "app_key" in conn:
                            problems.append(f"{where}: {key} holds a Datadog key")
                if "ddcoterm.conf" in (doc.get("data") or {}):
                    # The sshd drop-in: every session through ssh-login, the key exposed for the recording.
                    dropin = doc["data"]["ddcoterm.conf"].splitlines()
                    for line in ("ForceCommand /usr/local/bin/ddcoterm ssh-login", "ExposeAuthInfo yes"):
                        if line not in dropin:
                            problems.append(f"{where}: ddcoterm.conf lacks `{line}`")
                    if "Include /etc/ddcoterm-sshd/ddcoterm.conf" not in doc["data"].get("sshd_config", ""):
                        problems.append(f"{where}: sshd_config does not include the drop-in")
            if kind not in ("Deployment", "DaemonSet"):
                continue
            spec = doc["spec"]["template"]["spec"]
            for c in spec.get("initContainers", []) + spec["containers"]:
                sc = c.get("securityContext") or {}
                if sc.get("allowPrivilegeEscalation") is not False:
                    problems.append(f"{where}: {c['name']}: allowPrivilegeEscalation is not false")
                if sc.get("readOnlyRootFilesystem") is not True:
                    problems.append(f"{where}: {c['name']}: root filesystem is writable")
                if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                    problems.append(f"{where}: {c['name']}: capabilities not dropped")
                limits = (c.get("resources") or {}).get("limits") or {}
                if "memory" not in limits or "cpu" not in limits:
                    problems.append(f"{where}: {c['name']}: missing cpu/memory limits")
            if kind == "Deployment":
                psc = spec.get("securityContext") or {}
                if psc.get("runAsNonRoot") is not True:
                    problems.append(f"{where}: bastion pods must run as non-root")
    return problems


def system_dir_from(manifests: dict[str, list[dict]], dest: Path) -> None:
    """Materialises /etc/ddcoterm the way install.sh does, from the rendered ConfigMaps."""
    cms = {d["metadata"]["name"]: d.get("data") or {} for docs in manifests.values() for d in docs
           if d["kind"] == "ConfigMap"}
    config = next(v for k, v in cms.items() if k.endswith("-config"))
    bundles = next(v for k, v in cms.items() if k.endswith("-bundles"))
    for sub in ("", "teams", "bundles"):
        (dest / sub).mkdir(mode=0o755, exist_ok=True)
    (dest / "config.yaml").write_text(config["config.yaml"])
    for key, text in config.items():
        if key.startswith("team.") and key.endswith(".yaml"):
            (dest / "teams" / key[len("team."):]).write_text(text)
    for key, text in bundles.items():
        (dest / "bundles" / key).write_text(text)
    for p in dest.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)


def ddcoterm_loads(binary: str, manifests: dict[str, list[dict]], label: str) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        system = Path(tmp) / "etc-ddcoterm"
        home = Path(tmp) / "home"
        system.mkdir(mode=0o755)
        home.mkdir(mode=0o700)
        system_dir_from(manifests, system)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DDCOTERM_", "DD_"))}
        env.update(DDCOTERM_SYSTEM_DIR=str(system), DDCOTERM_HOME=str(home), HOME=str(home))
        r = subprocess.run([binary, "config", "show"], env=env, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            return [f"{label}: ddcoterm rejects the rendered config (exit {r.returncode}): {r.stderr.strip()}"]
    return []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ddcoterm", help="binary used to load each rendered organisation layer")
    ap.add_argument("--kube-version", default="1.30.0", help="Kubernetes version to lint and validate for")
    ap.add_argument("values", nargs="*", type=Path,
                    help="extra values files (default: every helm/ddcoterm/ci/*.yaml)")
    args = ap.parse_args()

    start = time.monotonic()
    sets: list[tuple[str, Path | None]] = [("default", None)]
    for p in args.values or sorted((CHART / "ci").glob("*.yaml")):
        sets.append((p.name, p))

    problems: list[str] = []
    for label, path in sets:
        values = load_values(path)
        problems += lint(values, label, args.kube_version)
        try:
            manifests = render(values)
        except helm.HelmError as e:
            problems.append(f"{label}: render failed: {e}")
            continue
        kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for docs in manifests.values() for d in docs)
        print(f"helm-check: {label}: {len(kinds)} objects: {', '.join(kinds)}")
        problems += validate(manifests, label, args.kube_version)
        problems += invariants(manifests, label)
        if args.ddcoterm:
            problems += ddcoterm_loads(args.ddcoterm, manifests, label)

    # A values file that breaks the schema must be refused (the schema is a real gate, not decoration).
    with helm.Chart.load(str(CHART)) as chart:
        for bad in ({"bastion": {"replicas": "two"}}, {"config": {"connection_config": {"api_key": "x"}}},
                    {"nodeInstaller": {"hostPaths": {"binDir": "relative/bin"}}}, {"unknownKey": 1},
                    {"bastion": {"sshd": {"port": 22}}}, {"bastion": {"sshd": {"allowTcpForwarding": "maybe"}}}):
            try:
                chart.validate_schema(bad)
                problems.append(f"schema: accepted invalid values {bad}")
            except helm.HelmValuesError:
                pass

    for p in problems:
        print(f"helm-check: FAIL {p}", file=sys.stderr)
    took = time.monotonic() - start
    print(f"helm-check: {len(sets)} value sets, {len(problems)} problems, {took:.1f}s "
          f"(Helm SDK {helm.helm_sdk_version()}, Kubernetes schemas {args.kube_version})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
