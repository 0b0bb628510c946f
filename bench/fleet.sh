#!/usr/bin/env bash
# The fleet numbers of issue #19 in one run, measured by the end-to-end test on real containers
# (tests/fleet_e2e.rs: one implementation; this script runs it and prints what it measured):
#   - rollout time of 3 bastions + the session server from bare containers (ansible-playbook site.yml),
#   - the second run's changed count (must be 0),
#   - sessions recorded on the bastions vs sessions on the server (must be equal),
#   - time from a session's end to its being complete on the server, p50/p99,
#   - the same for the sessions that ended while the server was killed (and a bastion offline 30 s).
# Needs docker, the base image (make base-image), the Python tools (make py-tools), PostgreSQL and SeaweedFS
# (make tools). Debug build, like CI. Not part of `make bench` (about 3-4 minutes, containers): run it as
# `bash bench/fleet.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
numbers=target/tmp/fleet-numbers.txt
mkdir -p target/tmp
# Keep the other suites' lines; drop an earlier run's.
if [ -f "$numbers" ]; then
  grep -v '^fleet_e2e:' "$numbers" > "$numbers.tmp" || true
  mv "$numbers.tmp" "$numbers"
fi
log=target/tmp/fleet-bench.log
start=$(date +%s)
if ! cargo test --locked --test fleet_e2e -- --nocapture >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "fleet bench: the end-to-end test failed (full log: $log)" >&2
  exit 1
fi
if grep -q '^skipped:' "$log"; then
  grep '^skipped:' "$log"
  exit 0
fi
echo "== fleet (tests/fleet_e2e.rs), load average $(cut -d' ' -f1-3 /proc/loadavg)"
grep '^fleet_e2e:' "$numbers"
echo "fleet bench: done in $(( $(date +%s) - start ))s"
