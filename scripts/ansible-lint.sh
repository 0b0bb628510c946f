#!/usr/bin/env bash
# Lints the Ansible role and playbook (ansible-lint, production profile, offline) and checks the playbook's
# syntax against the example inventory. Installs the Python tools first (scripts/py-tools.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$("$root/scripts/py-tools.sh" | tail -1)"
export PATH="$venv/bin:$PATH" PYTHONWARNINGS="ignore::DeprecationWarning" ANSIBLE_NOCOLOR=1 NO_COLOR=1
cd "$root/ansible"
start=$(date +%s)
ansible-lint --offline --profile production --strict site.yml roles/ddcoterm roles/ddcoterm_server
ansible-playbook --syntax-check site.yml
echo "ansible-lint: clean (production profile) in $(( $(date +%s) - start ))s"
