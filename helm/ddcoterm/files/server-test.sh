#!/bin/bash
# `helm test` for the session server (server.test.enabled), also run outside Kubernetes by
# scripts/helm-check.py against a real ddcoterm-server: records a command with the ddcoterm client into
# UPLOAD_URL with a host token (exactly as a bastion uploads), then reads the session back through READ_URL
# with a reader (auditor) token until it is complete, and checks the recording holds what the command printed.
#
# Environment:
#   UPLOAD_URL         server.url for the client (https://..., or http:// to loopback)          [required]
#   READ_URL           http://host:port of the read API (the in-cluster Service; bash's /dev/tcp, no TLS)
#                      [required]
#   HOST_TOKEN_FILE    host token (ddcoterm-server token create NAME --role host)               [required]
#   READER_TOKEN_FILE  auditor token (ddcoterm-server token create NAME --role auditor)         [required]
#   DDCOTERM           the client binary (default: ddcoterm on PATH)
#   TIMEOUT            seconds to wait for the session to be complete (default 60)
# Exit 0 when the session came back complete with the marker in its cast; 1 otherwise, saying why.
set -euo pipefail

say() { echo "server-test: $*"; }
die() { echo "server-test: FAIL: $*" >&2; exit 1; }

: "${UPLOAD_URL:?}" "${READ_URL:?}" "${HOST_TOKEN_FILE:?}" "${READER_TOKEN_FILE:?}"
ddcoterm="${DDCOTERM:-ddcoterm}"
timeout_s="${TIMEOUT:-60}"
upload="${UPLOAD_URL%/}"

rest="${READ_URL#http://}"
[ "$rest" != "$READ_URL" ] || die "READ_URL must be http://host:port (got $READ_URL)"
rest="${rest%%/*}"
read_host="${rest%:*}"
read_port="${rest##*:}"
[ "$read_host" != "$rest" ] && [ -n "$read_port" ] || read_port=80
[ -s "$READER_TOKEN_FILE" ] || die "reader token file $READER_TOKEN_FILE is missing or empty"
reader="$(head -n 1 "$READER_TOKEN_FILE" | tr -d ' \t\r\n')"

# http_get PATH: sets STATUS and BODY (HTTP/1.0: no chunked encoding; the server closes after the answer).
http_get() {
    local resp
    exec 3<>"/dev/tcp/$read_host/$read_port" || die "cannot connect to $read_host:$read_port"
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept-Encoding: identity\r\n\r\n' \
        "$1" "$read_host:$read_port" "$reader" >&3
    resp="$(timeout 20 cat <&3 | tr -d '\r')" || true
    exec 3<&-
    STATUS="$(printf '%s\n' "$resp" | head -n 1 | cut -d' ' -f2)"
    BODY="$(printf '%s\n' "$resp" | sed '1,/^$/d')"
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -m 0755 "$tmp/system"
mkdir -m 0700 "$tmp/home" "$tmp/user"
cat > "$tmp/system/config.yaml" <<YAML
server:
  url: $upload
  token_file: $HOST_TOKEN_FILE
YAML
chmod 644 "$tmp/system/config.yaml"

marker="ddcoterm-helm-test-$(date +%s)-$$-$RANDOM"
say "recording \`echo $marker\` into $upload"
if ! env -u DD_API_KEY -u DD_APP_KEY -u DDCOTERM_SESSION \
    DDCOTERM_SYSTEM_DIR="$tmp/system" DDCOTERM_HOME="$tmp/home" HOME="$tmp/user" \
    DDCOTERM_SPOOL__BACKGROUND_FLUSH=false \
    "$ddcoterm" -- sh -c "echo $marker" > "$tmp/out" 2>&1; then
    cat "$tmp/out" >&2
    die "the recorded command failed"
fi
grep -q "$marker" "$tmp/out" || { cat "$tmp/out" >&2; die "the command's output is missing"; }
id="$(grep -o "$upload/sessions/[A-Za-z0-9_-]*" "$tmp/out" | head -n 1 | sed 's#.*/sessions/##')"
[ -n "$id" ] || { cat "$tmp/out" >&2; die "the client printed no link $upload/sessions/<id>: is server.url taken?"; }
say "session $id; waiting for it on $READ_URL"

deadline=$(( $(date +%s) + timeout_s ))
while :; do
    http_get "/api/v1/sessions/$id"
    if [ "$STATUS" = 200 ] && printf '%s' "$BODY" | grep -q '"state":"complete"'; then
        break
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        die "session $id not complete after ${timeout_s}s (last answer: HTTP ${STATUS:-none}: ${BODY:0:300})"
    fi
    case "$STATUS" in
        200 | 404 | 503) sleep 1 ;;
        *) die "GET /api/v1/sessions/$id: HTTP ${STATUS:-none}: ${BODY:0:300}" ;;
    esac
done

http_get "/api/v1/sessions/$id/cast"
[ "$STATUS" = 200 ] || die "GET /api/v1/sessions/$id/cast: HTTP ${STATUS:-none}: ${BODY:0:300}"
head -n 1 <<< "$BODY" | grep -q '"version":2' || die "the cast of $id does not start with an asciicast v2 header"
grep -q "$marker" <<< "$BODY" || die "the cast of $id lacks the marker the command printed"
say "ok: session $id uploaded through $upload and read back complete ($(printf '%s' "$BODY" | wc -c) bytes of cast)"
