#!/usr/bin/env bash
# Installs what the web UI's browser tests (server/tests/web_*.rs) drive: Debian's chromium and chromium-driver,
# without recommends. Idempotent; as a non-root user it only reports what is missing (the tests then print
# "skipped: ..." rather than pass silently).
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "browser-tools: missing packages (install as root): ${need[*]}; the browser tests will skip" >&2
    exit 0
fi
echo "browser-tools: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
