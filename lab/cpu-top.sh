#!/usr/bin/env bash
# Where the VM's CPU goes while the controllers run under load:
#   lab/vm/run.sh lab/cpu-top.sh 1200 [-- <seconds, default 60>]
# lab_up (lab/run-lib.sh), the demo's load, then CPU seconds per process over the window
# (utime+stime+cutime+cstime from /proc/<pid>/stat, no exec) and the VM's idle share.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab/lib.sh
. "$HERE/lib.sh"
# shellcheck source=lab/run-lib.sh
. "$HERE/run-lib.sh"
WIN=${1:-60}
D=$LAB_OUT/cpu-top
rm -rf "$D" "$LAB_LOGS"; mkdir -p "$D" "$LAB_LOGS"
trap 'loadgen_stop 2>/dev/null || true; lab_down > /dev/null 2>&1 || true' EXIT
T0=$EPOCHREALTIME
lab_up "$D/vip" || { say "lab_up failed"; exit 1; }
say "lab up in $(el "$T0" "$EPOCHREALTIME")s"
loadgen_start "$D/requests.jsonl" $((WIN + 60)) --rate "${DEMO_RATE:-10}" --first 10 --last 34 --long 6
sleep 10
snap() { # "<pid> <ticks> <comm> <args>" per process: own CPU + reaped children's (the execs it ran); no fork
  local f p rest comm args
  for f in /proc/[0-9]*/stat; do
    { read -r rest < "$f"; } 2>/dev/null || continue
    p=${rest%% *}; rest=${rest#* (}; comm=${rest%%) *}; rest=${rest#*) }
    # shellcheck disable=SC2086
    set -- $rest
    args=(); { mapfile -d '' -t args < "/proc/$p/cmdline"; } 2>/dev/null || true
    echo "$p $(( ${12} + ${13} + ${14} + ${15} )) $comm ${args[*]:0:8}"
  done
}
read -r _ a1 a2 a3 a4 _ < /proc/stat; idle0=$a4; tot0=$((a1 + a2 + a3 + a4))
snap > "$D/s0"; t0=$EPOCHREALTIME
sleep "$WIN"
snap > "$D/s1"; t1=$EPOCHREALTIME
read -r _ a1 a2 a3 a4 _ < /proc/stat; idle1=$a4; tot1=$((a1 + a2 + a3 + a4))
say "window $(el "$t0" "$t1")s; VM idle $(( 100 * (idle1 - idle0) / (tot1 - tot0) ))% of 2 vCPUs"
say "CPU seconds per process in the window (top 25):"
awk 'NR == FNR { a[$1] = $2; next } { d = $2 - ($1 in a ? a[$1] : 0); $2 = ""; printf "%7.2f %s\n", d / 100, $0 }' "$D/s0" "$D/s1" \
  | sort -rn | head -25 | tee "$D/top.txt"
say "events per node:"; for n in lb1 lb2 er1; do echo "  $n: $(wc -l < "$SW_DIR/$n/events.log") lines, $(grep -c '"event":"error"' "$SW_DIR/$n/events.log" || true) errors"; done
