#!/usr/bin/env bash
# Fetches asciinema-player (Apache-2.0), the web UI's terminal player, as a pinned build dependency: the PyPI
# package sphinxcontrib-asciinema 0.4.3 ships asciinema-player_3.12.1.js/.css. pip downloads it (no
# dependencies, nothing installed), its sha256 is checked against scripts/web-assets.sha256, and the two files
# plus the licence notice go to .build/web-assets/, which server/build.rs embeds. Nothing of it is committed.
# Idempotent: an up-to-date .build/web-assets/ is left alone.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${DDCOTERM_WEB_ASSETS:-$root/.build/web-assets}"
pin="sphinxcontrib-asciinema==0.4.3"
dist="sphinxcontrib_asciinema-0.4.3"
player="asciinema-player_3.12.1"
want="$(awk -v f="$dist.tar.gz" '$2 == f {print $1}' "$root/scripts/web-assets.sha256")"
[ -n "$want" ] || { echo "web-assets: no sha256 for $dist.tar.gz in scripts/web-assets.sha256" >&2; exit 1; }

stamp="$out/.pin"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -f "$out/asciinema-player.js" && -f "$out/asciinema-player.css" \
      && -f "$out/LICENSE-asciinema-player" ]]; then
    exit 0
fi

dl="$root/.build/web-assets-download"
rm -rf "$dl"
mkdir -p "$dl" "$out"
trap 'rm -rf "$dl"' EXIT
# The package is published as a source distribution only; --no-binary keeps pip from building anything else.
python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: --no-build-isolation \
    -d "$dl" "$pin" >/dev/null 2>"$dl/pip.log" || python3 -m pip download --quiet --disable-pip-version-check \
    --no-deps -d "$dl" "$pin"
file="$dl/$dist.tar.gz"
[ -f "$file" ] || { echo "web-assets: pip did not produce $dist.tar.gz:" >&2; ls "$dl" >&2; exit 1; }
got="$(sha256sum "$file" | cut -d' ' -f1)"
if [ "$got" != "$want" ]; then
    echo "web-assets: $dist.tar.gz has sha256 $got, expected $want (scripts/web-assets.sha256): refusing it" >&2
    exit 1
fi
tar -xzf "$file" -C "$dl"
static="$dl/$dist/sphinxcontrib/asciinema/_static"
cp "$static/$player.js" "$out/asciinema-player.js"
cp "$static/$player.css" "$out/asciinema-player.css"
apache=/usr/share/common-licenses/Apache-2.0
{
    echo "asciinema-player 3.12.1 (files asciinema-player.js and asciinema-player.css served by ddcoterm-server)"
    echo "Copyright asciinema contributors (https://github.com/asciinema/asciinema-player)"
    echo "Licensed under the Apache License, Version 2.0, whose text follows."
    echo "Obtained unmodified from the PyPI package $pin, whose own licence is at the end of this file."
    echo
    if [ -f "$apache" ]; then cat "$apache"; else
        echo "The Apache License 2.0 text: https://www.apache.org/licenses/LICENSE-2.0"; fi
    echo
    echo "---- $pin: LICENSE ----"
    cat "$dl/$dist/LICENSE"
} > "$out/LICENSE-asciinema-player"
echo "$want" > "$stamp"
echo "web-assets: $player.js/.css and the licence notice in $out"
