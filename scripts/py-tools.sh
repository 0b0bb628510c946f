#!/usr/bin/env bash
# Creates the Python tool venv used by the fleet checks (.build/venv): the Helm 4 engine from PyPI,
# offline Kubernetes schema validation, Ansible (with community.docker), ansible-lint and yamllint.
# Idempotent: a stamp file records the pinned set; re-running with the same pins does nothing.
#
# Usage: scripts/py-tools.sh        (prints the venv path on the last line)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$root/.build/venv}"
python="${PYTHON:-python3}"

# Pinned so CI and developers lint and render with the same engines.
pins=(
    "helm-python-sdk==0.2.2"
    "kubernetes-validate==1.35.0"
    "ansible==11.13.0"
    "ansible-lint==25.12.2"
    "yamllint==1.37.1"
)
stamp="$venv/.ddcoterm-pins"
want="$(printf '%s\n' "${pins[@]}")"

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "py-tools: $venv is up to date"
    echo "$venv"
    exit 0
fi

start=$(date +%s)
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
    echo "py-tools: $python lacks venv/ensurepip; install python3-venv" >&2
    exit 1
fi
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
printf '%s\n' "$want" > "$stamp"
echo "py-tools: installed ${pins[*]} into $venv in $(( $(date +%s) - start ))s"
echo "$venv"
