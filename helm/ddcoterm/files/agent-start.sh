#!/bin/sh
# Starts `ddcoterm agent` in the bastion pod's agent container (bastion.agent.enabled): writes the agent's
# credentials file (agent.credentials_file) from the host-token Secret mounted at TOKEN_FILE, mode 0600 and
# owned by the agent's uid, into a directory only this container mounts (a Secret volume's own files are
# group-readable under fsGroup, which the agent rightly refuses), then execs the agent.
#
# Environment:
#   CREDENTIALS_FILE  where agent.credentials_file points                                        [required]
#   TOKEN_FILE        the mounted host token (one line); unset: no server upload, no credentials file
#   DDCOTERM          the binary (default /usr/local/bin/ddcoterm)
# Exit 78 (configuration) when the token file is missing, empty or not a token.
set -eu
umask 077
: "${CREDENTIALS_FILE:?}"
if [ -n "${TOKEN_FILE:-}" ]; then
    if [ ! -s "$TOKEN_FILE" ]; then
        echo "ddcoterm-agent: host token file $TOKEN_FILE is missing or empty (bastion.agent.tokenSecret, key bastion.agent.tokenSecretKey)" >&2
        exit 78
    fi
    token="$(head -n 1 "$TOKEN_FILE" | tr -d ' \t\r\n')"
    # Tokens are URL-safe base64 after a prefix; anything else would not survive the YAML line (and is not
    # a token): refuse rather than write it. The token itself is never printed.
    case "$token" in
        "" | *[!A-Za-z0-9_-]*)
            echo "ddcoterm-agent: $TOKEN_FILE does not hold a host token (expected one line of A-Z a-z 0-9 _ -, as printed by \`ddcoterm-server token create NAME --role host\`)" >&2
            exit 78
            ;;
    esac
    tmp="$CREDENTIALS_FILE.tmp.$$"
    printf 'server_token: %s\n' "$token" > "$tmp"
    chmod 600 "$tmp"
    mv -f "$tmp" "$CREDENTIALS_FILE"
    unset token
fi
exec "${DDCOTERM:-/usr/local/bin/ddcoterm}" agent
