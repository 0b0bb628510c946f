#!/usr/bin/env bash
# `make bench`: every benchmark, each printing its numbers next to a baseline measured in the same run.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for b in bench/shim.sh bench/record.sh bench/spool.sh bench/server.sh; do
  [ -f "$b" ] || continue
  echo "== $b"
  bash "$b" || status=1
done
for c in policy redact; do
  grep -q "name = \"$c\"" Cargo.toml || continue
  echo "== cargo bench --bench $c"
  cargo bench --locked --bench "$c" 2>&1 | grep -E 'time:|thrpt:|^[a-z_/ ]+$' || status=1
done
exit $status
