#!/usr/bin/env python3
"""Lints and renders helm/ddcoterm with the Helm 4 engine (helm-python-sdk), validates every rendered manifest
against the Kubernetes schemas offline (kubernetes-validate, strict), for the default values and for each
non-default values file, and checks chart invariants (security contexts, limits, no keys in ConfigMaps; the
bastion's shell container mounts neither the agent's spool nor its token; the server's public URL follows the
Ingress; probes; the alert uses metrics the server exports). Values the chart must refuse are rendered and
must fail with a message naming the value; rendered manifests broken on purpose must be caught by the
invariants (so the checks can fail). The README's parameter table must be current (scripts/helm-docs.py).

With --ddcoterm BIN, each rendering's organisation layer (config.yaml, teams, bundles, and the bastion's
agent-mode layer) is also written to a temporary /etc/ddcoterm and loaded by `BIN config show`, so a value
that ddcoterm would reject fails here. With --ddcoterm-server SBIN too, a real server runs with the
environment the chart renders (every DDCOTERMD_* name must be a setting it knows; links under the public
URL; probes; the metrics listener), and the chart's scripts run outside Kubernetes against it: the `helm
test` hook (files/server-test.sh) uploads and reads back a session, and the agent sidecar
(files/agent-start.sh with the rendered bastion config, as the pod's uids when run as root) records a
session that reaches the server complete.

Usage: .build/venv/bin/python scripts/helm-check.py [--ddcoterm target/debug/ddcoterm]
           [--ddcoterm-server target/debug/ddcoterm-server] [--kube-version 1.30.0] [values.yaml ...]
Exit status: 0 when everything passes; 1 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import select
import socket
import ssl
import threading
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "ddcoterm"
RELEASE = "fleet"
NAMESPACE = "coterm"
# Custom resources kubernetes-validate has no schema for: checked by `custom_resources` instead.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Pod")


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
            if doc.get("kind") in CRD_KINDS:
                continue
            try:
                kubernetes_validate.validate(doc, kube_version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = "/".join(str(p) for p in e.caught.path)
                problems.append(f"{label}: {template}: {doc.get('kind')}: {path}: {e.caught.message}")
            except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as e:
                problems.append(f"{label}: {template}: {e}")
    return problems


def pod_spec(doc: dict) -> dict:
    return doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]


def objects(manifests: dict[str, list[dict]], kind: str) -> list[dict]:
    return [d for docs in manifests.values() for d in docs if d["kind"] == kind]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env") or []}


def invariants(manifests: dict[str, list[dict]], label: str, values: dict | None = None) -> list[str]:
    """What the chart promises beyond the Kubernetes schema."""
    values = values or {}
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
                        if "token_file" in (parsed.get("server") or {}) or "ddcts_" in text:
                            problems.append(f"{where}: {key} names or holds a host token")
                if "ddcoterm.conf" in (doc.get("data") or {}):
                    # The sshd drop-in: every session through ssh-login, the key exposed for the recording.
                    dropin = doc["data"]["ddcoterm.conf"].splitlines()
                    for line in ("ForceCommand /usr/local/bin/ddcoterm ssh-login", "ExposeAuthInfo yes"):
                        if line not in dropin:
                            problems.append(f"{where}: ddcoterm.conf lacks `{line}`")
                    if "Include /etc/ddcoterm-sshd/ddcoterm.conf" not in doc["data"].get("sshd_config", ""):
                        problems.append(f"{where}: sshd_config does not include the drop-in")
            if kind not in WORKLOADS:
                continue
            spec = pod_spec(doc)
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
                for e in c.get("env") or []:
                    secret = re.search(r"(API_KEY|APP_KEY|ACCESS_KEY|TOKEN|SECRET|PASSWORD|DATABASE_URL)$", e["name"])
                    if secret and "value" in e:
                        problems.append(f"{where}: {c['name']}: {e['name']} is a literal value, not a secretKeyRef")
            if kind != "DaemonSet":
                psc = spec.get("securityContext") or {}
                if psc.get("runAsNonRoot") is not True:
                    problems.append(f"{where}: pods must run as non-root")
                if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
                    problems.append(f"{where}: pods need seccompProfile RuntimeDefault")
    problems += bastion_invariants(manifests, label)
    problems += server_invariants(manifests, label, values)
    return problems


def bastion_invariants(manifests: dict[str, list[dict]], label: str) -> list[str]:
    """Bastion mode: the agent container alone holds the spool and the token; the shell only its socket."""
    problems = []
    for doc in objects(manifests, "StatefulSet") + objects(manifests, "Deployment"):
        if doc["metadata"]["labels"].get("app.kubernetes.io/component") != "bastion":
            continue
        where = f"{label}: {doc['kind']}/{doc['metadata']['name']}"
        spec = pod_spec(doc)
        containers = {c["name"]: c for c in spec["containers"]}
        agent = containers.get("agent")
        if agent is None:
            if doc["kind"] != "Deployment":
                problems.append(f"{where}: a bastion without the agent must be a Deployment")
            continue
        if doc["kind"] != "StatefulSet":
            problems.append(f"{where}: the agent's spool needs a volume per pod (a StatefulSet)")
        claims = {t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates") or []}
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        agent_mounts = {m["name"]: m for m in agent.get("volumeMounts") or []}
        spool = next((n for n, m in agent_mounts.items() if m["mountPath"] == "/var/spool/ddcoterm"), None)
        if spool is None or spool not in claims or spool in volumes:
            problems.append(f"{where}: the agent's /var/spool/ddcoterm is not a PersistentVolumeClaim")
        secret_vols = {n for n, v in volumes.items() if "secret" in v}
        private = {n for n, m in agent_mounts.items()
                   if n not in ("etc-ddcoterm", "src-config", "agent-socket")}
        for cname, c in containers.items():
            if cname == "agent":
                continue
            mounts = {m["name"]: m for m in c.get("volumeMounts") or []}
            for n in sorted(set(mounts) & (private | {spool} | {s for s in secret_vols
                                                               if s != "sshd-host-key"})):
                problems.append(f"{where}: container {cname} mounts the agent's volume {n}")
            sock = mounts.get("agent-socket")
            if sock is None:
                problems.append(f"{where}: container {cname} cannot reach the agent's socket")
            elif sock.get("readOnly") is not True:
                problems.append(f"{where}: container {cname} can replace the agent's socket (mount not read-only)")
            for e in c.get("env") or []:
                if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]:
                    problems.append(f"{where}: container {cname} gets the secret {e['name']}")
        pod_uid = (spec.get("securityContext") or {}).get("runAsUser")
        agent_uid = (agent.get("securityContext") or {}).get("runAsUser")
        if agent_uid is None or agent_uid == pod_uid:
            problems.append(f"{where}: the agent runs as the shell user (uid {pod_uid})")
        cm = next((d for d in objects(manifests, "ConfigMap") if d["metadata"]["name"].endswith("-config")), None)
        data = (cm or {}).get("data") or {}
        layer = yaml.safe_load(data.get("bastion-config.yaml", "")) or {}
        if (layer.get("agent") or {}).get("enabled") is not True:
            problems.append(f"{where}: the bastion's config does not enable bastion mode")
        if "agent" in (yaml.safe_load(data.get("config.yaml", "")) or {}):
            problems.append(f"{where}: the nodes' config.yaml carries the bastion's agent: section")
        env = {e["name"]: e.get("value") for e in pod_spec(doc)["initContainers"][0].get("env") or []}
        if env.get("CONFIG_SOURCE") != "bastion-config.yaml":
            problems.append(f"{where}: the init container does not install bastion-config.yaml")
        url = (layer.get("server") or {}).get("url")
        if url and not url.startswith("https://"):
            problems.append(f"{where}: the agent uploads to {url} in clear text")
        if url and "agent-token" not in agent_mounts:
            problems.append(f"{where}: the agent uploads to {url} without its host token")
    return problems


def server_invariants(manifests: dict[str, list[dict]], label: str, values: dict) -> list[str]:
    problems = []
    sv = values.get("server") or {}
    for doc in objects(manifests, "StatefulSet") + objects(manifests, "Deployment"):
        if doc["metadata"]["labels"].get("app.kubernetes.io/component") != "server":
            continue
        where = f"{label}: {doc['kind']}/{doc['metadata']['name']}"
        c = pod_spec(doc)["containers"][0]
        env = env_of(c)
        public = (env.get("DDCOTERMD_PUBLIC_URL") or {}).get("value")
        ing = sv.get("ingress") or {}
        if ing.get("enabled") and not sv.get("publicUrl"):
            want = ("https://" if ing.get("tlsSecret") else "http://") + ing["host"]
            if public != want:
                problems.append(f"{where}: public URL {public!r}, expected {want!r} from the Ingress host")
        proxies = (env.get("DDCOTERMD_TRUSTED_PROXIES") or {}).get("value")
        if proxies != (",".join(sv["trustedProxies"]) if sv.get("trustedProxies") else None):
            problems.append(f"{where}: DDCOTERMD_TRUSTED_PROXIES {proxies!r} is not server.trustedProxies")
        probes = {(c.get(p) or {}).get("httpGet", {}).get("path") for p in ("livenessProbe", "readinessProbe")}
        if probes != {"/healthz", "/readyz"}:
            problems.append(f"{where}: probes are {sorted(map(str, probes))}, not /healthz and /readyz")
        if not (env.get("DDCOTERMD_LISTEN") or {}).get("value", "").startswith("0.0.0.0:"):
            problems.append(f"{where}: the server does not listen on the pod's address")
        scale_out = "DDCOTERMD_DATABASE_URL" in env
        if doc["kind"] == "StatefulSet":
            if scale_out or doc["spec"]["replicas"] != 1:
                problems.append(f"{where}: the embedded server must be one replica without a database URL")
            if "data" not in {t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates") or []}:
                problems.append(f"{where}: the embedded server's data is not on a PersistentVolumeClaim")
        else:
            if not scale_out or "secretKeyRef" not in (env["DDCOTERMD_DATABASE_URL"].get("valueFrom") or {}):
                problems.append(f"{where}: a scaled-out server needs its database URL from a Secret")
            if not (env.get("DDCOTERMD_OBJECT_STORE") or {}).get("value", "").startswith("s3://"):
                problems.append(f"{where}: a scaled-out server needs an s3:// object store")
    servers = [d for d in objects(manifests, "StatefulSet") + objects(manifests, "Deployment")
               if d["metadata"]["labels"].get("app.kubernetes.io/component") == "server"]
    if servers:
        nps = objects(manifests, "NetworkPolicy")
        if (sv.get("networkPolicy") or {}).get("enabled", True) and not nps:
            problems.append(f"{label}: the server has no NetworkPolicy")
        for np in nps:
            peers = [p for rule in np["spec"].get("ingress") or [] for p in rule.get("from") or []]
            comps = {(p.get("podSelector") or {}).get("matchLabels", {}).get("app.kubernetes.io/component")
                     for p in peers}
            if "bastion" not in comps or not any("namespaceSelector" in p for p in peers):
                problems.append(f"{label}: NetworkPolicy admits neither bastions nor the ingress controller")
            if any(not rule.get("from") for rule in np["spec"].get("ingress") or []):
                problems.append(f"{label}: NetworkPolicy has an ingress rule open to everyone")
            if servers[0]["kind"] == "StatefulSet" and np["spec"].get("egress"):
                problems.append(f"{label}: the embedded server is allowed egress")
    return problems


def custom_resources(manifests: dict[str, list[dict]], label: str) -> list[str]:
    """ServiceMonitor/PrometheusRule (no Kubernetes schema offline): the endpoint port exists on the Service;
    every ddcoterm_* metric an alert uses is one the server exports (server/src/metrics.rs)."""
    problems = []
    exported = set(re.findall(r'"(ddcoterm_[a-z_]+)', (ROOT / "server/src/metrics.rs").read_text()))
    ports = {p["name"] for svc in objects(manifests, "Service") for p in svc["spec"].get("ports") or []}
    for sm in objects(manifests, "ServiceMonitor"):
        for ep in sm["spec"]["endpoints"]:
            if ep.get("port") not in ports:
                problems.append(f"{label}: ServiceMonitor scrapes port {ep.get('port')!r}, which no Service has")
            if ep.get("port") == "http" and "authorization" not in ep:
                problems.append(f"{label}: ServiceMonitor scrapes the API port without a token (403)")
    for rule in objects(manifests, "PrometheusRule"):
        exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
        for metric in sorted({m for e in exprs for m in re.findall(r"ddcoterm_[a-z_]+", e)} - exported):
            problems.append(f"{label}: PrometheusRule uses {metric}, which the server does not export")
        if not any("ddcoterm_token_last_seen_seconds" in e for e in exprs):
            problems.append(f"{label}: PrometheusRule has no alert for hosts that stopped uploading")
    return problems


def system_dir_from(manifests: dict[str, list[dict]], dest: Path, config_key: str = "config.yaml") -> None:
    """Materialises /etc/ddcoterm the way install.sh does, from the rendered ConfigMaps (config_key is the
    ConfigMap entry installed as config.yaml: CONFIG_SOURCE)."""
    cms = {d["metadata"]["name"]: d.get("data") or {} for docs in manifests.values() for d in docs
           if d["kind"] == "ConfigMap"}
    config = next(v for k, v in cms.items() if k.endswith("-config"))
    bundles = next(v for k, v in cms.items() if k.endswith("-bundles"))
    for sub in ("", "teams", "bundles"):
        (dest / sub).mkdir(mode=0o755, exist_ok=True)
    (dest / "config.yaml").write_text(config[config_key])
    for key, text in config.items():
        if key.startswith("team.") and key.endswith(".yaml"):
            (dest / "teams" / key[len("team."):]).write_text(text)
    for key, text in bundles.items():
        (dest / "bundles" / key).write_text(text)
    for p in dest.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DDCOTERM_", "DD_"))}
    env.update(extra)
    return env


def ddcoterm_loads(binary: str, manifests: dict[str, list[dict]], label: str) -> list[str]:
    cm = next(d for d in objects(manifests, "ConfigMap") if d["metadata"]["name"].endswith("-config"))
    problems = []
    for key in ("config.yaml", "bastion-config.yaml"):
        if key not in (cm.get("data") or {}):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            system = Path(tmp) / "etc-ddcoterm"
            home = Path(tmp) / "home"
            system.mkdir(mode=0o755)
            home.mkdir(mode=0o700)
            system_dir_from(manifests, system, key)
            env = clean_env(DDCOTERM_SYSTEM_DIR=str(system), DDCOTERM_HOME=str(home), HOME=str(home))
            r = subprocess.run([binary, "config", "show"], env=env, capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                problems.append(f"{label}: ddcoterm rejects the rendered {key} (exit {r.returncode}): "
                                f"{r.stderr.strip()}")
    return problems


# Values the chart must refuse at render time, and a fragment of the message that must say why.
REFUSED = [
    ({"server": {"enabled": True, "replicas": 2}, "bastion": {"enabled": False}},
     "server.replicas=2 needs server.mode=scaleOut"),
    ({"server": {"enabled": True, "mode": "scaleOut", "replicas": 3, "scaleOut": {"bucket": "rec"}},
      "bastion": {"enabled": False}}, "needs server.scaleOut.existingSecret"),
    ({"server": {"enabled": True, "mode": "scaleOut", "scaleOut": {"existingSecret": "s"}},
      "bastion": {"enabled": False}}, "needs server.scaleOut.bucket"),
    ({"server": {"enabled": True}}, "bastion.agent.serverUrl: the ddcoterm client uploads only over https"),
    ({"server": {"enabled": True, "ingress": {"enabled": True}}, "bastion": {"enabled": False}},
     "server.ingress.enabled needs server.ingress.host"),
    ({"server": {"enabled": True, "ingress": {"enabled": True, "host": "s.example.com", "tlsSecret": "t"}}},
     "bastion.agent.tokenSecret"),
    ({"bastion": {"agent": {"runAsUser": 10001}}}, "bastion.agent.runAsUser must differ"),
    ({"config": {"server": {"url": "https://sessions.example.com"}}}, "bastion.agent.tokenSecret"),
    ({"server": {"enabled": True, "test": {"enabled": True}}, "bastion": {"enabled": False}},
     "server.test.enabled needs server.test.tokenSecret"),
    ({"server": {"enabled": True, "test": {"enabled": True, "tokenSecret": "t"}}, "bastion": {"enabled": False}},
     "server.test.url: the ddcoterm client uploads only over https"),
    ({"server": {"enabled": True, "metrics": {"port": 0, "serviceMonitor": {"enabled": True}}},
      "bastion": {"enabled": False}}, "server.metrics.serviceMonitor needs"),
]

SCHEMA_REFUSED = [
    {"bastion": {"replicas": "two"}}, {"config": {"connection_config": {"api_key": "x"}}},
    {"nodeInstaller": {"hostPaths": {"binDir": "relative/bin"}}}, {"unknownKey": 1},
    {"bastion": {"sshd": {"port": 22}}}, {"bastion": {"sshd": {"allowTcpForwarding": "maybe"}}},
    {"server": {"mode": "cluster"}}, {"server": {"unknown": 1}}, {"bastion": {"agent": {"serverUrl": "http://s:7780"}}},
    {"server": {"scaleOut": {"bucket": "Not_A_Bucket"}}}, {"config": {"server": {"token_file": "/t"}}},
    {"server": {"persistence": {"size": "lots"}}}, {"bastion": {"agent": {"whenFull": "evict"}}},
]


def refusals() -> list[str]:
    problems = []
    for values, fragment in REFUSED:
        try:
            render(values)
            problems.append(f"refusal: {values} rendered; expected a failure saying `{fragment}`")
        except helm.HelmError as e:
            if fragment not in str(e):
                problems.append(f"refusal: {values} failed without saying `{fragment}`: {e}")
    with helm.Chart.load(str(CHART)) as chart:
        for bad in SCHEMA_REFUSED:
            try:
                chart.validate_schema(bad)
                problems.append(f"schema: accepted invalid values {bad}")
            except helm.HelmValuesError:
                pass
    return problems


def _container(m: dict, kind: str, component: str, name: str) -> dict:
    doc = next(d for d in objects(m, kind) if d["metadata"]["labels"].get("app.kubernetes.io/component") == component)
    return next(c for c in pod_spec(doc)["containers"] if c["name"] == name)


def _workload(m: dict, kind: str, component: str) -> dict:
    return next(d for d in objects(m, kind) if d["metadata"]["labels"].get("app.kubernetes.io/component") == component)


# Rendered manifests broken on purpose, and what the invariants must then report: a check that cannot fail
# proves nothing.
MUTATIONS = [
    ("the shell mounts the spool", "mounts the agent's volume spool",
     lambda m: _container(m, "StatefulSet", "bastion", "bastion")["volumeMounts"].append(
         {"name": "spool", "mountPath": "/var/spool/ddcoterm"})),
    ("the shell mounts the token", "mounts the agent's volume agent-token",
     lambda m: _container(m, "StatefulSet", "bastion", "bastion")["volumeMounts"].append(
         {"name": "agent-token", "mountPath": "/t", "readOnly": True})),
    ("the socket mount is writable", "can replace the agent's socket",
     lambda m: next(v for v in _container(m, "StatefulSet", "bastion", "bastion")["volumeMounts"]
                    if v["name"] == "agent-socket").pop("readOnly")),
    ("the shell gets a key", "gets the secret DD_API_KEY",
     lambda m: _container(m, "StatefulSet", "bastion", "bastion")["env"].append(
         {"name": "DD_API_KEY", "valueFrom": {"secretKeyRef": {"name": "k", "key": "api-key"}}})),
    ("the agent runs as the shell user", "the agent runs as the shell user",
     lambda m: _container(m, "StatefulSet", "bastion", "agent")["securityContext"].update(runAsUser=10001)),
    ("the spool is an emptyDir", "is not a PersistentVolumeClaim",
     lambda m: (_workload(m, "StatefulSet", "bastion")["spec"].pop("volumeClaimTemplates"),
                pod_spec(_workload(m, "StatefulSet", "bastion"))["volumes"].append({"name": "spool", "emptyDir": {}}))),
    ("the public URL ignores the Ingress", "expected 'https://sessions.example.com' from the Ingress host",
     lambda m: next(e for e in _container(m, "StatefulSet", "server", "server")["env"]
                    if e["name"] == "DDCOTERMD_PUBLIC_URL").update(value="http://localhost:7780")),
    ("no readiness probe", "not /healthz and /readyz",
     lambda m: _container(m, "StatefulSet", "server", "server").pop("readinessProbe")),
    ("a writable root filesystem", "server: root filesystem is writable",
     lambda m: _container(m, "StatefulSet", "server", "server")["securityContext"].update(
         readOnlyRootFilesystem=False)),
    ("no seccomp profile", "seccompProfile RuntimeDefault",
     lambda m: pod_spec(_workload(m, "StatefulSet", "server"))["securityContext"].pop("seccompProfile")),
    ("a database URL in clear", "DDCOTERMD_DATABASE_URL is a literal value",
     lambda m: _container(m, "StatefulSet", "server", "server")["env"].append(
         {"name": "DDCOTERMD_DATABASE_URL", "value": "postgres://u:pw@db/x"})),
    ("an alert on a metric the server lacks", "uses ddcoterm_host_last_upload_seconds",
     lambda m: objects(m, "PrometheusRule")[0]["spec"]["groups"][0]["rules"][0].update(
         expr="time() - ddcoterm_host_last_upload_seconds > 3600")),
    ("an API open to every pod", "open to everyone",
     lambda m: objects(m, "NetworkPolicy")[0]["spec"]["ingress"].append({"ports": [{"port": "http"}]})),
    ("the agent uploads in clear", "in clear text",
     lambda m: next(d for d in objects(m, "ConfigMap") if d["metadata"]["name"].endswith("-config"))["data"].update(
         {"bastion-config.yaml": "agent: {enabled: true}\nserver: {url: 'http://fleet-ddcoterm-server:7780'}\n"})),
]


def mutations(base: dict[str, list[dict]]) -> list[str]:
    problems = []
    for what, fragment, mutate in MUTATIONS:
        m = copy.deepcopy(base)
        try:
            mutate(m)
        except (KeyError, StopIteration, IndexError) as e:
            problems.append(f"self-test: {what}: the rendered manifests lack what it breaks ({e!r})")
            continue
        values = load_values(CHART / "ci" / "values-embedded.yaml")
        found = invariants(m, "mutant", values) + custom_resources(m, "mutant")
        if not any(fragment in p for p in found):
            problems.append(f"self-test: {what}: the invariants did not report `{fragment}` (got {found})")
    return problems


def readme_current() -> list[str]:
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "helm-docs.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    return [] if r.returncode == 0 else [r.stderr.strip() or r.stdout.strip()]


# ----------------------------------------------------------------------------------------------------------
# The documented `helm install`/`helm upgrade` commands render too.

DOCS = [(ROOT / "docs" / "fleet.md", "## Helm chart"), (CHART / "README.md", None)]


def documented_commands() -> list[tuple[str, str]]:
    """(where, command) for each helm install/upgrade/template line of the docs' sh blocks (continuations
    joined); `where` is file:line. With a section heading, only that section of the file."""
    found = []
    for path, heading in DOCS:
        text = path.read_text()
        offset = 0
        if heading:
            offset = text.index(heading)
            end = text.find("\n## ", offset + len(heading))
            text = text[offset:end if end > 0 else None]
        line0 = path.read_text()[:offset].count("\n") + 1
        for block in re.finditer(r"```sh\n(.*?)```", text, re.S):
            lines = block.group(1).split("\n")
            start = text[:block.start()].count("\n") + 2
            i = 0
            while i < len(lines):
                cmd, first = lines[i], i
                while cmd.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    cmd = cmd[:-1] + " " + lines[i].strip()
                i += 1
                if re.match(r"\s*helm (install|upgrade|template)\b", cmd):
                    found.append((f"{path.relative_to(ROOT)}:{line0 + start + first - 1}", cmd))
    return found


def set_path(values: dict, key: str, value: object) -> None:
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", key)
    node: object = values
    for part, nxt in zip(parts, parts[1:] + [None]):
        new = [] if nxt and nxt.startswith("[") else {}
        if part.startswith("["):
            idx = int(part[1:-1])
            while len(node) <= idx:
                node.append(None)
            if nxt is None:
                node[idx] = value
            else:
                node[idx] = node[idx] if node[idx] is not None else new
                node = node[idx]
        elif nxt is None:
            node[part] = value
        else:
            node = node.setdefault(part, new)


def values_of(where: str, cmd: str) -> tuple[dict, list[str]]:
    """The values a documented helm command passes, its arguments expanded by bash in the repository root
    ($(...) and quotes as a user's shell would), with a `helm` that prints them."""
    r = subprocess.run(["bash", "-c", f"helm() {{ printf '%s\\0' \"$@\"; }}\n{cmd}"], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return {}, [f"{where}: the command does not run: {r.stderr.strip()}"]
    args = r.stdout.split("\0")[:-1]
    values: dict = {}
    problems = []
    positional = []
    it = iter(args[1:])
    for a in it:
        if a in ("-f", "--values"):
            values = merge(values, load_values(ROOT / next(it)))
        elif a in ("--set", "--set-string", "--set-file"):
            key, _, raw = next(it).partition("=")
            if a == "--set-file":
                value: object = (ROOT / raw).read_text()
            elif a == "--set-string":
                value = raw
            else:
                value = {"true": True, "false": False}.get(raw, int(raw) if raw.isdigit() else raw)
            set_path(values, key, value)
        elif a in ("-n", "--namespace"):
            next(it)
        elif a in ("--create-namespace", "--wait", "--atomic", "--install"):
            pass
        elif a.startswith("-"):
            problems.append(f"{where}: option {a} is not understood by this check")
        else:
            positional.append(a)
    if positional[-1:] != ["helm/ddcoterm"]:
        problems.append(f"{where}: the chart argument is not helm/ddcoterm: {positional}")
    return values, problems


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def docs_render(kube_version: str) -> tuple[int, list[str]]:
    cmds = documented_commands()
    problems = []
    for where, cmd in cmds:
        values, bad = values_of(where, cmd)
        problems += bad
        if bad:
            continue
        try:
            manifests = render(values)
        except helm.HelmError as e:
            problems.append(f"{where}: does not render: {e}")
            continue
        problems += validate(manifests, where, kube_version)
        problems += invariants(manifests, where, values)
        problems += custom_resources(manifests, where)
    return len(cmds), problems


# ----------------------------------------------------------------------------------------------------------
# The chart's scripts outside Kubernetes, against a real ddcoterm-server on loopback.

class Server:
    """A throwaway ddcoterm-server started with the environment the chart renders for the embedded server
    (every literal DDCOTERMD_* variable; the data dir moved into a temp dir and the listeners onto loopback
    ephemeral ports), with a host and an auditor token made the way NOTES.txt says (`ddcoterm-server token
    create` with the same environment, as `kubectl exec` in the pod). A variable the server does not know
    makes it refuse to start (unknown keys are errors)."""

    def __init__(self, binary: str, tmp: Path, manifests: dict[str, list[dict]]):
        self.data = tmp / "server"
        self.host_token = tmp / "host.token"
        self.reader_token = tmp / "reader.token"
        sts = _workload(manifests, "StatefulSet", "server")
        rendered = {e["name"]: e["value"] for e in pod_spec(sts)["containers"][0]["env"] if "value" in e}
        self.public_url = rendered["DDCOTERMD_PUBLIC_URL"]
        env = clean_env(**{k: v for k, v in rendered.items() if k.startswith("DDCOTERMD_")})
        env.update(DDCOTERMD_DATA_DIR=str(self.data), DDCOTERMD_LISTEN="127.0.0.1:0")
        if "DDCOTERMD_METRICS_LISTEN" in env:
            env["DDCOTERMD_METRICS_LISTEN"] = "127.0.0.1:0"
        for name, role, path in (("ci-bastion", "host", self.host_token),
                                 ("ci-reviewer", "auditor", self.reader_token)):
            out = subprocess.run([binary, "token", "create", name, "--role", role], env=env,
                                 capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                raise RuntimeError(f"ddcoterm-server token create with the chart's environment: {out.stderr.strip()}")
            path.write_text(out.stdout.strip() + "\n")
            path.chmod(0o600)
        self.out = open(tmp / "server.out", "w+")
        self.log = open(tmp / "server.log", "w+")
        self.proc = subprocess.Popen([binary, "serve"], env=env, stdout=self.out, stderr=self.log)
        deadline = time.monotonic() + 30
        self.url = ""
        self.metrics_url = ""
        while time.monotonic() < deadline and (not self.url or ("DDCOTERMD_METRICS_LISTEN" in env
                                                                 and not self.metrics_url)):
            self.out.seek(0)
            m = re.search(r"^listening on (\S+)", self.out.read(), re.M)
            if m:
                self.url = f"http://{m.group(1)}"
            self.log.seek(0)
            m = re.search(r'"addr":"([^"]+)".*metrics listening|metrics listening.*"addr":"([^"]+)"', self.log.read())
            if m:
                self.metrics_url = f"http://{m.group(1) or m.group(2)}"
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        if not self.url:
            self.log.seek(0)
            raise RuntimeError(f"ddcoterm-server did not start with the chart's environment: {self.log.read()[-2000:]}")

    def get(self, path: str, base: str | None = None, token: bool = True) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {self.reader_token.read_text().strip()}"} if token else {}
        req = urllib.request.Request((base or self.url) + path, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def server_environment(srv: Server) -> list[str]:
    """What the chart promises of the running server: links under the public URL, probes answering, the
    metrics the alert rule uses on the token-less metrics listener."""
    problems = []
    for path in ("/healthz", "/readyz"):
        status, _ = srv.get(path, token=False)
        if status != 200:
            problems.append(f"server: {path} answered {status} with the chart's environment")
    status, body = srv.get("/api/v1/sessions?limit=50")
    urls = [x.get("url", "") for x in json.loads(body).get("sessions", [])] if status == 200 else []
    if not urls or not all(u.startswith(srv.public_url + "/sessions/") for u in urls):
        problems.append(f"server: session links {urls} are not under the rendered public URL {srv.public_url}")
    if not srv.metrics_url:
        problems.append("server: no metrics listener although the chart sets DDCOTERMD_METRICS_LISTEN")
    else:
        status, body = srv.get("/metrics", base=srv.metrics_url, token=False)
        if status != 200 or b'ddcoterm_token_last_seen_seconds{token="ci-bastion",role="host"' not in body:
            problems.append(f"server: the metrics listener does not export the host token's last use (HTTP {status})")
        else:
            print(f"helm-check: server with the chart's environment: links under {srv.public_url}, /healthz and "
                  f"/readyz 200, {srv.metrics_url}/metrics without a token has the host token's last use")
    return problems


class TlsProxy:
    """https://localhost:PORT in front of the server's plain port, with a certificate from a throwaway CA:
    the Ingress with TLS through which the chart's clients upload, and the private CA of sessionServerCA.
    `url` is None (and `why` says why) when openssl is missing."""

    def __init__(self, backend: str, tmp: Path):
        self.url: str | None = None
        self.ca = tmp / "ca.crt"
        self.why = ""
        if not shutil.which("openssl"):
            self.why = "no openssl to make a test CA"
            return
        key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        ext = tmp / "leaf.ext"
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                       "basicConstraints=critical,CA:FALSE\n")
        for cmd in (["openssl", "req", "-x509", *key, "-keyout", tmp / "ca.key", "-out", self.ca, "-days", "2",
                     "-subj", "/CN=helm-check CA", "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign"],
                    ["openssl", "req", *key, "-keyout", tmp / "leaf.key", "-out", tmp / "leaf.csr",
                     "-subj", "/CN=localhost"],
                    ["openssl", "x509", "-req", "-in", tmp / "leaf.csr", "-CA", self.ca, "-CAkey", tmp / "ca.key",
                     "-CAcreateserial", "-out", tmp / "leaf.crt", "-days", "2", "-extfile", ext]):
            r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                self.why = f"openssl failed: {r.stderr.strip()[:300]}"
                return
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(tmp / "leaf.crt", tmp / "leaf.key")
        host, port = backend.removeprefix("http://").rsplit(":", 1)
        self.backend = (host, int(port))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://localhost:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            conn.close()  # a client that does not trust the CA gives up here
            return
        up = socket.create_connection(self.backend)
        try:
            while True:
                if not tls.pending():
                    ready, _, _ = select.select([tls, up], [], [], 60)
                    if not ready:
                        return
                else:
                    ready = [tls]
                if tls in ready:
                    data = tls.recv(65536)
                    if not data:
                        return
                    up.sendall(data)
                if up in ready:
                    data = up.recv(65536)
                    if not data:
                        return
                    tls.sendall(data)
        except (ssl.SSLError, OSError):
            return
        finally:
            up.close()
            tls.close()

    def close(self) -> None:
        if self.url:
            self.sock.close()


def hook_script(client: str, srv: Server, tls: TlsProxy, manifests: dict[str, list[dict]]) -> list[str]:
    """files/server-test.sh with the `helm test` Pod's rendered environment (tokens, client and CA moved to
    local paths): uploads over https through the TLS proxy trusting only the rendered private CA, reads back
    over plain http as through the Service. It must pass, and fail saying why with a token that cannot read
    and with a CA the server's certificate does not chain to."""
    problems = []
    pod = next(d for d in objects(manifests, "Pod") if d["metadata"]["labels"].get("app.kubernetes.io/component")
               == "server-test")
    rendered = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    env = clean_env(**rendered)
    env.update(UPLOAD_URL=tls.url or srv.url, READ_URL=srv.url, HOST_TOKEN_FILE=str(srv.host_token),
               READER_TOKEN_FILE=str(srv.reader_token), DDCOTERM=client, TIMEOUT="30", HOME=str(srv.data.parent))
    if "SSL_CERT_FILE" in rendered:
        env["SSL_CERT_FILE"] = str(tls.ca)
    if not tls.url:
        print(f"helm-check: skipped: the helm test script over https ({tls.why}); over loopback http instead")
        env.pop("SSL_CERT_FILE", None)
    script = str(CHART / "files" / "server-test.sh")
    r = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or "ok: session" not in r.stdout:
        problems.append(f"helm test script: failed against a working server (exit {r.returncode}): "
                        f"{r.stdout.strip()} {r.stderr.strip()}")
    else:
        print(f"helm-check: {r.stdout.strip().splitlines()[-1]}")
    bad = dict(env, READER_TOKEN_FILE=str(srv.host_token))  # host tokens never read: 403
    r = subprocess.run(["bash", script], env=bad, capture_output=True, text=True, timeout=120)
    if r.returncode == 0 or "HTTP 403" not in r.stderr:
        problems.append(f"helm test script: a host token as reader token did not fail with HTTP 403 "
                        f"(exit {r.returncode}): {r.stderr.strip()}")
    if tls.url:
        # The system store (no SSL_CERT_FILE) does not know the private CA: nothing arrives.
        untrusted = dict(env, TIMEOUT="4")
        untrusted.pop("SSL_CERT_FILE", None)
        r = subprocess.run(["bash", script], env=untrusted, capture_output=True, text=True, timeout=120)
        if r.returncode == 0 or "not complete" not in r.stderr:
            problems.append(f"helm test script: an upload to a certificate of an untrusted CA did not fail "
                            f"(exit {r.returncode}): {r.stderr.strip()}")
    return problems


def pod_identities(manifests: dict[str, list[dict]]) -> dict[str, tuple[int, int, int]]:
    """(uid, gid, fsGroup) of the bastion pod's `bastion` and `agent` containers, as rendered."""
    sts = _workload(manifests, "StatefulSet", "bastion")
    psc = pod_spec(sts).get("securityContext") or {}
    out = {}
    for c in pod_spec(sts)["containers"]:
        sc = {**psc, **(c.get("securityContext") or {})}
        out[c["name"]] = (int(sc["runAsUser"]), int(sc["runAsGroup"]), int(psc["fsGroup"]))
    return out


def install_like_init_container(manifests: dict[str, list[dict]], src: Path, dest: Path) -> list[str]:
    """Runs files/install.sh with the bastion init container's rendered environment (its ConfigMap mounts and
    destination moved into temp dirs): /etc/ddcoterm/config.yaml must be the bastion layer
    (CONFIG_SOURCE=bastion-config.yaml), not the nodes' config.yaml."""
    sts = _workload(manifests, "StatefulSet", "bastion")
    init = next(c for c in pod_spec(sts)["initContainers"] if c["name"] == "install-config")
    env = {e["name"]: e["value"] for e in init["env"]}
    cms = {d["metadata"]["name"]: d.get("data") or {} for d in objects(manifests, "ConfigMap")}
    for sub, suffix in (("config", "-config"), ("bundles", "-bundles")):
        (src / sub).mkdir(parents=True)
        for key, text in next(v for k, v in cms.items() if k.endswith(suffix)).items():
            (src / sub / key).write_text(text)
    env.update(SRC_CONFIG=str(src / "config"), SRC_BUNDLES=str(src / "bundles"), DEST_SYSTEM=str(dest),
               DEST_SHIMS=str(src / "shims"))
    r = subprocess.run(["sh", str(src / "config" / "install.sh")], env=clean_env(**env), capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        return [f"install.sh with the bastion's init environment failed: {r.stderr.strip()}"]
    want = cms[next(k for k in cms if k.endswith("-config"))]["bastion-config.yaml"]
    if (dest / "config.yaml").read_text() != want:
        return ["install.sh with the bastion's init environment did not install bastion-config.yaml as config.yaml"]
    return []


def agent_sidecar(client: str, srv: Server, tls: TlsProxy, manifests: dict[str, list[dict]], tmp: Path) -> list[str]:
    """files/agent-start.sh with the rendered bastion layer (paths moved into tmp, server.url to the loopback
    server): writes a private credentials file, starts the agent, and a session recorded through its socket
    reaches the server complete, filed under the recorder's uid. Run as root (CI), the agent and the recorder
    get the pod's uids, gids and fsGroup (setpriv) and the directories the pod's volume semantics (emptyDir and
    PVC roots group fsGroup, setgid; the token root:fsGroup 0440 like a Secret under fsGroup): the shell's
    uid must then be unable to read the agent's state or credentials. A token file that holds no token is
    refused with exit 78."""
    problems = []
    cm = next(d for d in objects(manifests, "ConfigMap") if d["metadata"]["name"].endswith("-config"))
    layer = yaml.safe_load(cm["data"]["bastion-config.yaml"])
    ids = pod_identities(manifests)
    as_pod = os.geteuid() == 0 and shutil.which("setpriv") is not None

    def prefix(container: str) -> list[str]:
        if not as_pod:
            return []
        uid, gid, fs = ids[container]
        return ["setpriv", f"--reuid={uid}", f"--regid={gid}", f"--groups={fs}", "--"]

    system, run, private, spool, user_home, secret = (tmp / n for n in (
        "etc", "run", "private", "spool", "user-home", "secret"))
    tmp.mkdir(mode=0o755)
    for d in (system, run, private, spool, user_home, secret):
        d.mkdir(mode=0o755)
    problems += install_like_init_container(manifests, tmp / "src", system)
    layer["agent"].update(socket=str(run / "agent.sock"), state_dir=str(spool / "agent"),
                          credentials_file=str(private / "credentials.yaml"))
    layer["server"]["url"] = tls.url or srv.url
    (system / "config.yaml").write_text(yaml.safe_dump(layer))
    (system / "config.yaml").chmod(0o644)
    token = secret / "host-token"
    shutil.copyfile(srv.host_token, token)
    if as_pod:
        uid, gid, fs = ids["bastion"]
        for d in (run, private, spool):  # emptyDir / PVC roots under fsGroup
            os.chown(d, 0, fs)
            d.chmod(0o2777 if d != spool else 0o2775)
        os.chown(user_home, uid, gid)
        user_home.chmod(0o700)
        os.chown(token, 0, fs)
        token.chmod(0o440)
    else:
        token.chmod(0o600)
    script = str(CHART / "files" / "agent-start.sh")
    if as_pod:
        # The pod's uids may not reach into the checkout (a 0700 home): they run copies.
        (tmp / "bin").mkdir(mode=0o755)
        client = str(shutil.copy2(client, tmp / "bin" / "ddcoterm"))
        script = str(shutil.copy2(script, tmp / "bin" / "agent-start.sh"))
        os.chmod(client, 0o755)
        os.chmod(script, 0o644)

    bad = tmp / "bad.token"
    bad.write_text("not a token: {x}\n")
    r = subprocess.run(["sh", script], env=clean_env(CREDENTIALS_FILE=str(tmp / "bad.yaml"), TOKEN_FILE=str(bad),
                                                      DDCOTERM=client), capture_output=True, text=True, timeout=30)
    if r.returncode != 78 or (tmp / "bad.yaml").exists() or "does not hold a host token" not in r.stderr:
        problems.append(f"agent-start.sh: a file without a token was not refused with exit 78: "
                        f"{r.returncode} {r.stderr}")

    # As in the pod: HOME is the agent's private directory.
    env = clean_env(CREDENTIALS_FILE=str(private / "credentials.yaml"), TOKEN_FILE=str(token),
                    DDCOTERM=client, DDCOTERM_SYSTEM_DIR=str(system), HOME=str(private))
    agent_env = env_of(_container(manifests, "StatefulSet", "bastion", "agent"))
    if tls.url and "SSL_CERT_FILE" in agent_env:
        env["SSL_CERT_FILE"] = str(tls.ca)  # the rendered sessionServerCA mount, moved
    log = open(tmp / "agent.log", "w+")
    agent = subprocess.Popen(prefix("agent") + ["sh", script], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (run / "agent.sock").exists() and agent.poll() is None:
            time.sleep(0.1)
        if not (run / "agent.sock").exists():
            log.seek(0)
            return problems + [f"agent sidecar: the agent did not listen: {log.read()[-2000:]}"]
        creds = private / "credentials.yaml"
        st = creds.stat()
        if st.st_mode & 0o777 != 0o600 or (as_pod and st.st_uid != ids["agent"][0]):
            problems.append(f"agent sidecar: {creds} has mode {st.st_mode & 0o777:o}, owner {st.st_uid}: "
                            "not 600 and the agent's")
        marker = f"helm-agent-sidecar-{os.getpid()}-{int(time.time())}"
        r = subprocess.run(prefix("bastion") + [client, "--", "sh", "-c", f"echo {marker}"], env=clean_env(
            DDCOTERM_SYSTEM_DIR=str(system), HOME=str(user_home)), capture_output=True, text=True, timeout=60)
        if r.returncode != 0 or marker not in r.stdout:
            log.seek(0)
            return problems + [f"agent sidecar: the recorded command failed (exit {r.returncode}): {r.stderr.strip()}"
                               f"; agent log: {log.read()[-1500:]}"]
        if as_pod:
            for secret_path in (creds, spool / "agent" / "sessions", spool / "agent" / "recordings"):
                peek = subprocess.run(prefix("bastion") + ["ls" if secret_path.is_dir() else "cat", str(secret_path)],
                                      capture_output=True)
                if peek.returncode == 0:
                    problems.append(f"agent sidecar: the shell's uid can read {secret_path}")
        deadline = time.monotonic() + 30
        found = None
        while time.monotonic() < deadline and found is None:
            status, body = srv.get("/api/v1/sessions?limit=50")
            for sess in json.loads(body).get("sessions", []) if status == 200 else []:
                if marker in (sess.get("command") or "") and sess.get("state") == "complete":
                    found = sess
            time.sleep(0.3)
        if found is None:
            log.seek(0)
            return problems + [f"agent sidecar: no complete session for `echo {marker}` on the server within 30 s; "
                               f"agent log: {log.read()[-1500:]}"]
        uid = ids["bastion"][0] if as_pod else os.geteuid()
        try:
            import pwd
            names = {pwd.getpwuid(uid).pw_name}
        except KeyError:
            names = {f"uid-{uid}"}
        if found.get("user") not in names:
            problems.append(f"agent sidecar: session filed under user {found.get('user')!r}, not the recorder's "
                            f"uid {uid} ({sorted(names)})")
        status, cast = srv.get(f"/api/v1/sessions/{found['id']}/cast")
        if status != 200 or marker.encode() not in cast:
            problems.append(f"agent sidecar: the cast of {found['id']} lacks the command's output (HTTP {status})")
        else:
            how = (f"agent uid {ids['agent'][0]}, shell uid {ids['bastion'][0]}, fsGroup {ids['agent'][2]}"
                   if as_pod else "one uid: not root, the pod's uids are not emulated")
            print(f"helm-check: agent sidecar ({how}): session {found['id']} of user {found.get('user')} "
                  f"recorded through the agent's socket, uploaded to {layer['server']['url']} with its host token, "
                  f"complete on the server ({len(cast)} bytes)")
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
    return problems


def scaleout_environment(server_bin: str, tmp: Path) -> list[str]:
    """The scale-out server's rendered variables (values-scaleout.yaml) are all settings the server knows: with
    the database URL pointed at a closed loopback port, `token list` must fail connecting (exit 1), not on
    the configuration (exit 78, naming the key)."""
    dep = _workload(render(load_values(CHART / "ci" / "values-scaleout.yaml")), "Deployment", "server")
    env = clean_env(**{e["name"]: e["value"] for e in pod_spec(dep)["containers"][0]["env"] if "value" in e})
    env.update(DDCOTERMD_DATA_DIR=str(tmp / "scaleout"), DDCOTERMD_DATABASE_URL="postgres://ci@127.0.0.1:1/none")
    r = subprocess.run([server_bin, "token", "list"], env=env, capture_output=True, text=True, timeout=60)
    if r.returncode in (0, 78):
        return [f"server (scale-out variables): `token list` exit {r.returncode}, expected a connection failure: "
                f"{r.stderr.strip()[:400]}"]
    return []


def scripts_against_server(client: str, server_bin: str) -> list[str]:
    manifests = render(load_values(CHART / "ci" / "values-embedded.yaml"))
    with tempfile.TemporaryDirectory(prefix="helm-check-") as t:
        tmp = Path(t)
        tmp.chmod(0o755)  # the pod's uids (agent_sidecar) traverse it; the tokens in it stay 0600
        try:
            srv = Server(server_bin, tmp, manifests)
        except RuntimeError as e:
            return [f"server: {e}"]
        (tmp / "tls").mkdir()
        tls = TlsProxy(srv.url, tmp / "tls")
        try:
            return (hook_script(client, srv, tls, manifests)
                    + agent_sidecar(client, srv, tls, manifests, tmp / "agent-run")
                    + server_environment(srv) + scaleout_environment(server_bin, tmp))
        finally:
            tls.close()
            srv.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ddcoterm", help="binary used to load each rendered organisation layer")
    ap.add_argument("--ddcoterm-server", help="with --ddcoterm: run the chart's scripts against this server")
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
        problems += invariants(manifests, label, values)
        problems += custom_resources(manifests, label)
        if args.ddcoterm:
            problems += ddcoterm_loads(args.ddcoterm, manifests, label)

    problems += refusals()
    problems += mutations(render(load_values(CHART / "ci" / "values-embedded.yaml")))
    print(f"helm-check: {len(REFUSED)} refused renderings, {len(SCHEMA_REFUSED)} refused schemas, "
          f"{len(MUTATIONS)} broken manifests checked")
    problems += readme_current()
    n, docs_problems = docs_render(args.kube_version)
    problems += docs_problems
    print(f"helm-check: {n} documented helm commands rendered (docs/fleet.md, helm/ddcoterm/README.md)")
    if args.ddcoterm and args.ddcoterm_server:
        problems += scripts_against_server(args.ddcoterm, args.ddcoterm_server)
    elif args.ddcoterm_server:
        problems.append("--ddcoterm-server needs --ddcoterm (the client records the sessions)")
    else:
        print("helm-check: skipped: the server environment, the helm test script and the agent sidecar against a "
              "real server (pass --ddcoterm and --ddcoterm-server, as make helm-lint does)")

    for p in problems:
        print(f"helm-check: FAIL {p}", file=sys.stderr)
    took = time.monotonic() - start
    print(f"helm-check: {len(sets)} value sets, {len(problems)} problems, {took:.1f}s "
          f"(Helm SDK {helm.helm_sdk_version()}, Kubernetes schemas {args.kube_version})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
