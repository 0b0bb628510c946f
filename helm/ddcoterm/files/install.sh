#!/bin/sh
# Installs ddcoterm's organisation layer (and, on nodes, the binary, shims and profile snippet) from the
# chart's ConfigMaps. Used by the bastion's init container and by the node installer DaemonSet.
# Idempotent: a file is replaced (atomically, by rename) only when its content or mode differs.
#
# Environment:
#   SRC_CONFIG    dir of the config ConfigMap (config.yaml, team.<name>.yaml, ddcoterm.sh)   [required]
#   SRC_BUNDLES   dir of the bundles ConfigMap (<name>.yaml, <name>.yaml.sig)                [required]
#   DEST_SYSTEM   where /etc/ddcoterm goes                                                   [required]
#   CONFIG_SOURCE the file of SRC_CONFIG installed as config.yaml (default config.yaml; the
#                 bastion pod in agent mode takes bastion-config.yaml: the layer plus agent:)
#   DEST_BIN      copy /usr/local/bin/ddcoterm and the static shim binary ddcoterm-shim here (nodes)
#   DEST_SHIMS    create shims here, for the commands in SHIMS (space-separated)
#   SHIM_TARGET   what the shims point at (default /usr/local/bin/ddcoterm-shim, the static shim binary,
#                 which hands what it does not decide over to the ddcoterm beside it)
#   DEST_PROFILE  install ddcoterm.sh (PATH snippet) here (nodes)
#   WRITE_KEYS=1  write DD_API_KEY/DD_APP_KEY/DD_SITE to DEST_SYSTEM/datadog.env, mode 0600
#   LOOP=N        repeat every N seconds (DaemonSet); otherwise run once
#   WARM_BIN      the ddcoterm that fills DEST_SYSTEM/cache for SHIMS (default /usr/local/bin/ddcoterm;
#                 skipped when absent)
set -eu
umask 022

: "${SRC_CONFIG:?}" "${SRC_BUNDLES:?}" "${DEST_SYSTEM:?}"
SHIM_TARGET="${SHIM_TARGET:-/usr/local/bin/ddcoterm-shim}"
# Shims pointing at either binary of the target's directory are ours (relinked or removed).
shim_dir_of_target="$(dirname "$SHIM_TARGET")"

log() { echo "ddcoterm-install: $*"; }

# put SRC DEST MODE: replace DEST with SRC's bytes when they differ.
put() {
    if [ -f "$2" ] && [ ! -L "$2" ] && cmp -s "$1" "$2" && [ "$(stat -c %a "$2")" = "$3" ]; then
        return 0
    fi
    tmp="$(dirname "$2")/.$(basename "$2").tmp.$$"
    cp "$1" "$tmp"
    chmod "$3" "$tmp"
    mv -f "$tmp" "$2"
    log "installed $2 (mode $3)"
}

# prune DIR KEEP_LIST PATTERN: remove files matching PATTERN in DIR that are not in KEEP_LIST.
prune() {
    for f in "$1"/$3; do
        [ -e "$f" ] || [ -L "$f" ] || continue
        case " $2 " in *" $(basename "$f") "*) ;; *) rm -f "$f"; log "removed $f" ;; esac
    done
}

sync_once() {
    install -d -m 0755 "$DEST_SYSTEM" "$DEST_SYSTEM/bundles" "$DEST_SYSTEM/teams"
    put "$SRC_CONFIG/${CONFIG_SOURCE:-config.yaml}" "$DEST_SYSTEM/config.yaml" 644

    teams=""
    for f in "$SRC_CONFIG"/team.*.yaml; do
        [ -e "$f" ] || continue
        name="${f##*/team.}"
        put "$f" "$DEST_SYSTEM/teams/$name" 644
        teams="$teams $name"
    done
    prune "$DEST_SYSTEM/teams" "$teams" '*.yaml'

    bundles=""
    for f in "$SRC_BUNDLES"/*.yaml "$SRC_BUNDLES"/*.yaml.sig; do
        [ -e "$f" ] || continue
        put "$f" "$DEST_SYSTEM/bundles/${f##*/}" 644
        bundles="$bundles ${f##*/}"
    done
    prune "$DEST_SYSTEM/bundles" "$bundles" '*.yaml*'

    if [ "${WRITE_KEYS:-0}" = 1 ] && [ -n "${DD_API_KEY:-}" ]; then
        keys="$(mktemp)"
        chmod 600 "$keys"
        {
            echo "DD_API_KEY=$DD_API_KEY"
            [ -z "${DD_APP_KEY:-}" ] || echo "DD_APP_KEY=$DD_APP_KEY"
            [ -z "${DD_SITE:-}" ] || echo "DD_SITE=$DD_SITE"
        } > "$keys"
        put "$keys" "$DEST_SYSTEM/datadog.env" 600
        rm -f "$keys"
    fi

    if [ -n "${DEST_BIN:-}" ]; then
        install -d -m 0755 "$DEST_BIN"
        put /usr/local/bin/ddcoterm "$DEST_BIN/ddcoterm" 755
        put /usr/local/bin/ddcoterm-shim "$DEST_BIN/ddcoterm-shim" 755
    fi

    if [ -n "${DEST_SHIMS:-}" ]; then
        install -d -m 0755 "$DEST_SHIMS"
        for cmd in ${SHIMS:-}; do
            if [ "$(readlink "$DEST_SHIMS/$cmd" 2>/dev/null || true)" != "$SHIM_TARGET" ]; then
                ln -sfn "$SHIM_TARGET" "$DEST_SHIMS/$cmd"
                log "shim $DEST_SHIMS/$cmd -> $SHIM_TARGET"
            fi
        done
        # Remove our own shims for commands no longer listed; leave anything else alone.
        for f in "$DEST_SHIMS"/*; do
            [ -L "$f" ] || continue
            case "$(readlink "$f")" in
                "$shim_dir_of_target/ddcoterm" | "$shim_dir_of_target/ddcoterm-shim") ;;
                *) continue ;;
            esac
            case " ${SHIMS:-} " in *" ${f##*/} "*) ;; *) rm -f "$f"; log "removed shim $f" ;; esac
        done
    fi

    if [ -n "${DEST_PROFILE:-}" ]; then
        install -d -m 0755 "$DEST_PROFILE"
        put "$SRC_CONFIG/ddcoterm.sh" "$DEST_PROFILE/ddcoterm.sh" 644
    fi
}

# Decides once for each shimmed command with this image's ddcoterm, so the organisation's cache
# (DEST_SYSTEM/cache: parsed layers, compiled Luau) is filled here, by the one who may write the layer, and
# the users' first calls take the fast path (the main container mounts the layer read-only: nothing there
# can fill it). Entries are named by the hash of what they were derived from, so the path the layer is
# mounted at later does not matter. A failure is logged, never fatal: the shims then compute the same
# decision from the files, without the saving.
warm_cache() {
    bin="${WARM_BIN:-/usr/local/bin/ddcoterm}"
    [ -x "$bin" ] || return 0
    for cmd in ${SHIMS:-}; do
        if ! out=$(HOME=/nonexistent DDCOTERM_SYSTEM_DIR="$DEST_SYSTEM" "$bin" check --format json -- "$cmd" 2>&1); then
            log "warning: the policy cache for $cmd was not warmed: $out"
        fi
    done
}

sync_once
warm_cache
log "in sync"
if [ -n "${LOOP:-}" ]; then
    trap 'exit 0' TERM INT
    while :; do
        sleep "$LOOP" &
        wait $! || true
        sync_once
        warm_cache
    done
fi
