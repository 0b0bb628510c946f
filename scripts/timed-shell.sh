#!/bin/bash
# make's SHELL when CI_TIMES is set (.ci/run sets it): runs each recipe line with bash, as without it, and
# appends the line's wall time and its first words to $CI_TIMES, so a CI log says where the minutes went
# (issue #19: every stage prints its wall time) whatever targets are added later. A recursive make line's time
# includes the lines it ran, which are listed after it.
start=$(date +%s%N)
/bin/bash "$@"
rc=$?
if [ -n "${CI_TIMES:-}" ]; then
    cmd=${*: -1}
    cmd=$(printf '%s' "$cmd" | tr '\n\t' '  ' | sed 's/  */ /g' | cut -c1-110)
    printf '%7.1fs  %s%s\n' "$(( ($(date +%s%N) - start) / 1000000 ))e-3" "$cmd" "$([ $rc -ne 0 ] && echo "  (exit $rc)")" >>"$CI_TIMES"
fi
exit $rc
