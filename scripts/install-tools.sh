#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks need, once. Root only (CI and dev machines run as root);
# as another user it only reports what is missing.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have hyperfine || need+=(hyperfine)
have expect || need+=(expect)
have asciinema || need+=(asciinema)
have mmdebstrap || need+=(mmdebstrap)
have script || need+=(bsdutils)
[ -x /usr/bin/time ] || need+=(time)
have zsh || need+=(zsh)
have openssl || need+=(openssl)
have curl || need+=(curl)       # server/tests/tls.rs, scripts/demo.sh
have strace || need+=(strace)   # server/tests/durability.rs: fsync before every 2xx
have sqlite3 || need+=(sqlite3) # bench/web.sh loads 100,000 session rows; server/tests/search.rs reads the index
have bc || need+=(bc)           # benchmarks' arithmetic
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages (install as root): ${need[*]}" >&2
  exit 0
fi
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
