#!/usr/bin/env bash
# State-synced firewalls (issue 8, part 4), inside the VM:
#   lab/vm/run.sh lab/statesync.sh 1500 [-- <variant...>]     (default: all four, in this order)
# One sandwich (lab_up with the sync link `topo.sh --sync-link`, `policy.downAction: remove`, one etcd
# member unless LAB_ETCD_MEMBERS says otherwise), conntrackd in fw1 and fw2 (lab/conntrackd/: FT-FW
# over UDP on brsync, states injected straight into the other firewall's kernel table), then per
# variant: LAB_SS_LONG_SRC x LAB_SS_LONG_PER_SRC long-lived keep-alive connections (default
# 20 x 12 = 240, one request per LAB_SS_LONG_INTERVAL s (20) each; a request may wait
# LAB_SS_LONG_TIMEOUT s, default 300, so it rides out the failover on TCP retransmissions, whose
# back-off reaches 120 s) + LAB_SS_RATE new requests/s -> fw1 black-holed (FORWARD DROP) -> wait
# until fw1 is out of IPVS on both LBs (and er1's table 101 via fw2 when re-pointing) -> load until
# every established connection has answered a request started after that, at most LAB_SS_AFTER_S s
# (default 135; LAB_SS_AFTER_OTHER_S, default 60, for the variants without sync or re-pointing,
# whose connections on fw1 cannot recover) -> measure (lab/statesync.py) -> repair, back to normal.
# The summary is rewritten after each variant. (LAB_* variables reach the VM: lab/vm/run.sh.)
# Variants:
#   sync-repoint     conntrackd on; the controllers as configured: fw1's IPVS real server removed
#                    (its connections rescheduled to fw2 at their next packet: expire_nodest_conn,
#                    sloppy_tcp), er1's table 101 re-pointed via fw2 and its mark-1 conntrack
#                    entries flushed. Goal: >= 99 % of the established connections kept.
#   nosync-repoint   the same with conntrackd stopped before the connections open: fw2 has no state.
#   sync-norepoint   conntrackd on, er1's controller stopped before the connections open (SIGTERM:
#                    it leaves the data path as it is): table 101 stays via fw1, as with the seed's
#                    egress router and no controller; the LBs still move the flows to fw2.
#   sync-repoint-noflush  sync-repoint with er1's controller (re)started with egress.flushConntrack
#                    false: replies of moved flows keep mark 1 and follow table 101 (docs/state-sync.md).
# Writes $LAB_OUT/statesync/{results.json,summary.md} and per variant <name>/{requests.jsonl,
# markers.jsonl,ipvs-conn-before.txt,fw2-conntrack-before.txt,variant.json}. Exit status 1 if
# sync-repoint (when run) misses the goal or a variant's set-up fails, 2 for usage errors.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LAB_SYNC_LINK=1                                  # topo.sh: brsync, fw1/fw2 eth2
export LAB_HTTPD_IDLE_S=${LAB_HTTPD_IDLE_S:-300}        # the server waits out a stalled keep-alive connection
LAB_ETCD_MEMBERS=${LAB_ETCD_MEMBERS:-1}                 # etcd is not the subject here; one member is lighter on the VM
# shellcheck source=lab/lib.sh
. "$HERE/lib.sh"
# shellcheck source=lab/run-lib.sh
. "$HERE/run-lib.sh"
ALL=(sync-repoint nosync-repoint sync-norepoint sync-repoint-noflush)
usage() { echo "usage: lab/statesync.sh [variant...]   (variants: ${ALL[*]}; default: all)" >&2; exit 2; }
names=()
for a in "$@"; do
  [[ " ${ALL[*]} " == *" $a "* ]] || { echo "statesync: unknown variant \"$a\"" >&2; usage; }
  names+=("$a")
done
[ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
[ -d /proc/sys/net/ipv4/vs ] || { echo "statesync: no IPVS here: run me with lab/vm/run.sh lab/statesync.sh" >&2; exit 2; }
command -v conntrackd > /dev/null || { echo "statesync: conntrackd missing (apt-get install conntrackd; scripts/setup)" >&2; exit 2; }

LONG_SRC=${LAB_SS_LONG_SRC:-20} LONG_PER_SRC=${LAB_SS_LONG_PER_SRC:-12} LONG_INTERVAL=${LAB_SS_LONG_INTERVAL:-20}
LONG_TIMEOUT=${LAB_SS_LONG_TIMEOUT:-300} RATE=${LAB_SS_RATE:-2} AFTER_S=${LAB_SS_AFTER_S:-135} GOAL=${LAB_SS_GOAL:-0.99}
AFTER_OTHER_S=${LAB_SS_AFTER_OTHER_S:-60}
LONG_N=$((LONG_SRC * LONG_PER_SRC))
# New requests from 203.0.113.10-19, long-lived ones from .20 on (sh spreads the sources over fw1 and fw2).
[ $((20 + LONG_SRC - 1)) -le 40 ] || { echo "statesync: LAB_SS_LONG_SRC must be <= 21 (client addresses .20-.40)" >&2; exit 2; }

S=$LAB_OUT/statesync
T0=$EPOCHREALTIME
rm -rf "$S" "$LAB_LOGS"; mkdir -p "$S" "$LAB_LOGS"
trap 'loadgen_stop 2>/dev/null || true; ctd_stop 2>/dev/null || true; lab_down > /dev/null 2>&1 || true' EXIT

# The lab config with downAction remove (quiesce keeps fw1's IPVS connections bound to it); a copy
# with egress.flushConntrack: false for er1 in sync-repoint-noflush (only egress nodes read it).
CFG_NOFLUSH=$LAB_RUN/config-noflush.yaml
ER1_FLUSH=1   # the config er1's controller runs with
eval "lab_write_config() $(declare -f write_config | tail -n +2)"
write_config() {
  lab_write_config || return 1
  sed -i 's/^  downAction: quiesce$/  downAction: remove/' "$CFG"
  grep -q '^  downAction: remove$' "$CFG" || { echo "statesync: could not set downAction: remove in $CFG" >&2; return 1; }
  sed 's/^egress:$/egress:\n  flushConntrack: false/' "$CFG" > "$CFG_NOFLUSH"
  grep -q '^  flushConntrack: false$' "$CFG_NOFLUSH" || { echo "statesync: could not set flushConntrack: false in $CFG_NOFLUSH" >&2; return 1; }
}

# conntrackd in fw1 and fw2: own socket, lock and config under $LAB_RUN, logs in $S.
ctd_dir() { echo "$LAB_RUN/conntrackd/$1"; }
ctd_start() {
  local fw i d
  for fw in fw1 fw2; do
    i=${fw#fw}; d=$(ctd_dir "$fw"); mkdir -p "$d"
    "$LAB_REPO/lab/conntrackd/render.sh" --local "10.8.0.1$i" --peer "10.8.0.1$((3 - i))" --iface eth2 --run "$d" \
      --log "$S/conntrackd-$fw.log" --ignore "10.1.0.1$i 10.2.0.1$i" > "$d/conntrackd.conf"
    ip netns exec "$fw" setsid conntrackd -C "$d/conntrackd.conf" >> "$LAB_LOGS/conntrackd-$fw.out" 2>&1 < /dev/null &
    echo $! > "$d/pid"
  done
  for fw in fw1 fw2; do
    wait_until 60 "conntrackd in $fw answers" eval "ip netns exec $fw conntrackd -C $(ctd_dir "$fw")/conntrackd.conf -s > /dev/null 2>&1" > /dev/null || return 1
  done
}
ctd_stop() {
  local fw p i
  for fw in fw1 fw2; do
    p=$(cat "$(ctd_dir "$fw")/pid" 2>/dev/null) || continue
    kill "$p" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$p" 2>/dev/null || true
    rm -f "$(ctd_dir "$fw")/pid"
  done
}
ctd_running() { local p; p=$(cat "$(ctd_dir fw1)/pid" 2>/dev/null) && kill -0 "$p" 2>/dev/null; }
# established <fw>: TCP flows to the server in ESTABLISHED state in that firewall's kernel table.
established() { ip netns exec "$1" conntrack -L -p tcp --dport 80 --state ESTABLISHED 2>/dev/null | grep -c 'dst=198.51.100.10' || true; }

say "statesync: ${names[*]}; kernel $(uname -r), qemu TCG; $LONG_N long-lived connections, $RATE new requests/s"
lab_up "$S/watch" || { say "FAIL: the controllers did not bring the sandwich up"; exit 1; }
ctd_start || { say "FAIL: conntrackd did not start (logs: $LAB_LOGS/conntrackd-*.out)"; exit 1; }
say "conntrackd runs in fw1 and fw2 (sync link brsync 10.8.0.0/24)"
# shellcheck disable=SC2317 # called through wait_until
normal() { both_weights_are 100 100 && vip_on lb1 lb2 && table_is 101 10.2.0.11 && table_is 102 10.2.0.12; }
failed_setup=()

run_variant() {
  local name=$1 sync=$2 repoint=$3 flush=${4:-1} d t_fault t_acted s fw1_before fw2_before rec window=$AFTER_S
  d=$S/$name; mkdir -p "$d"; rec=$d/requests.jsonl
  [ "$sync" = 1 ] && [ "$repoint" = 1 ] || window=$AFTER_OTHER_S
  say "== $name: conntrackd $([ "$sync" = 1 ] && echo on || echo off), er1 table re-pointing $([ "$repoint" = 1 ] && echo "on (flushConntrack $([ "$flush" = 1 ] && echo true || echo false))" || echo off)"
  wait_until 300 "the sandwich is back to normal" normal > /dev/null || { failed_setup+=("$name: not normal before"); return 1; }
  if [ "$sync" = 1 ] && ! ctd_running; then ctd_start || { failed_setup+=("$name: conntrackd"); return 1; }; fi
  if [ "$sync" = 0 ]; then ctd_stop; say "conntrackd stopped in fw1 and fw2"; fi
  if [ "$repoint" = 0 ]; then node_stop er1 60; say "er1's controller stopped (data path left as it is: table 101 $(table_via 101))"; fi
  if [ "$repoint" = 1 ] && node_alive er1 && [ "$ER1_FLUSH" != "$flush" ]; then node_stop er1 60; fi
  if [ "$repoint" = 1 ] && ! node_alive er1; then
    if [ "$flush" = 1 ]; then node_start er1; else CFG=$CFG_NOFLUSH node_start er1; fi
    ER1_FLUSH=$flush
    say "er1's controller started (flushConntrack $([ "$flush" = 1 ] && echo true || echo false))"
    wait_until 300 "er1 back, normal" normal > /dev/null || { failed_setup+=("$name: er1 did not come back"); return 1; }
  fi
  loadgen_start "$rec" $((LONG_INTERVAL * 3 + 600 + AFTER_S)) --rate "$RATE" --first 10 --last 19 --timeout 3 \
    --long "$LONG_SRC" --long-per-src "$LONG_PER_SRC" --long-interval "$LONG_INTERVAL" --long-ramp "$LONG_INTERVAL" --long-timeout "$LONG_TIMEOUT"
  s=$(POLL=2 wait_until 240 "all $LONG_N long-lived connections answered" loadgen_long_up "$rec" "$LONG_N") \
    || { failed_setup+=("$name: long-lived connections did not open"); loadgen_stop; return 1; }
  say "$LONG_N long-lived connections open (${s}s)"
  sleep 5   # every connection has completed a request; its state went to fw2 when it was opened
  ip netns exec fw2 conntrack -L -p tcp --dport 80 > "$d/fw2-conntrack-before.txt" 2>/dev/null || true
  ip netns exec lb1 cat /proc/net/ip_vs_conn > "$d/ipvs-conn-before.txt"
  fw1_before=$(established fw1); fw2_before=$(grep -c 'ESTABLISHED.*dst=198.51.100.10' "$d/fw2-conntrack-before.txt" || true)
  say "ESTABLISHED flows to the server: fw1 $fw1_before, fw2 $fw2_before; lb1 directs $(grep -c '0A01000B' "$d/ipvs-conn-before.txt" || true) to fw1, $(grep -c '0A01000C' "$d/ipvs-conn-before.txt" || true) to fw2"
  t_fault=$EPOCHREALTIME; mark "$d/markers.jsonl" "phase:$name" "fw1 black-holed"; fw_blackhole fw1
  s=$(wait_until 180 "fw1 out of IPVS on both LBs" eval 'weights_are lb1 - 100 && weights_are lb2 - 100') \
    || { failed_setup+=("$name: fw1 not removed from IPVS"); }
  say "fw1 out of IPVS on both LBs after ${s:-?}s"
  if [ "$repoint" = 1 ]; then
    s=$(wait_until 180 "er1 table 101 via fw2" table_is 101 10.2.0.12) || failed_setup+=("$name: table 101 not re-pointed")
    say "er1 table 101 via fw2 after $(el "$t_fault" "$EPOCHREALTIME")s"
  fi
  t_acted=$EPOCHREALTIME; mark "$d/markers.jsonl" "acted" "controller done"
  measure() {
    /usr/bin/python3 "$LAB_REPO/lab/statesync.py" variant --name "$name" --records "$rec" --ipvs-conn "$d/ipvs-conn-before.txt" \
      --fw1 10.1.0.11 --fault "$t_fault" --acted "$t_acted" --sync "$sync" --repoint "$repoint" \
      --fw2-conntrack "$d/fw2-conntrack-before.txt" --out "$d/variant.json" \
      --extra "{\"fw1States\": $fw1_before, \"fw2States\": $fw2_before, \"flushConntrack\": $([ "$flush" = 1 ] && echo true || echo false)}" > /dev/null
  }
  say "load until every established connection has answered again (at most ${window}s)"
  while :; do
    sleep 10
    measure && grep -q '"stalled": 0,' "$d/variant.json" && break
    (( ${EPOCHREALTIME%.*} - ${t_acted%.*} < window )) || break
  done
  loadgen_stop; mark "$d/markers.jsonl" "end" ""
  measure
  say "$(/usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("kept %(kept)d / %(established)d established (on fw1: %(keptOnFw1)d / %(onFw1)d), lost %(lost)d, stalled %(stalled)d; new requests failed %(newFailed)d / %(newRequests)d, heal %(newHealSeconds)s s" % r)' "$d/variant.json")"
  say "repair: fw1 forwards again"
  fw_unblackhole fw1
  # (er1's controller, stopped by sync-norepoint, is started again only if another variant follows)
  if [ "$repoint" = 1 ]; then wait_until 300 "fw1 back in IPVS and table 101" normal > /dev/null || failed_setup+=("$name: not normal after repair"); fi
  summarize > /dev/null || true   # the table so far, in case the run ends early
}
summarize() {
  /usr/bin/python3 "$LAB_REPO/lab/statesync.py" summary --out-dir "$S" --goal "$GOAL" --goal-variant sync-repoint \
    --title "lab/statesync.sh, $(date -u +%Y-%m-%dT%H:%MZ), kernel $(uname -r), qemu TCG, $ETCD_N etcd member(s); $LONG_N long-lived connections (one request per ${LONG_INTERVAL} s each), $RATE new requests/s; downAction remove; $(el "$T0" "$EPOCHREALTIME") s in all"
}

for n in "${names[@]}"; do
  case $n in
    sync-repoint) run_variant "$n" 1 1 || true ;;
    nosync-repoint) run_variant "$n" 0 1 || true ;;
    sync-norepoint) run_variant "$n" 1 0 || true ;;
    sync-repoint-noflush) run_variant "$n" 1 1 0 || true ;;
  esac
done
rc=0
summarize || rc=1
if [[ " ${names[*]} " != *" sync-repoint "* ]]; then rc=0; fi   # the goal applies to sync-repoint only
for f in "${failed_setup[@]}"; do say "PROBLEM: $f"; rc=1; done
say "statesync: $([ "$rc" = 0 ] && echo PASS || echo FAIL) (summary: $S/summary.md)"
exit "$rc"
