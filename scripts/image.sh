#!/usr/bin/env bash
# Builds the ddcoterm runtime image from the host-built release binary (`docker build --target host`) on the
# local base image, and prints its size. Needs: scripts/base-image.sh run first, docker.
#
# Usage: scripts/image.sh
# Env:   IMAGE (default ddcoterm:dev), BASE_IMAGE (default ddcoterm-base:bookworm),
#        BINARY (default target/release/ddcoterm, relative to the repository; ddcoterm-shim beside it goes in
#        too), CARGO (default cargo),
#        SKIP_CARGO=1 to use BINARY as it is.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
image="${IMAGE:-ddcoterm:dev}"
base="${BASE_IMAGE:-ddcoterm-base:bookworm}"
binary="${BINARY:-target/release/ddcoterm}"
# The static shim binary built with it, installed beside it.
shim_binary="$(dirname "$binary")/ddcoterm-shim"

if ! docker image inspect "$base" >/dev/null 2>&1; then
    echo "image: base image $base is missing; run scripts/base-image.sh (make base-image) first" >&2
    exit 1
fi
if [[ "${SKIP_CARGO:-0}" != 1 && "$binary" == target/release/ddcoterm ]]; then
    # A no-op when the release binary is up to date.
    "${CARGO:-cargo}" build --release --locked --bin ddcoterm --bin ddcoterm-shim
fi
for b in "$binary" "$shim_binary"; do
    if [[ ! -x "$b" ]]; then
        echo "image: $b is missing or not executable" >&2
        exit 1
    fi
done

version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)"
revision="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
start=$(date +%s)
docker build --quiet --target host \
    --build-arg BASE_IMAGE="$base" \
    --build-arg BINARY="$binary" \
    --build-arg SHIM_BINARY="$shim_binary" \
    --build-arg VERSION="$version" \
    --build-arg REVISION="$revision" \
    --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    -t "$image" . >/dev/null
size=$(docker image inspect "$image" --format '{{.Size}}')
bin_size=$(stat -c %s "$binary")
echo "image: built $image in $(( $(date +%s) - start ))s: image size $(( size / 1024 / 1024 )) MiB ($size bytes), binary $(( bin_size / 1024 / 1024 )) MiB"
