#!/usr/bin/env bash
# Web benchmark (issue #18 "Done when", DESIGN.md §11), release build, figures and their targets in one run:
#   1. list: GET /api/v1/sessions p50/p99 over many filters and a deep cursor, with LIST_SESSIONS (100,000)
#      sessions in SQLite (rows loaded directly with sqlite3 in one transaction: the schema is the server's,
#      created by its own migrations; going through the API would take ~10 minutes for the same rows);
#   2. search: bench/search.sh's generator over SEARCH_SESSIONS (10,000) x SEARCH_BYTES (100,000) = 1 GB;
#      it takes most of the run;
#   3. windows: a WINDOW_SECONDS (3600) s, WINDOW_BYTES (200,000,000) byte recording uploaded through the
#      ingest API, then in a restarted server: the keyframe index build (time from its log line, the
#      server's peak RSS), the first window and WINDOWS (10) windows of SPAN (10) s and screens at random
#      moments, over HTTP;
#   4. browser: the same recording's session page in headless Chromium (server/examples/webplay.rs): with a
#      cold cache, the time until the player shows the first screen, then until it shows the right screen
#      after each of WINDOWS (10) seeks to random moments; "right" = the terminal's text equals the server's
#      own rendering (/screen?at=). Needs chromium and chromedriver (make tools), else "browser: skipped".
# LIST_SESSIONS=0, SEARCH_SESSIONS=0 or WINDOW_BYTES=0 skips that part.
# Environment: the variables above, PROFILE (release), SKIP_BUILD=1 (use the binaries already built). The machine may be shared: the load average is printed.
# A quick run: LIST_SESSIONS=10000 SEARCH_SESSIONS=0 WINDOW_BYTES=20000000 PROFILE=debug bash bench/web.sh
set -euo pipefail
cd "$(dirname "$0")/.."
list_sessions=${LIST_SESSIONS:-100000}
search_sessions=${SEARCH_SESSIONS:-10000}
search_bytes=${SEARCH_BYTES:-100000}
window_seconds=${WINDOW_SECONDS:-3600}
window_bytes=${WINDOW_BYTES:-200000000}
windows=${WINDOWS:-10}
span=${SPAN:-10}
profile=${PROFILE:-release}
flag=$([ "$profile" = release ] && echo --release || true)
command -v sqlite3 >/dev/null || { echo "web: skipped: sqlite3 is not installed (make tools installs it)"; exit 0; }
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --locked $flag -p ddcoterm-server --bin ddcoterm-server --example webgen --example webplay >/dev/null 2>&1 \
    || cargo build --locked $flag -p ddcoterm-server --bin ddcoterm-server --example webgen --example webplay
fi
bin=target/$profile/ddcoterm-server
gen=target/$profile/examples/webgen
mkdir -p target/tmp
work=$(mktemp -d target/tmp/bench-web.XXXXXX)
server_pid=
stop() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; server_pid=; }
cleanup() { stop; rm -rf "$work"; }
trap cleanup EXIT

# Starts the server on DIR; sets server_pid and url.
start() {
  "$bin" --data-dir "$1" serve --listen 127.0.0.1:0 >"$1.out" 2>"$1.err" &
  server_pid=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$1.out" 2>/dev/null && break; sleep 0.1; done
  url="http://$(sed -n 's/^listening on //p' "$1.out")"
}
load() { awk '{print $1}' /proc/loadavg; }

echo "web: $profile build; rerun with: bash bench/web.sh (variables: see the top of the script)"

# 1. The list at LIST_SESSIONS sessions.
if [ "$list_sessions" -eq 0 ]; then
  echo "list: skipped: LIST_SESSIONS=0"
else
d=$work/list
"$bin" --data-dir "$d" token create bench --role host >/dev/null 2>&1
read_token=$("$bin" --data-dir "$d" token create reader --role auditor 2>/dev/null)
t0=$(date +%s.%N)
sqlite3 "$d/ddcoterm.db" >/dev/null <<SQL
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $list_sessions - 1),
rows AS (
  SELECT i, 1735689600000 + i * (31536000000 / $list_sessions) AS ts,
    CASE i % 5 WHEN 0 THEN 'kubectl get pods -n payments' WHEN 1 THEN 'terraform apply -auto-approve'
      WHEN 2 THEN 'psql -h db-1 orders' WHEN 3 THEN 'ssh web-' || (i % 40) ELSE 'systemctl restart nginx' END AS cmd,
    CASE WHEN i % 100 = 0 THEN 'live' WHEN i % 37 = 0 THEN 'abandoned' ELSE 'complete' END AS state
  FROM n)
INSERT INTO sessions (id, owner_token, host, prefix, first_seen, last_activity, state, meta_json, user_name,
  command, sort_ts, ended_at, exit_status, last_seq, committed_seq, bytes, compacted, create_sha256, create_body)
SELECT printf('list-%06d', i), (SELECT id FROM tokens WHERE name = 'bench'), 'host-' || (i % 50),
  printf('sessions/2025/01/01/list-%06d', i), ts, ts, state,
  json_object('id', printf('list-%06d', i), 'started_at', strftime('%Y-%m-%dT%H:%M:%SZ', ts / 1000, 'unixepoch'),
    'host', 'host-' || (i % 50), 'user', 'user-' || (i % 200), 'command', cmd, 'width', 120, 'height', 40,
    'rule', 'prod', 'actions', json_array('record'), 'break_glass', json('false'), 'tags', json_array('env:prod')),
  'user-' || (i % 200), cmd, ts,
  CASE WHEN state = 'complete' THEN strftime('%Y-%m-%dT%H:%M:%SZ', ts / 1000 + 60, 'unixepoch') END,
  CASE WHEN state != 'complete' THEN NULL WHEN i % 50 = 0 THEN 2 WHEN i % 10 = 0 THEN 1 ELSE 0 END,
  CASE WHEN state = 'complete' THEN 3 END, 3, 65536, state = 'complete', hex(randomblob(32)),
  json_object('id', printf('list-%06d', i), 'command', cmd, 'padding', hex(randomblob(100)))
FROM rows;
COMMIT;
SQL
echo "list: $list_sessions sessions loaded in $(echo "$(date +%s.%N) - $t0" | bc) s (sqlite3, one transaction)"
start "$d"
echo "  load_average=$(load)"
"$gen" list "$url" "$read_token" --queries 50 | sed 's/^/  /'
stop
fi

# 2. Full-text search over SEARCH_SESSIONS sessions.
if [ "$search_sessions" -gt 0 ]; then
  SESSIONS=$search_sessions BYTES_PER_SESSION=$search_bytes PROFILE=$profile bash bench/search.sh
else
  echo "search: skipped: SEARCH_SESSIONS=0"
fi

# 3. Windows over one long recording.
if [ "$window_bytes" -eq 0 ]; then
  echo "windows: skipped: WINDOW_BYTES=0"
else
d=$work/win
host_token=$("$bin" --data-dir "$d" token create bench --role host 2>/dev/null)
read_token=$("$bin" --data-dir "$d" token create reader --role auditor 2>/dev/null)
start "$d"
echo "windows: a $window_seconds s, $window_bytes byte recording (SQLite + local directory)"
"$gen" record "$url" "$host_token" long --seconds "$window_seconds" --bytes "$window_bytes" | sed 's/^/  /'
stop
# A fresh process for the index build, so its peak RSS is the build's (ingest and compaction excluded); the
# index the background builder may have made meanwhile is dropped first.
sqlite3 "$d/ddcoterm.db" "DELETE FROM keyframes; UPDATE sessions SET kf_frames = 0, kf_bytes = 0, kf_time = 0, kf_done = 0;"
start "$d"
echo "  load_average=$(load)"
rss0=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$server_pid/status")
"$gen" windows "$url" "$read_token" long --windows "$windows" --span "$span" --pid "$server_pid" | sed 's/^/  /'
build=$(grep -o 'keyframes built.*' "$d.err" | tail -1 || true)
echo "  index_build: ${build:-not found in the log}"
echo "  server_rss_at_start_mib=$rss0 server_peak_rss_after_windows_mib=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$server_pid/status")"
stop
fi

# 4. The session page in a browser, on the recording of part 3 (its keyframe index built there).
if [ "$window_bytes" -eq 0 ]; then
  echo "browser: skipped: WINDOW_BYTES=0 (it plays the recording of part 3)"
elif ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "browser: skipped: chromium or chromedriver is not installed (make tools installs them)"
else
  printf 'bench password 1\n' | "$bin" --data-dir "$d" user add bench --role auditor --password-stdin >/dev/null 2>&1
  start "$d"
  echo "browser: headless Chromium, cold cache, the $window_seconds s, $window_bytes byte recording; load_average=$(load)"
  target/$profile/examples/webplay "$url" bench 'bench password 1' "$read_token" long --seeks "$windows" | sed 's/^/  /'
  stop
fi
