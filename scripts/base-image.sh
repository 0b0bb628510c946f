#!/usr/bin/env bash
# Builds the local Debian base image ddcoterm-base:bookworm without a registry: mmdebstrap from the
# machine's configured Debian sources, piped into `docker import`. Cached: skipped when the tag exists and
# was built from the same suite and package list (the image carries them in a label, so a changed list
# rebuilds it on every machine that had the old one).
#
# Usage: scripts/base-image.sh [--force]
# Env:   BASE_TAG (default ddcoterm-base:bookworm), BASE_SUITE (default bookworm),
#        BASE_SOURCES (default /etc/apt/sources.list.d/debian.sources, else /etc/apt/sources.list)
set -euo pipefail

tag="${BASE_TAG:-ddcoterm-base:bookworm}"
suite="${BASE_SUITE:-bookworm}"
force=0
[[ "${1:-}" == "--force" ]] && force=1

# What the images and the bastion tests need: python3 (Ansible targets), ca-certificates (TLS to Datadog),
# bash (login shells, profile.d), sudo (Ansible become / run commands as a bastion user), procps (ps for
# debugging in the debug shell), less (pagers in a debug session), openssh-server and openssh-client (the
# bastion's sshd with `ForceCommand ddcoterm ssh-login`, Helm's sshd bastion, the SSH container tests),
# rsync and git (their server sides pass through ssh-login byte-exact; the tests transfer with them).
packages="python3,ca-certificates,bash,sudo,procps,less,openssh-server,openssh-client,rsync,git"
# The cache key: an image built from another suite or package list is rebuilt.
key="$suite:$packages"

if ! command -v docker >/dev/null; then
    echo "base-image: docker is not installed" >&2
    exit 1
fi
if [[ $force -eq 0 ]] && docker image inspect "$tag" >/dev/null 2>&1; then
    have="$(docker image inspect "$tag" --format '{{index .Config.Labels "ddcoterm.base.key"}}' 2>/dev/null || true)"
    if [[ "$have" == "$key" ]]; then
        echo "base-image: $tag exists (cached; --force rebuilds)"
        exit 0
    fi
    echo "base-image: $tag was built from another package list (${have:-none}); rebuilding"
fi
if ! command -v mmdebstrap >/dev/null; then
    echo "base-image: mmdebstrap is missing; installing it (apt-get install -y mmdebstrap)" >&2
    apt-get update -qq && apt-get install -y -qq mmdebstrap
fi

sources="${BASE_SOURCES:-}"
if [[ -z "$sources" ]]; then
    if [[ -s /etc/apt/sources.list.d/debian.sources ]]; then
        sources=/etc/apt/sources.list.d/debian.sources
    elif [[ -s /etc/apt/sources.list ]]; then
        sources=/etc/apt/sources.list
    else
        echo "base-image: no Debian sources found (set BASE_SOURCES)" >&2
        exit 1
    fi
fi

start=$(date +%s)
echo "base-image: mmdebstrap --variant=minbase $suite (+ $packages) from $sources -> $tag"
# The sources file is given on stdin as the mirror list; the tarball goes to stdout into docker import.
mmdebstrap --quiet --variant=minbase --include="$packages" \
    --aptopt='Acquire::Retries "3"' \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
    --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
    "$suite" - < "$sources" \
    | docker import \
        --change 'CMD ["/bin/bash"]' \
        --change 'ENV LANG=C.UTF-8' \
        --change "LABEL ddcoterm.base.key=\"$key\"" \
        --message "mmdebstrap minbase $suite" \
        - "$tag" >/dev/null
size=$(docker image inspect "$tag" --format '{{.Size}}')
echo "base-image: built $tag in $(( $(date +%s) - start ))s, $(( size / 1024 / 1024 )) MiB"
