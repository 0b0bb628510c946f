#!/usr/bin/env bash
# `make demo`: a session server on SQLite + a local directory in a temp dir, a host token in a file, one
# recorded command uploaded through it (HOME and config in the temp dir, no Datadog account), its link, the
# session in the server's list (read with an auditor token); then the server is stopped and the dir removed.
set -euo pipefail
BIN=${BIN:-target/debug}
client=$BIN/ddcoterm
server=$BIN/ddcoterm-server
for b in "$client" "$server"; do
  [ -x "$b" ] || { echo "demo: $b is missing (make build server)" >&2; exit 1; }
done

tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

data=$tmp/server
mkdir -p "$tmp/home" "$tmp/system" "$tmp/user"
# The host token goes to a file (0600) that only the client's config names; the auditor token reads back.
(umask 077; "$server" --data-dir "$data" token create demo-host --role host >"$tmp/host.token")
auditor=$("$server" --data-dir "$data" token create demo-reviewer --role auditor)

"$server" --data-dir "$data" serve --listen 127.0.0.1:0 >"$tmp/server.out" 2>"$tmp/server.log" &
pid=$!
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$tmp/server.out" 2>/dev/null && break
  sleep 0.1
done
addr=$(sed -n 's/^listening on //p' "$tmp/server.out")
[ -n "$addr" ] || { echo "demo: the server did not start:" >&2; cat "$tmp/server.log" >&2; exit 1; }
url=http://$addr
echo "demo: ddcoterm-server listening on $url (data in $data)"

cat >"$tmp/home/config.yaml" <<YAML
server:
  url: $url
  token_file: $tmp/host.token
YAML
chmod 600 "$tmp/home/config.yaml"

echo "demo: recording \`sh -c 'echo hello from ddcoterm'\`"
env -u DD_API_KEY -u DD_APP_KEY -u DDCOTERM_SESSION \
  DDCOTERM_HOME="$tmp/home" DDCOTERM_SYSTEM_DIR="$tmp/system" HOME="$tmp/user" \
  DDCOTERM_SPOOL__BACKGROUND_FLUSH=false \
  "$client" -- sh -c 'echo hello from ddcoterm'

echo "demo: the server's session list (GET /api/v1/sessions, auditor token):"
curl -sf -H "Authorization: Bearer $auditor" "$url/api/v1/sessions" |
  jq -r '.sessions[] | "  \(.id)  \(.state)  \(.user)@\(.host)  `\(.command)`  exit \(.exit_status)  \(.url)"'
