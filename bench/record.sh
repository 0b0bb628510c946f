#!/usr/bin/env bash
# Recording throughput, CPU and peak RSS: ddcoterm (release, redaction on) vs script(1) and asciinema, in one
# run, on 200 MB of log-like output and `seq 1 5000000`. Targets (DESIGN.md §11): ddcoterm >= 0.95x script's
# throughput, CPU <= 1.3x script's, peak RSS <= 10 MiB.
#
# Needs: GNU time at /usr/bin/time (Debian package `time`), script(1) (util-linux), python3; asciinema optional.
# Usage: bench/record.sh [path/to/ddcoterm]   (default target/release/ddcoterm; build it with
#        `cargo build --release`). SIZE_MB=200 RUNS=3 override the defaults. PREV_BIN=path/to/older/ddcoterm
#        adds that build as the tool `ddcoterm-prev`, measured in the same rounds (a regression check).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../target/release/ddcoterm}"
size_mb="${SIZE_MB:-200}"
runs="${RUNS:-3}"
[ -x "$bin" ] || { echo "record.sh: $bin not found; run cargo build --release" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "record.sh: /usr/bin/time missing (apt-get install -y time)" >&2; exit 1; }
command -v script >/dev/null || { echo "record.sh: script(1) missing (util-linux)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export DDCOTERM_HOME="$work/home" DDCOTERM_SYSTEM_DIR="$work/sys"
unset DDCOTERM_SESSION
mkdir -p "$DDCOTERM_HOME" "$DDCOTERM_SYSTEM_DIR"

# Log-like lines: timestamps, levels, ids, paths, e-mail addresses, numbers (what redaction has to scan).
log="$work/app.log"
python3 - "$log" "$size_mb" <<'PY'
import random, sys
path, mb = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
levels = ["INFO ", "INFO ", "INFO ", "DEBUG", "WARN ", "ERROR"]
paths = ["/api/v1/items/%d", "/api/v2/users/%d/orders", "/healthz", "/static/app.%d.js", "/login?next=/x/%d"]
lines = []
for i in range(20000):
    p = rnd.choice(paths)
    lines.append("2026-11-25T18:%02d:%02d.%03dZ %s [svc-%02d] req=%016x %s status=%d dur_ms=%d user=u%d@example.com\n" % (
        (i // 60) % 60, i % 60, rnd.randrange(1000), rnd.choice(levels), rnd.randrange(40), rnd.getrandbits(64),
        p % rnd.randrange(100000) if "%d" in p else p, rnd.choice([200, 200, 201, 204, 404, 500]),
        rnd.randrange(900), rnd.randrange(5000)))
block = "".join(lines).encode()
with open(path, "wb") as f:
    left = mb * 1024 * 1024
    while left > 0:
        f.write(block[:left])
        left -= len(block)
PY
log_bytes=$(stat -c %s "$log")
seq_bytes=$(seq 1 5000000 | wc -c)

# tool name -> command prefix; every tool runs with a PTY as its terminal (bench/ptydrain.py). `script` writes
# its typescript to /dev/null (the issue's baseline); `script-file` writes it to a file, as ddcoterm writes its
# recording, for a like-for-like reading.
declare -a tools=(ddcoterm script script-file)
if [ -n "${PREV_BIN:-}" ]; then
    [ -x "$PREV_BIN" ] || { echo "record.sh: PREV_BIN=$PREV_BIN is not an executable" >&2; exit 1; }
    tools+=(ddcoterm-prev)
fi
asciinema_label=""
if command -v asciinema >/dev/null; then
    v="$(asciinema --version 2>/dev/null | head -1)"
    case "$v" in
        *" 3."*) asciinema_label="asciinema-3" ;;
        *) asciinema_label="asciinema-2(${v##* })" ;;
    esac
    tools+=(asciinema)
fi

run_tool() { # tool workload-cmd -> "wall user sys maxrss_kb"
    local tool="$1" cmd="$2" out="$work/time.$$"
    case "$tool" in
        ddcoterm)  python3 "$here/ptydrain.py" /usr/bin/time -f "%e %U %S %M" -o "$out" "$bin" -- sh -c "$cmd" ;;
        ddcoterm-prev) python3 "$here/ptydrain.py" /usr/bin/time -f "%e %U %S %M" -o "$out" \
                       "$PREV_BIN" -- sh -c "$cmd" ;;
        script)    python3 "$here/ptydrain.py" /usr/bin/time -f "%e %U %S %M" -o "$out" script -q -c "$cmd" /dev/null ;;
        script-file) python3 "$here/ptydrain.py" /usr/bin/time -f "%e %U %S %M" -o "$out" \
                       script -q -c "$cmd" "$work/typescript" ;;
        asciinema) python3 "$here/ptydrain.py" /usr/bin/time -f "%e %U %S %M" -o "$out" \
                       asciinema rec -q --overwrite -c "$cmd" "$work/asciinema.cast" ;;
    esac >/dev/null 2>&1
    tail -1 "$out"
}

printf '%-22s %-24s %9s %9s %9s %10s %9s %9s %9s\n' workload tool wall_s cpu_s MB/s peak_rss thr/scr cpu/scr \
    thr/scr~
for workload in log seq; do
    case "$workload" in
        log) cmd="cat $log"; bytes=$log_bytes; label="log ${size_mb}MB" ;;
        seq) cmd="seq 1 5000000"; bytes=$seq_bytes; label="seq 1 5000000" ;;
    esac
    declare -A wall=() cpu=() rss=() round=() ratios=()
    # Tools take turns in each round (so they see the same background load); each keeps its fastest round,
    # and thr/scr~ is the median over rounds of script's wall time / the tool's in the same round (a slow
    # spell of the machine then weighs on both sides of the ratio).
    for _ in $(seq 1 "$runs"); do
        for tool in "${tools[@]}"; do
            read -r w u s m < <(run_tool "$tool" "$cmd")
            c=$(echo "$u + $s" | bc -l)
            round[$tool]=$w
            if [ -z "${wall[$tool]:-}" ] || [ "$(echo "$w < ${wall[$tool]}" | bc -l)" = 1 ]; then
                wall[$tool]=$w; cpu[$tool]=$c; rss[$tool]=$m
            fi
            # Every run starts from the same state: no recordings, an empty spool.
            rm -rf "$DDCOTERM_HOME/recordings" "$DDCOTERM_HOME/spool" "$work/asciinema.cast" "$work/typescript"
        done
        for tool in "${tools[@]}"; do
            ratios[$tool]="${ratios[$tool]:-} $(echo "${round[script]} / ${round[$tool]}" | bc -l)"
        done
    done
    for tool in "${tools[@]}"; do
        name=$tool; [ "$tool" = asciinema ] && name=$asciinema_label
        mbs=$(echo "$bytes / 1048576 / ${wall[$tool]}" | bc -l)
        thr=$(echo "${wall[script]} / ${wall[$tool]}" | bc -l)
        cr=$(echo "${cpu[$tool]} / ${cpu[script]}" | bc -l)
        med=$(printf '%s\n' ${ratios[$tool]} | sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}')
        printf '%-22s %-24s %9.2f %9.2f %9.1f %8.1fMiB %8.2fx %8.2fx %8.2fx\n' "$label" "$name" "${wall[$tool]}" \
            "${cpu[$tool]}" "$mbs" "$(echo "${rss[$tool]} / 1024" | bc -l)" "$thr" "$cr" "$med"
    done
    unset wall cpu rss round ratios
done
echo "targets: ddcoterm thr/scr >= 0.95x, cpu/scr <= 1.30x, peak_rss <= 10 MiB (CPU and RSS include the workload command)"
echo "thr/scr~: median of same-round ratios; script-file: script(1) writing its typescript to a file"
