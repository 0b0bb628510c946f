#!/usr/bin/env bash
# Generates the man pages and shell completions of both binaries from their clap definitions (the hidden
# `manpages` subcommand and `completions SHELL`) into target/gen/{man,completions}.
#
# Usage: scripts/gen.sh
# Env:   BIN_DIR (default target/release; built first unless SKIP_CARGO=1), GEN_DIR (default target/gen),
#        CARGO (default cargo).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin_dir="${BIN_DIR:-target/release}"
out="${GEN_DIR:-target/gen}"

if [[ "${SKIP_CARGO:-0}" != 1 && "$bin_dir" == target/release ]]; then
    # No-ops when the release binaries are up to date. Two runs: the client and the server are built apart
    # (one run would unify their features).
    "${CARGO:-cargo}" build --release --locked --bin ddcoterm --bin ddcoterm-shim
    "${CARGO:-cargo}" build --release --locked -p ddcoterm-server
fi
for bin in ddcoterm ddcoterm-server; do
    if [[ ! -x "$bin_dir/$bin" ]]; then
        echo "gen: $bin_dir/$bin is missing or not executable" >&2
        exit 1
    fi
done

rm -rf "$out/man" "$out/completions"
mkdir -p "$out/man" "$out/completions/bash" "$out/completions/zsh" "$out/completions/fish"
for bin in ddcoterm ddcoterm-server; do
    "$bin_dir/$bin" manpages --out "$out/man"
    "$bin_dir/$bin" completions bash > "$out/completions/bash/$bin"
    "$bin_dir/$bin" completions zsh > "$out/completions/zsh/_$bin"
    "$bin_dir/$bin" completions fish > "$out/completions/fish/$bin.fish"
done
echo "gen: $(ls "$out/man" | wc -l) man pages in $out/man, completions for bash, zsh and fish in $out/completions"
