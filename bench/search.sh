#!/usr/bin/env bash
# Full-text search benchmark (DESIGN.md §11: q over 10,000 sessions / 1 GB of output <= 200 ms): ingests
# SESSIONS sessions of BYTES_PER_SESSION bytes of terminal-like output into a fresh server (SQLite + a local
# directory), waits for the indexer, then prints q= latency p50/p99 beside `grep -rlF WORD` over the same casts
# in the same run. Environment: SESSIONS (10000), BYTES_PER_SESSION (100000), QUERIES (100), PROFILE (release).
# A quick run: SESSIONS=500 BYTES_PER_SESSION=20000 PROFILE=debug bash bench/search.sh
set -euo pipefail
cd "$(dirname "$0")/.."
sessions=${SESSIONS:-10000}
bytes=${BYTES_PER_SESSION:-100000}
queries=${QUERIES:-100}
profile=${PROFILE:-release}
flag=$([ "$profile" = release ] && echo --release || true)
cargo build --locked $flag -p ddcoterm-server --bin ddcoterm-server --example searchgen >/dev/null 2>&1 \
  || cargo build --locked $flag -p ddcoterm-server --bin ddcoterm-server --example searchgen
bin=target/$profile/ddcoterm-server
gen=target/$profile/examples/searchgen
mkdir -p target/tmp
work=$(mktemp -d target/tmp/bench-search.XXXXXX)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

host=$("$bin" --data-dir "$work/data" token create bench --role host 2>/dev/null)
read=$("$bin" --data-dir "$work/data" token create reader --role auditor 2>/dev/null)
"$bin" --data-dir "$work/data" serve --listen 127.0.0.1:0 >"$work/out" 2>"$work/err" &
server_pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
url="http://$(sed -n 's/^listening on //p' "$work/out")"
echo "search: $sessions sessions x $bytes bytes (SQLite + local directory, $profile build)"
"$gen" "$url" "$host" "$read" "$work/casts" --sessions "$sessions" --bytes-per-session "$bytes" --queries "$queries" \
  | sed 's/^/  /'
echo "  server_peak_rss_mib=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$server_pid/status")"
