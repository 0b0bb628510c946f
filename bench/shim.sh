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
# PREV_BIN=path/to/older/ddcoterm: that build's shim is measured in the same hyperfine run, for regressions.
prev=()
if [ -n "${PREV_BIN:-}" ]; then
  [ -x "$PREV_BIN" ] || { echo "shim.sh: PREV_BIN=$PREV_BIN is not an executable" >&2; exit 1; }
  mkdir -p "$work/prev-shims"
  ln -s "$PREV_BIN" "$work/prev-shims/kubectl"
  # Each shim finds the real kubectl on PATH past itself, so each gets a PATH of its own; `env` sets it for
  # both the same way (its exec is in both figures and cancels out of their ratio).
  prev=(-n this-env "env PATH=$work/home/.ddcoterm-shims:$work/real kubectl get pods"
        -n prev-env "env PATH=$work/prev-shims:$work/real kubectl get pods")
fi
hyperfine -N --warmup 100 --runs "${RUNS:-1000}" --export-json "$work/h.json" \
  -n direct "$work/real/kubectl get pods" \
  -n shim "$work/home/.ddcoterm-shims/kubectl get pods" "${prev[@]}" >/dev/null
python3 - "$work/h.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
d, s = r["direct"]["median"] * 1e3, r["shim"]["median"] * 1e3
added = s - d
print(f"shim: direct exec median {d:.3f} ms, through shim {s:.3f} ms, added {added:.3f} ms "
      f"(ratio {s/d:.2f}x) target <= 2 ms: {'PASS' if added <= 2.0 else 'FAIL'}")
if "prev-env" in r:
    t, p = r["this-env"]["median"] * 1e3, r["prev-env"]["median"] * 1e3
    print(f"shim: with env setting PATH, this build {t:.3f} ms, previous build {p:.3f} ms, "
          f"difference {t - p:+.3f} ms ({t / p:.3f}x, same run)")
PY
