#!/usr/bin/env bash
# Session server benchmark (DESIGN.md §11): paced and saturated ingest on SQLite + a local directory, with
# `dd bs=16k oflag=dsync` on the same filesystem as the reference measured in the same run, and the server's
# peak RSS. Environment: HOSTS (200), SECONDS_PACED (60), SECONDS_SAT (20), PROFILE (release).
set -euo pipefail
cd "$(dirname "$0")/.."
hosts=${HOSTS:-200}
paced=${SECONDS_PACED:-60}
sat=${SECONDS_SAT:-20}
profile=${PROFILE:-release}
flag=$([ "$profile" = release ] && echo --release || true)
cargo build --locked $flag -p ddcoterm-server --bin ddcoterm-server --example loadgen >/dev/null 2>&1 \
  || cargo build --locked $flag -p ddcoterm-server --bin ddcoterm-server --example loadgen
bin=target/$profile/ddcoterm-server
gen=target/$profile/examples/loadgen
mkdir -p target/tmp
work=$(mktemp -d target/tmp/bench-server.XXXXXX)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# Reference: synchronous 16 KiB writes on the data directory's filesystem, alone.
dd_out=$(dd if=/dev/zero of="$work/dd.bin" bs=16k count=1000 oflag=dsync 2>&1 | tail -1)
dd_mbs=$(echo "$dd_out" | awk '{for (i=1;i<=NF;i++) if ($i ~ /^[kMG]B\/s$/) {v=$(i-1); u=$i}} END {if (u=="kB/s") v=v/1000; if (u=="GB/s") v=v*1000; print v}')
rm -f "$work/dd.bin"
echo "dd bs=16k oflag=dsync: $dd_mbs MB/s ($dd_out)"

start_server() {
  rm -rf "$work/data"
  token=$("$bin" --data-dir "$work/data" token create bench --role host 2>/dev/null)
  "$bin" --data-dir "$work/data" serve --listen 127.0.0.1:0 >"$work/out" 2>"$work/err" &
  server_pid=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
  url="http://$(sed -n 's/^listening on //p' "$work/out")"
}
rss_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$server_pid/status"; }

start_server
echo "paced: $hosts hosts, 16 KiB every 250 ms, ${paced}s (SQLite + local directory, $profile build)"
paced_out=$("$gen" "$url" "$token" --hosts "$hosts" --seconds "$paced")
echo "  $paced_out server_peak_rss_mib=$(rss_mib)"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=

start_server
echo "saturated: $hosts hosts sending as fast as acks return, ${sat}s"
sat_out=$("$gen" "$url" "$token" --hosts "$hosts" --seconds "$sat" --saturate)
sat_mbs=$(echo "$sat_out" | sed -n 's/.*mb_per_s=\([0-9.]*\).*/\1/p')
echo "  $sat_out server_peak_rss_mib=$(rss_mib)"
echo "  ratio to dd oflag=dsync: $(awk -v a="$sat_mbs" -v b="$dd_mbs" 'BEGIN {printf "%.2fx", a/b}') (target >= 1.0x)"
