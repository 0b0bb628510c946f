#!/usr/bin/env bash
# Builds ddcoterm-systemd:bookworm (Dockerfile.systemd): the local base image plus Debian's systemd,
# fetched with the machine's Debian sources (as scripts/base-image.sh does; no registry). Cached: skipped
# while the tag exists and was built from the current base image (`--force` rebuilds).
#
# Running it (what tests/fleet_docs.rs does): systemd as PID 1 needs a writable /run and /run/lock (tmpfs)
# and the cgroup hierarchy mounted. Found on the CI host (Docker 20.10, cgroupfs driver, `docker info`: "Cgroup
# Version: 1", the engine itself unprivileged: `--privileged` fails with "unable to apply caps"): `--tmpfs /run
# --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:ro` is enough, no extra capability; systemd 252 runs the
# hardened units (namespacing it is not allowed to set up, such as ProtectHostname, is skipped with a notice).
# On a cgroup v2 host (not available here, so untested) systemd needs a writable cgroup subtree of its own:
# `--cgroupns=private --tmpfs /run --tmpfs /run/lock` with Docker >= 20.10 (and `--cgroup-parent`/podman
# where the engine delegates none). `--run-flags` prints the flags for this host's cgroup version.
#
# Usage: scripts/systemd-image.sh [--force] | scripts/systemd-image.sh --run-flags
# Env:   IMAGE (default ddcoterm-systemd:bookworm), BASE_IMAGE (default ddcoterm-base:bookworm),
#        BASE_SOURCES (default /etc/apt/sources.list.d/debian.sources, else /etc/apt/sources.list)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
image="${IMAGE:-ddcoterm-systemd:bookworm}"
base="${BASE_IMAGE:-ddcoterm-base:bookworm}"

if [[ "${1:-}" == "--run-flags" ]]; then
    if [[ "$(docker info --format '{{.CgroupVersion}}')" == 2 ]]; then
        echo "--cgroupns=private --tmpfs /run --tmpfs /run/lock"
    else
        echo "--tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:ro"
    fi
    exit 0
fi
force=0
[[ "${1:-}" == "--force" ]] && force=1

if ! docker image inspect "$base" >/dev/null 2>&1; then
    echo "systemd-image: base image $base is missing; run scripts/base-image.sh (make base-image) first" >&2
    exit 1
fi
base_id="$(docker image inspect "$base" --format '{{.Id}}')"
if [[ $force -eq 0 ]] && docker image inspect "$image" >/dev/null 2>&1; then
    have="$(docker image inspect "$image" --format '{{index .Config.Labels "ddcoterm.systemd.base"}}')"
    if [[ "$have" == "$base_id" ]]; then
        echo "systemd-image: $image exists (cached; --force rebuilds)"
        exit 0
    fi
fi
sources="${BASE_SOURCES:-}"
if [[ -z "$sources" ]]; then
    for s in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        [[ -s "$s" ]] && { sources=$s; break; }
    done
fi
if [[ -z "$sources" ]]; then
    echo "systemd-image: no Debian sources found (set BASE_SOURCES)" >&2
    exit 1
fi
if [[ "$sources" != *.sources ]]; then
    echo "systemd-image: $sources is a one-line-style list; set BASE_SOURCES to a deb822 .sources file" >&2
    exit 1
fi
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp Dockerfile.systemd "$ctx/Dockerfile"
cp "$sources" "$ctx/debian.sources"
start=$(date +%s)
docker build --quiet --build-arg BASE_IMAGE="$base" --label "ddcoterm.systemd.base=$base_id" -t "$image" "$ctx" >/dev/null
echo "systemd-image: built $image in $(($(date +%s) - start))s, $(($(docker image inspect "$image" --format '{{.Size}}') / 1048576)) MiB"
