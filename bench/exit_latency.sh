#!/usr/bin/env bash
# Exit latency of a recorded `true` (5 runs each, spool.flush_timeout 3s): session server up (the baseline)
# vs down (connection refused: not waited for). Prints both and the ratio. Needs target/debug binaries.
set -euo pipefail
T=$(mktemp -d); trap 'kill $pid 2>/dev/null; rm -rf $T' EXIT
S=target/debug/ddcoterm-server
$S --data-dir $T/d token create h --role host > $T/tok
$S --data-dir $T/d serve --listen 127.0.0.1:0 > $T/out 2>/dev/null & pid=$!
sleep 1; url=http://$(sed -n 's/^listening on //p' $T/out)
down=http://127.0.0.1:9
mkdir -p $T/sys
run() { # bin config
  mkdir -p $T/h; printf '%s' "$2" > $T/h/config.yaml
  local s=$(date +%s%N)
  for i in 1 2 3 4 5; do DDCOTERM_HOME=$T/h DDCOTERM_SYSTEM_DIR=$T/sys HOME=$T DDCOTERM_SPOOL__BACKGROUND_FLUSH=false $1 -- true >/dev/null 2>&1; done
  echo $(( ($(date +%s%N)-s)/5000000 ))
}
up=$(run target/debug/ddcoterm "server: {url: $url, token_file: $T/tok}")
dn=$(run target/debug/ddcoterm "server: {url: $down, token_file: $T/tok}")
echo "recorded \`true\`, mean of 5: server up ${up} ms; server down ${dn} ms; ratio down/up $(python3 -c "print(round($dn/$up,2))")"
