#!/usr/bin/env bash
# End to end for the fleet bundle, timing each step: base image, release build, runtime image, Helm chart
# check (with the release binary loading every rendered config), ansible-lint, then the container tests
# (debug-shell image, three-bastion Ansible rollout, the SSH bastion behind a real sshd, the .deb packages,
# the server image) on the release binaries.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TERM_COLOR=never
declare -a report=()
step() {
    local name=$1; shift
    local t0; t0=$(date +%s)
    "$@"
    report+=("$(printf '%-14s %4ss' "$name" $(( $(date +%s) - t0 )))")
}

step tools        bash scripts/install-tools.sh
step base-image   bash scripts/base-image.sh
step release      cargo build --locked --release --bin ddcoterm --bin ddcoterm-shim
step image        env SKIP_CARGO=1 bash scripts/image.sh
step server-rel   cargo build --locked --release -p ddcoterm-server
step server-image env SKIP_CARGO=1 bash scripts/server-image.sh
step package      env SKIP_CARGO=1 bash scripts/package.sh
venv="$(bash scripts/py-tools.sh | tail -1)"
step helm-check   "$venv/bin/python" scripts/helm-check.py --ddcoterm target/release/ddcoterm
step ansible-lint bash scripts/ansible-lint.sh
step fleet-tests  cargo test --locked --release --test fleet_configs --test fleet_image --test fleet_ansible --test fleet_ssh --test fleet_bastion --test fleet_package --test fleet_server_image --test fleet_server_ansible --test agent_bastion --test ssh_login -- --nocapture --test-threads=1

echo "e2e: step times"
printf '  %s\n' "${report[@]}"
