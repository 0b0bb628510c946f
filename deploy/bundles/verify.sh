#!/bin/sh
# CI check: every bundle in deploy/bundles verifies against the example public key and compiles.
# Usage: deploy/bundles/verify.sh [path/to/ddcoterm]   (default: ddcoterm on PATH, else target/debug/ddcoterm)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-}
if [ -z "$bin" ]; then
  if command -v ddcoterm >/dev/null 2>&1; then bin=ddcoterm; else bin="$here/../../target/debug/ddcoterm"; fi
fi
status=0
for f in "$here"/*.yaml; do
  case "$f" in *.tests.yaml) continue ;; esac
  "$bin" bundle verify "$f" --pubkey "$here/example-signing.pub" || status=1
done
exit $status
