#!/usr/bin/env bash
# Shim builds compared call by call: bench/shim.sh's scenario (20 non-matching organisation rules, a 5-context
# kubeconfig), each build installed as its own shim, and the direct exec, called in turn (A B C, then C B A, ...)
# so that a slow moment of the machine falls on every build alike. On a noisy VM, hyperfine's sequential runs
# could not tell builds 0.1 ms apart; interleaved, the paired difference is stable to about 0.02 ms.
# Usage: bash bench/shim-ab.sh BASELINE_BIN OTHER_BIN... (CALLS=N per build, default 3000). A BIN named
# ddcoterm-shim is installed with the ddcoterm beside it, as `make install` and the packages do.
# Prints each build's median added over the direct exec and its median paired difference from the baseline.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: bash bench/shim-ab.sh BASELINE_BIN OTHER_BIN..." >&2; exit 64; }
bins=()
for b in "$@"; do
  [ -x "$b" ] || { echo "shim-ab.sh: $b is not an executable" >&2; exit 66; }
  bins+=("$(realpath "$b")") # before the cd below, so that paths relative to the caller's directory work
done
set -- "${bins[@]}"
cd "$(dirname "$0")/.."
unset DDCOTERM_BIN
work=$(mktemp -d)
SCENARIO=
trap 'rm -rf "$work" ${SCENARIO:+"$SCENARIO"}' EXIT
SETUP_ONLY="$work/env" DDCOTERM_BIN="$1" bash bench/shim.sh
# shellcheck disable=SC1091
source "$work/env"
cat > "$work/ab.c" <<'C'
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static double median(double *x, int n) { qsort(x, n, sizeof *x, cmp); return x[n / 2]; }
/* ab CALLS PROGRAM PATH [PROGRAM PATH]...: variant 0 is the direct exec; each call gets PATH=PATH. */
int main(int argc, char **argv) {
  int n = atoi(argv[1]), k = (argc - 2) / 2, warm = 20;
  char *args[] = {"kubectl", "get", "pods", "-n", "default", NULL};
  double *t = calloc((size_t)n * k, sizeof *t), *x = malloc(n * sizeof *x);
  char **env = calloc(256, sizeof *env); int e = 0;
  for (char **p = environ; *p && e < 250; p++) if (strncmp(*p, "PATH=", 5)) env[e++] = *p;
  for (int i = 0; i < n + warm; i++)
    for (int j = 0; j < k; j++) {
      int v = (i % 2) ? k - 1 - j : j;
      char path[4096]; snprintf(path, sizeof path, "PATH=%s", argv[3 + 2 * v]); env[e] = path; env[e + 1] = NULL;
      pid_t pid; int st; double a = now();
      if (posix_spawn(&pid, argv[2 + 2 * v], NULL, NULL, args, env)) { perror("posix_spawn"); return 1; }
      waitpid(pid, &st, 0);
      if (!WIFEXITED(st) || WEXITSTATUS(st)) { fprintf(stderr, "variant %d exited %d\n", v, st); return 1; }
      if (i >= warm) t[(size_t)(i - warm) * k + v] = now() - a;
    }
  for (int j = 0; j < k; j++) {
    for (int i = 0; i < n; i++) x[i] = t[(size_t)i * k + j] - t[(size_t)i * k];
    double added = median(x, n);
    for (int i = 0; i < n; i++) x[i] = t[(size_t)i * k + j] - t[(size_t)i * k + (j > 1 ? 1 : j)];
    printf("%d %.4f %.4f\n", j, added, median(x, n));
  }
  return 0;
}
C
cc -O2 -o "$work/ab" "$work/ab.c"
spec=("$SCENARIO/real/kubectl" "$SCENARIO/real")
i=0
for b in "$@"; do
  mkdir -p "$work/v$i"
  # Installed under its own name: a static ddcoterm-shim gets the ddcoterm built beside it too, to hand over to.
  name=$(basename "$b")
  [ "$name" = ddcoterm-shim ] && [ -x "$(dirname "$b")/ddcoterm" ] && cp "$(dirname "$b")/ddcoterm" "$work/v$i/ddcoterm"
  [ "$name" = ddcoterm-shim ] || name=ddcoterm
  cp "$b" "$work/v$i/$name"
  sync "$work/v$i/$name"
  dd if="$work/v$i/$name" iflag=nocache count=0 2>/dev/null || true
  ln -s "$work/v$i/$name" "$work/v$i/kubectl"
  spec+=("$work/v$i/kubectl" "$work/v$i:$SCENARIO/real")
  i=$((i + 1))
done
"$work/ab" "${CALLS:-3000}" "${spec[@]}" | while read -r j added diff; do
  [ "$j" = 0 ] && continue
  b=${*:$j:1}
  if [ "$j" = 1 ]; then
    printf 'shim-ab: %s (baseline): added median %.3f ms over the direct exec\n' "$b" "$added"
  else
    printf 'shim-ab: %s: added median %.3f ms, paired difference from the baseline %+.3f ms\n' "$b" "$added" "$diff"
  fi
done
