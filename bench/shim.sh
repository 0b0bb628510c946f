#!/usr/bin/env bash
# Shim overhead: a `kubectl` shim with 20 organisation rules of the kinds real orgs write (verbs, namespaces,
# flags, the kube context read from a real kubeconfig of 5 contexts), none matching, default_actions: [] so the
# decision ends in exec, against exec'ing the same tiny fake kubectl directly, in one hyperfine run.
# Target (issue #20): added median <= 1.2 ms (DESIGN.md §11 holds the looser 2 ms floor).
# The shim is the static ddcoterm-shim built beside DDCOTERM_BIN (default target/release/ddcoterm) when there
# is one, as `ddcoterm shim create` links it; NO_STATIC_SHIM=1 links the dynamic ddcoterm instead.
# RUNS=N changes the run count (default 1000); PREV_BIN=path/to/older/ddcoterm measures that build too;
# SETUP_ONLY=FILE builds the scenario, writes its variables to FILE and exits (bench/shim-order.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${DDCOTERM_BIN:-$PWD/target/release/ddcoterm}
unset DDCOTERM_BIN # a DDCOTERM_* variable would reach the shim as a config key
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine missing: make tools" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/real" "$work/etc" "$work/home/.kube" "$work/bin"
# Each build is measured as installed: copied, synced, and its pages dropped from the page cache, so the first
# run reads it back as after a package install or a reboot. A file the linker has just written stays cached
# in the pieces it was written in, and exec'ing it took about 0.15 ms longer per call here until evicted
# (same bytes, same run), which would otherwise be measured as part of the shim.
installed() {
  cp "$1" "$2"
  sync "$2"
  dd if="$2" iflag=nocache count=0 2>/dev/null || true
}
# The fake kubectl: a tiny C program, so process start-up is the only cost measured.
printf 'int main(void){return 0;}\n' > "$work/k.c"
cc -O2 -o "$work/k" "$work/k.c"
installed "$work/k" "$work/real/kubectl"
# The floor of any wrapper: a second process that only execs the real one, in C and in Rust (std's start-up).
# What a process start costs differs from machine to machine (on a VM where CPUID traps, the dynamic loader's
# CPU probing alone is most of it), so the shim is also reported over these, measured in the same run.
printf '#include <unistd.h>\nint main(int c, char **v) { (void)c; execv("%s", v); return 127; }\n' \
  "$work/real/kubectl" > "$work/wrap.c"
cc -O2 -o "$work/wrap" "$work/wrap.c"
installed "$work/wrap" "$work/bin/wrap-c"
floor=(-n exec-wrapper-c "$work/bin/wrap-c get pods -n default")
if command -v rustc >/dev/null; then
  printf 'use std::os::unix::process::CommandExt;\nfn main() { let e = std::process::Command::new("%s").args(std::env::args_os().skip(1)).exec(); eprintln!("{e}"); std::process::exit(127) }\n' \
    "$work/real/kubectl" > "$work/wrap.rs"
  rustc -O -o "$work/wrap-rs" "$work/wrap.rs"
  installed "$work/wrap-rs" "$work/bin/wrap-rs"
  floor+=(-n exec-wrapper-rust "$work/bin/wrap-rs get pods -n default")
fi

# A kubeconfig as kubectl writes it (keys in kubectl's order, CA data inline): 5 clusters, contexts, users.
ca=$(head -c 1100 /dev/zero | tr '\0' 'Q' | base64 -w0)
{
  echo "apiVersion: v1"
  echo "clusters:"
  for c in prod-eu-1 prod-us-1 staging-eu dev-local ci; do
    echo "- cluster:"
    echo "    certificate-authority-data: $ca"
    echo "    server: https://$c.k8s.example.internal:6443"
    echo "  name: $c"
  done
  echo "contexts:"
  for c in prod-eu-1 prod-us-1 staging-eu dev-local ci; do
    echo "- context:"
    echo "    cluster: $c"
    echo "    namespace: default"
    echo "    user: $c-admin"
    echo "  name: $c"
  done
  echo "current-context: prod-eu-1"
  echo "kind: Config"
  echo "preferences: {}"
  echo "users:"
  for c in prod-eu-1 prod-us-1 staging-eu dev-local ci; do
    echo "- name: $c-admin"
    echo "  user:"
    echo "    exec:"
    echo "      apiVersion: client.authentication.k8s.io/v1beta1"
    echo "      command: kubelogin"
    echo "      args: [get-token, --server-id, $c]"
  done
} > "$work/home/.kube/config"

# 20 organisation rules, none matching `kubectl get pods -n default` in prod-eu-1.
cat > "$work/etc/config.yaml" <<'YAML'
process_config:
  default_actions: []
  commands:
    - command: kubectl
      lints:
        - if has_arg("delete") and flags["all-namespaces"] then return "deleting across all namespaces" end
      rules:
        - rule: has_arg("delete") and (k8s_context or ""):match("^prod")
          actions: [record, approval]
        - rule: (has_arg("scale") or has_arg("rollout")) and (k8s_context or ""):find("prod", 1, true)
          actions: [record, approval]
        - rule: (flags.namespace or flags.n) == "kube-system" and not has_arg("get")
          actions: [record, approval]
        - rule: (has_arg("drain") or has_arg("cordon") or has_arg("uncordon")) and k8s_context ~= "dev-local"
          actions: [record, approval]
        - rule: args[1] == "exec" and (flags.namespace or flags.n or "default"):match("^payments")
          actions: [record, logs]
        - rule: |
            local ctx = k8s_context or ""
            if not ctx:match("^prod%-") then return false end
            if args[1] ~= "apply" and args[1] ~= "create" then return false end
            return true, "changing " .. ctx .. " needs a second pair of eyes", "apply to " .. ctx
          actions: [record, approval]
        - rule: args[1] == "port-forward" and (k8s_context or ""):match("prod")
          actions: [record, logs]
        - rule: args[1] == "edit" and k8s_context ~= "dev-local"
          actions: [record, approval]
        - rule: flags.force and has_arg("delete")
          actions: [record, approval]
        - rule: args[1] == "patch" and (flags.namespace or flags.n or "") == "ingress-nginx"
          actions: [record, approval]
        - rule: args[1] == "replace" and flags.force ~= nil
          actions: [record, approval]
        - rule: has_arg("secret") and (args[1] == "get" or args[1] == "describe") and (flags.output == "yaml" or flags.o == "yaml" or flags.o == "json")
          actions: [record, logs]
        - rule: args[1] == "label" and has_arg("node") and (k8s_context or ""):match("prod")
          actions: [record, approval]
        - rule: args[1] == "taint"
          actions: [record, approval]
        - rule: args[1] == "debug" and (k8s_context or ""):match("^prod")
          actions: [record]
        - rule: args[1] == "cp" and k8s_context ~= "dev-local" and k8s_context ~= "ci"
          actions: [record, logs]
        - rule: args[1] == "delete" and (has_arg("namespace") or has_arg("ns") or has_arg("pvc"))
          actions: [record, approval]
        - rule: args[1] == "certificate" and has_arg("approve")
          actions: [record, approval]
        - rule: args[1] == "auth" and has_arg("can-i") and flags.as ~= nil
          actions: [record, logs]
        - rule: (flags.context or k8s_current_context or "") ~= (k8s_context or "") or flags.kubeconfig ~= nil
          actions: [record, logs]
YAML
chmod 0644 "$work/etc/config.yaml"
export DDCOTERM_SYSTEM_DIR="$work/etc" DDCOTERM_HOME="$work/home/.ddcoterm" HOME="$work/home"
unset KUBECONFIG
PATH="$work/home/.ddcoterm-shims:$work/real:$PATH"
mkdir -p "$work/home/.ddcoterm-shims"
installed "$bin" "$work/bin/ddcoterm"
# The shim links point where `ddcoterm shim create` points them: at the static ddcoterm-shim installed beside
# ddcoterm (it hands what it does not decide over to ddcoterm), else at ddcoterm itself.
target="$work/bin/ddcoterm"
if [ -x "$(dirname "$bin")/ddcoterm-shim" ] && [ -z "${NO_STATIC_SHIM:-}" ]; then
  installed "$(dirname "$bin")/ddcoterm-shim" "$work/bin/ddcoterm-shim"
  target="$work/bin/ddcoterm-shim"
fi
echo "shim.sh: the shim links point at $(basename "$target")"
ln -s "$target" "$work/home/.ddcoterm-shims/kubectl"
export PATH
call=(get pods -n default)
# Sanity: the shim really decides (no rule matches: exit 0 from the fake), and the rules do read the context:
# a matching call is refused without a terminal to approve on instead of reaching the fake.
"$work/home/.ddcoterm-shims/kubectl" "${call[@]}"
if "$work/home/.ddcoterm-shims/kubectl" delete pod x </dev/null >/dev/null 2>&1; then
  echo "shim.sh: a matching rule did not stop the call; the benchmark would measure nothing" >&2
  exit 1
fi
if [ -n "${SETUP_ONLY:-}" ]; then
  # bench/shim-order.sh: keep the scenario (the caller removes $work) and say where it is.
  trap - EXIT
  printf 'export DDCOTERM_SYSTEM_DIR=%q DDCOTERM_HOME=%q HOME=%q PATH=%q\nSHIM=%q\nSCENARIO=%q\n' \
    "$DDCOTERM_SYSTEM_DIR" "$DDCOTERM_HOME" "$HOME" "$PATH" "$work/home/.ddcoterm-shims/kubectl" "$work" \
    > "$SETUP_ONLY"
  exit 0
fi
prev=()
if [ -n "${PREV_BIN:-}" ]; then
  [ -x "$PREV_BIN" ] || { echo "shim.sh: PREV_BIN=$PREV_BIN is not an executable" >&2; exit 1; }
  mkdir -p "$work/prev-shims"
  installed "$PREV_BIN" "$work/bin/ddcoterm-prev"
  ln -s "$work/bin/ddcoterm-prev" "$work/prev-shims/kubectl"
  # Each shim finds the real kubectl on PATH past itself, so each gets a PATH of its own; `env` sets it for
  # both the same way (its exec is in both figures and cancels out of their difference).
  prev=(-n this-env "env PATH=$work/home/.ddcoterm-shims:$work/real kubectl ${call[*]}"
        -n prev-env "env PATH=$work/prev-shims:$work/real kubectl ${call[*]}")
fi
# Warm-up calls also let a shim that keeps a cache write it; the measured runs are then the steady state.
hyperfine -N --warmup 100 --runs "${RUNS:-1000}" --export-json "$work/h.json" \
  -n direct "$work/real/kubectl ${call[*]}" \
  -n shim "$work/home/.ddcoterm-shims/kubectl ${call[*]}" "${floor[@]}" "${prev[@]}" >/dev/null
python3 - "$work/h.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
d, s = r["direct"]["median"] * 1e3, r["shim"]["median"] * 1e3
added = s - d
print(f"shim: direct exec median {d:.3f} ms, shim median {s:.3f} ms, added median {added:.3f} ms "
      f"(ratio {s/d:.2f}x); target added <= 1.2 ms: {'PASS' if added <= 1.2 else 'FAIL'}")
for name, lang in (("exec-wrapper-c", "C"), ("exec-wrapper-rust", "Rust")):
    if name in r:
        w = r[name]["median"] * 1e3
        print(f"shim: a minimal exec wrapper in {lang} adds {w - d:.3f} ms here (this machine's floor for a "
              f"second process); the shim adds {s - w:.3f} ms over it")
if "prev-env" in r:
    t, p = r["this-env"]["median"] * 1e3, r["prev-env"]["median"] * 1e3
    print(f"shim: with env setting PATH, this build {t:.3f} ms, previous build (PREV_BIN) {p:.3f} ms, "
          f"difference {t - p:+.3f} ms ({t / p:.3f}x, same run)")
PY
