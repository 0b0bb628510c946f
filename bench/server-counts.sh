#!/usr/bin/env bash
# Ingest cost per acknowledged chunk in counts a loaded machine does not distort much (issue #17): the
# server's CPU time, context switches and page faults (`perf stat` on the server process, every thread, while
# the paced load runs), then in a second run under `strace -c -f` its syscalls, syncs (fsync + fdatasync),
# futex calls and thread starts (clone) per ack. SQLite + a local directory only.
# Environment: HOSTS (50), SECONDS (20), SERVER_BIN and LOADGEN_BIN (default: this checkout's debug build;
# e.g. SERVER_BIN=/path/to/ddcoterm-server.before to count a previous build the same way).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
hosts=${HOSTS:-50}
secs=${SECONDS_RUN:-${SECONDS_PACED:-20}}
bin=$(realpath "${SERVER_BIN:-$root/target/debug/ddcoterm-server}")
gen=$(realpath "${LOADGEN_BIN:-$root/target/debug/examples/loadgen}")
for t in perf strace; do
  command -v "$t" >/dev/null || { echo "skipped: $t is not installed"; exit 0; }
done
mkdir -p target/tmp
work=$(mktemp -d "$root/target/tmp/server-counts.XXXXXX")
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
field() { echo "$1" | sed -n "s/.*$2=\([0-9.]*\).*/\1/p"; }
per() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'; }

start_server() { # start_server [WRAPPER...]
  local data=$work/data-$RANDOM
  token=$("$bin" --data-dir "$data" token create bench --role host)
  "$@" "$bin" --data-dir "$data" serve --listen 127.0.0.1:0 >"$work/out" 2>"$work/err" &
  server_pid=$!
  for _ in $(seq 1 200); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
  url="http://$(sed -n 's/^listening on //p' "$work/out")"
  spid=$(pgrep -f -n -- "--data-dir $data serve")
}
stop_server() { kill "$spid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true; server_pid=; }

echo "server: $bin; paced: $hosts hosts, 16 KiB every 250 ms, ${secs}s; load $(cut -d' ' -f1-3 /proc/loadavg)"
start_server
perf stat -x, -e task-clock,context-switches,cpu-migrations,page-faults -p "$spid" -o "$work/perf" &
perf_pid=$!
sleep 0.5
out=$("$gen" "$url" "$token" --hosts "$hosts" --seconds "$secs")
kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
stop_server
acks=$(field "$out" acks)
ev() { awk -F, -v e="$1" '$3 ~ e {print $1}' "$work/perf"; }
echo "  perf run: $out"
echo "  per ack: cpu_ms=$(per "$(ev task-clock)" "$acks") context_switches=$(per "$(ev context-switches)" "$acks")" \
  "migrations=$(per "$(ev cpu-migrations)" "$acks") page_faults=$(per "$(ev page-faults)" "$acks")"

start_server strace -f -c -o "$work/strace"
out=$("$gen" "$url" "$token" --hosts "$hosts" --seconds "$secs")
stop_server
acks=$(field "$out" acks)
# `strace -c` columns: % time, seconds, usecs/call, calls, errors (may be empty), syscall.
calls() { awk -v re="$1" '$NF ~ re {n += $4} END {print n + 0}' "$work/strace"; }
total=$(calls '^total$')
echo "  strace run: $out"
echo "  per ack: syscalls=$(per "$total" "$acks") syncs=$(per "$(calls '^(fsync|fdatasync)$')" "$acks")" \
  "futex=$(per "$(calls '^futex$')" "$acks") clone=$(per "$(calls '^clone3?$')" "$acks")" \
  "openat=$(per "$(calls '^openat$')" "$acks") pwrite+write=$(per "$(calls '^(pwrite64|write|writev)$')" "$acks")"
