#!/usr/bin/env bash
# Bastion mode's cost at session start: `ddcoterm -- /bin/true` recorded in personal mode (cast and spool in
# the user's home) against bastion mode (open, chunks and end stored by a local `ddcoterm agent`, each fsync'd
# before its ack), measured in one hyperfine run. No network: no Datadog key in either mode.
# Usage: bench/bastion.sh   (BIN=path/to/ddcoterm, default target/release/ddcoterm)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-$PWD/target/release/ddcoterm}
[ -x "$bin" ] || { echo "build first: cargo build --release (or BIN=target/debug/ddcoterm)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine missing: make tools" >&2; exit 1; }
work=$(mktemp -d)
agent_pid=
cleanup() { [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/personal/etc" "$work/bastion/etc" "$work/home"
: > "$work/personal/etc/config.yaml"
printf 'agent:\n  enabled: true\n  socket: %s\n  state_dir: %s\n' "$work/run/agent.sock" "$work/state" \
    > "$work/bastion/etc/config.yaml"
chmod 0644 "$work/personal/etc/config.yaml" "$work/bastion/etc/config.yaml"
export HOME="$work/home" DDCOTERM_HOME="$work/home/.ddcoterm"
DDCOTERM_SYSTEM_DIR="$work/bastion/etc" "$bin" agent 2>/dev/null &
agent_pid=$!
for _ in $(seq 100); do [ -S "$work/run/agent.sock" ] && break; sleep 0.05; done
[ -S "$work/run/agent.sock" ] || { echo "the agent did not start" >&2; exit 1; }
hyperfine -N --warmup 5 --runs "${RUNS:-60}" --export-markdown "$work/result.md" --export-json "$work/result.json" \
    -n personal "env DDCOTERM_SYSTEM_DIR=$work/personal/etc $bin -- /bin/true" \
    -n bastion "env DDCOTERM_SYSTEM_DIR=$work/bastion/etc $bin -- /bin/true"
cat "$work/result.md"
# Medians: on a loaded machine the mean follows the slowest runs.
python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; m={x["command"]: x["median"]*1000 for x in r}; print("median: personal %.1f ms, bastion %.1f ms, bastion adds %.1f ms" % (m["personal"], m["bastion"], m["bastion"]-m["personal"]))' "$work/result.json"
