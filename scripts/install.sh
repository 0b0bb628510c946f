#!/usr/bin/env bash
# Installs both binaries, their man pages and shell completions (from scripts/gen.sh), and the static shim
# binary ddcoterm-shim beside ddcoterm (what `ddcoterm shim create` then links to), under PREFIX, staged
# under DESTDIR (packaging). Systemd units and configs are not installed here: the .deb (make package) and
# the Ansible roles do that, or copy them from deploy/ (docs/fleet.md).
#
# Usage: scripts/install.sh          (make install PREFIX=/usr/local DESTDIR=)
# Env:   PREFIX (default /usr/local), DESTDIR (default empty), BIN_DIR (default target/release),
#        GEN_DIR (default target/gen), MAN_GZIP=1 to compress man pages (Debian policy).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
prefix="${PREFIX:-/usr/local}"
dest="${DESTDIR:-}"
bin_dir="${BIN_DIR:-target/release}"
gen="${GEN_DIR:-target/gen}"

if [[ "$prefix" != /* ]]; then
    echo "install: PREFIX must be an absolute path, not $prefix" >&2
    exit 1
fi
for f in "$bin_dir/ddcoterm" "$bin_dir/ddcoterm-shim" "$bin_dir/ddcoterm-server" "$gen/man/ddcoterm.1" "$gen/man/ddcoterm-server.1"; do
    if [[ ! -e "$f" ]]; then
        echo "install: $f is missing; run make gen first" >&2
        exit 1
    fi
done

# zsh looks in vendor-completions on Debian's /usr, in site-functions elsewhere.
zsh_dir=share/zsh/site-functions
[[ "$prefix" == /usr ]] && zsh_dir=share/zsh/vendor-completions

install -d -m 0755 "$dest$prefix/bin" "$dest$prefix/share/man/man1" \
    "$dest$prefix/share/bash-completion/completions" "$dest$prefix/$zsh_dir" \
    "$dest$prefix/share/fish/vendor_completions.d"
for bin in ddcoterm ddcoterm-server; do
    install -m 0755 "$bin_dir/$bin" "$dest$prefix/bin/$bin"
    install -m 0644 "$gen/completions/bash/$bin" "$dest$prefix/share/bash-completion/completions/$bin"
    install -m 0644 "$gen/completions/zsh/_$bin" "$dest$prefix/$zsh_dir/_$bin"
    install -m 0644 "$gen/completions/fish/$bin.fish" "$dest$prefix/share/fish/vendor_completions.d/$bin.fish"
done
install -m 0755 "$bin_dir/ddcoterm-shim" "$dest$prefix/bin/ddcoterm-shim"
for page in "$gen"/man/*.1; do
    install -m 0644 "$page" "$dest$prefix/share/man/man1/"
    if [[ "${MAN_GZIP:-0}" == 1 ]]; then
        gzip -9nf "$dest$prefix/share/man/man1/$(basename "$page")"
    fi
done
echo "install: ddcoterm, ddcoterm-shim and ddcoterm-server, $(ls "$gen"/man/*.1 | wc -l) man pages and completions under $dest$prefix"
