#!/usr/bin/env bash
# Builds the session server image ddcoterm-server:dev from the host-built release binary (Dockerfile.server)
# on the local base image, and prints its size. Needs: scripts/base-image.sh run first, docker.
#
# Usage: scripts/server-image.sh
# Env:   IMAGE (default ddcoterm-server:dev), BASE_IMAGE (default ddcoterm-base:bookworm),
#        BINARY (default target/release/ddcoterm-server), CARGO (default cargo), SKIP_CARGO=1 to use BINARY as it is.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
image="${IMAGE:-ddcoterm-server:dev}"
base="${BASE_IMAGE:-ddcoterm-base:bookworm}"
binary="${BINARY:-target/release/ddcoterm-server}"

if ! docker image inspect "$base" >/dev/null 2>&1; then
    echo "server-image: base image $base is missing; run scripts/base-image.sh (make base-image) first" >&2
    exit 1
fi
if [[ "${SKIP_CARGO:-0}" != 1 && "$binary" == target/release/ddcoterm-server ]]; then
    # A no-op when the release binary is up to date.
    "${CARGO:-cargo}" build --release --locked -p ddcoterm-server
fi
if [[ ! -x "$binary" ]]; then
    echo "server-image: $binary is missing or not executable" >&2
    exit 1
fi

version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' server/Cargo.toml | head -1)"
revision="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
start=$(date +%s)
docker build --quiet -f Dockerfile.server \
    --build-arg BASE_IMAGE="$base" \
    --build-arg BINARY="$binary" \
    --build-arg VERSION="$version" \
    --build-arg REVISION="$revision" \
    --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    -t "$image" . >/dev/null
size=$(docker image inspect "$image" --format '{{.Size}}')
bin_size=$(stat -c %s "$binary")
echo "server-image: built $image in $(( $(date +%s) - start ))s: image size $(( size / 1024 / 1024 )) MiB ($size bytes), binary $(( bin_size / 1024 / 1024 )) MiB"
