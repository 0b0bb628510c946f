#!/usr/bin/env bash
# Builds the .deb packages `ddcoterm` and `ddcoterm-server` into target/package/ with dpkg-deb from a staging
# tree per package (no cargo-deb: two packages share the generated man pages and completions and the units
# in deploy/, and dpkg-deb is on every Debian machine, so CI compiles no packaging tool).
#
# Each package: its binary in /usr/bin, man pages (gzipped), bash/zsh/fish completions, systemd units from
# deploy/systemd (binary path rewritten to /usr/bin), maintainer scripts from deploy/debian/<package>/, a
# copyright file; the server adds /etc/ddcoterm-server/config.yaml (a conffile).
#
# Usage: scripts/package.sh          (make package; runs scripts/gen.sh first unless SKIP_GEN=1)
# Env:   BIN_DIR (default target/release), OUT_DIR (default target/package), DEB_REVISION (default 1).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin_dir="${BIN_DIR:-target/release}"
out="${OUT_DIR:-target/package}"
revision="${DEB_REVISION:-1}"
start=$(date +%s)

if ! command -v dpkg-deb >/dev/null; then
    echo "package: dpkg-deb is missing (Debian's dpkg package)" >&2
    exit 1
fi
if [[ "${SKIP_GEN:-0}" != 1 ]]; then
    BIN_DIR="$bin_dir" bash scripts/gen.sh
fi
arch="$(dpkg --print-architecture)"

# Stages both packages' files under /usr with the same layout `make install PREFIX=/usr` gives.
stage="$out/stage"
rm -rf "$stage"
DESTDIR="$stage" PREFIX=/usr BIN_DIR="$bin_dir" MAN_GZIP=1 bash scripts/install.sh >/dev/null

# libc6 (>= the newest GLIBC_ symbol version the binary uses), and libgcc-s1 when it is linked.
depends_of() {
    local bin="$1" glibc deps
    glibc="$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)"
    deps="libc6 (>= $glibc)"
    if readelf -d "$bin" | grep -q 'NEEDED.*libgcc_s'; then
        deps="$deps, libgcc-s1"
    fi
    echo "$deps, passwd"
}

version_of() {
    sed -n 's/^version *= *"\(.*\)"/\1/p' "$1" | head -1
}

# build_package NAME VERSION SUMMARY LONG_DESCRIPTION EXTRA_FILES_FUNCTION
build_package() {
    local name="$1" version="$2" summary="$3" long="$4" extra="$5"
    local tree="$out/$name"
    rm -rf "$tree"
    install -d -m 0755 "$tree/DEBIAN" "$tree/usr/bin" "$tree/usr/share/man/man1" \
        "$tree/usr/share/bash-completion/completions" "$tree/usr/share/zsh/vendor-completions" \
        "$tree/usr/share/fish/vendor_completions.d" "$tree/usr/share/doc/$name"
    install -m 0755 "$stage/usr/bin/$name" "$tree/usr/bin/$name"
    install -m 0644 "$stage/usr/share/bash-completion/completions/$name" "$tree/usr/share/bash-completion/completions/"
    install -m 0644 "$stage/usr/share/zsh/vendor-completions/_$name" "$tree/usr/share/zsh/vendor-completions/"
    install -m 0644 "$stage/usr/share/fish/vendor_completions.d/$name.fish" "$tree/usr/share/fish/vendor_completions.d/"
    local page base
    for page in "$stage"/usr/share/man/man1/*.1.gz; do
        base="$(basename "$page" .1.gz)"
        # The client's pages are ddcoterm and ddcoterm-<command>; the server's start with ddcoterm-server.
        if [[ "$name" == ddcoterm-server && ( "$base" == ddcoterm-server || "$base" == ddcoterm-server-* ) ]] ||
            [[ "$name" == ddcoterm && "$base" != ddcoterm-server && "$base" != ddcoterm-server-* ]]; then
            install -m 0644 "$page" "$tree/usr/share/man/man1/"
        fi
    done
    printf 'This package is %s, licensed under the Apache License 2.0:\n/usr/share/common-licenses/Apache-2.0\n' \
        "$name" > "$tree/usr/share/doc/$name/copyright"
    chmod 0644 "$tree/usr/share/doc/$name/copyright"
    "$extra" "$tree"
    local script
    for script in postinst prerm postrm; do
        install -m 0755 "deploy/debian/$name/$script" "$tree/DEBIAN/$script"
    done
    {
        echo "Package: $name"
        echo "Version: $version-$revision"
        echo "Architecture: $arch"
        echo "Maintainer: ddcoterm maintainers <ddcoterm@localhost>"
        echo "Installed-Size: $(du -sk --exclude=DEBIAN "$tree" | cut -f1)"
        echo "Depends: $(depends_of "$tree/usr/bin/$name")"
        echo "Section: admin"
        echo "Priority: optional"
        echo "Description: $summary"
        echo "$long" | fold -s -w 78 | sed 's/^/ /; s/ *$//'
    } > "$tree/DEBIAN/control"
    if [[ -d "$tree/etc" ]]; then
        (cd "$tree" && find etc -type f | sed 's|^|/|' | sort) > "$tree/DEBIAN/conffiles"
    fi
    (cd "$tree" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort | xargs md5sum) \
        > "$tree/DEBIAN/md5sums"
    local deb="$out/${name}_${version}-${revision}_${arch}.deb"
    dpkg-deb --root-owner-group -Zxz --build "$tree" "$deb" >/dev/null
    echo "package: $deb ($(( $(stat -c %s "$deb") / 1024 )) KiB)"
}

# Units from deploy/systemd, for the binaries in /usr/bin.
unit() {
    install -d -m 0755 "$(dirname "$2")"
    sed 's|/usr/local/bin/|/usr/bin/|g' "$1" > "$2"
    chmod 0644 "$2"
}

client_files() {
    local tree="$1"
    # The static shim binary, beside ddcoterm (it hands what it does not decide over to /usr/bin/ddcoterm).
    install -m 0755 "$stage/usr/bin/ddcoterm-shim" "$tree/usr/bin/ddcoterm-shim"
    unit deploy/systemd/ddcoterm-agent.service "$tree/usr/lib/systemd/system/ddcoterm-agent.service"
    unit deploy/systemd/ddcoterm-spool-flush.service "$tree/usr/lib/systemd/system/ddcoterm-spool-flush.service"
    unit deploy/systemd/ddcoterm-spool-flush.timer "$tree/usr/lib/systemd/system/ddcoterm-spool-flush.timer"
    unit deploy/systemd/user/ddcoterm-spool-flush.service "$tree/usr/lib/systemd/user/ddcoterm-spool-flush.service"
    unit deploy/systemd/user/ddcoterm-spool-flush.timer "$tree/usr/lib/systemd/user/ddcoterm-spool-flush.timer"
}
server_files() {
    local tree="$1"
    unit deploy/systemd/ddcoterm-server.service "$tree/usr/lib/systemd/system/ddcoterm-server.service"
    install -d -m 0755 "$tree/etc/ddcoterm-server"
    install -m 0640 deploy/debian/ddcoterm-server/config.yaml "$tree/etc/ddcoterm-server/config.yaml"
    # The web UI embeds asciinema-player (Apache-2.0): its notice ships with the binary (make web-assets).
    install -m 0644 .build/web-assets/LICENSE-asciinema-player "$tree/usr/share/doc/ddcoterm-server/"
    printf '\nIt embeds asciinema-player (Apache License 2.0); notice: LICENSE-asciinema-player\n' \
        >> "$tree/usr/share/doc/ddcoterm-server/copyright"
}

rm -f "$out"/*.deb
build_package ddcoterm "$(version_of Cargo.toml)" \
    "terminal session recorder and command guard (Datadog CoTerm compatible)" \
    "Records terminal sessions and guards commands with CoTerm-compatible Lua policy. Includes the bastion-mode agent (user ddcoterm-agent, /var/spool/ddcoterm; enable ddcoterm-agent.service with agent.enabled) and spool-flush timers for root and for every user." \
    client_files
build_package ddcoterm-server "$(version_of server/Cargo.toml)" \
    "self-hosted session server for ddcoterm recordings" \
    "Receives recordings from ddcoterm hosts and serves them to reviewers (read API, web UI, live follow, full-text search). Runs as the ddcoterm-server system user with its data in /var/lib/ddcoterm-server; configured in /etc/ddcoterm-server/config.yaml." \
    server_files
rm -rf "$stage"
echo "package: done in $(( $(date +%s) - start ))s"
