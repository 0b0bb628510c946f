#!/usr/bin/env bash
# The session server's integration suite again, against PostgreSQL + S3 (SeaweedFS) instead of SQLite + a
# local directory (server/tests/support/backends.rs starts both services). `make test` runs it after the
# workspace tests; without the services it says "skipped" and why.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "server backends: skipped: PostgreSQL is not installed (make tools installs it as root)"
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "server backends: skipped: running as root without a postgres user to run the cluster as"
    exit 0
fi
if [ ! -x "${DDCOTERM_WEED:-$root/.build/server-venv/bin/weed}" ]; then
    echo "server backends: skipped: SeaweedFS is missing (make tools installs it into .build/server-venv)"
    exit 0
fi
echo "server backends: the integration suite on PostgreSQL + S3"
DDCOTERM_SERVER_BACKEND=postgres-s3 "${CARGO:-cargo}" test --locked -p ddcoterm-server --tests
