#!/usr/bin/env bash
# Shim overhead: a `kubectl` shim (20 organisation rules, none matching, default_actions: [] so the decision
# ends in exec) against exec'ing the same tiny fake kubectl directly, measured in one hyperfine run.
# Target (DESIGN.md §11): added median latency <= 2 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${DDCOTERM_BIN:-$PWD/target/release/ddcoterm}
unset DDCOTERM_BIN # a DDCOTERM_* variable would reach the shim as a config key
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine missing: make tools" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/real" "$work/etc" "$work/home"
# The fake kubectl: a static-enough tiny C program, so process start-up is the only cost measured.
printf 'int main(void){return 0;}\n' > "$work/k.c"
cc -O2 -o "$work/real/kubectl" "$work/k.c"
{
  echo "process_config:"
  echo "  default_actions: []"
  echo "  commands:"
  echo "    - command: kubectl"
  echo "      rules:"
  for i in $(seq 1 20); do
    echo "        - rule: has_arg(\"delete-$i\") and (flags.context or k8s_current_context or ''):match('prod')"
    echo "          actions: [record, approval]"
  done
} > "$work/etc/config.yaml"
chmod 0644 "$work/etc/config.yaml"
export DDCOTERM_SYSTEM_DIR="$work/etc" DDCOTERM_HOME="$work/home" HOME="$work/home"
PATH="$work/home/.ddcoterm-shims:$work/real:$PATH"
mkdir -p "$work/home/.ddcoterm-shims"
ln -s "$bin" "$work/home/.ddcoterm-shims/kubectl"
export PATH
# Sanity: the shim really decides and execs the fake (exit 0), and a matching rule would not be skipped.
"$work/home/.ddcoterm-shims/kubectl" get pods
hyperfine -N --warmup 100 --runs "${RUNS:-1000}" --export-json "$work/h.json" \
  -n direct "$work/real/kubectl get pods" \
  -n shim "$work/home/.ddcoterm-shims/kubectl get pods" >/dev/null
python3 - "$work/h.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
d, s = r["direct"]["median"] * 1e3, r["shim"]["median"] * 1e3
added = s - d
print(f"shim: direct exec median {d:.3f} ms, through shim {s:.3f} ms, added {added:.3f} ms "
      f"(ratio {s/d:.2f}x) target <= 2 ms: {'PASS' if added <= 2.0 else 'FAIL'}")
PY
