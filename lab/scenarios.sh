#!/usr/bin/env bash
# Fault scenarios under load, inside the VM:   lab/vm/run.sh lab/scenarios.sh [timeout_s] -- <name...>|all
# One sandwich (lab_up: no seed real servers, 3-member etcd, `sandwich run` on lb1 lb2 er1), then
# per scenario: load (SCEN_RATE new requests/s, default 10, + 6 long-lived connections) -> a few
# seconds of baseline -> the fault -> wait for the controllers' reaction -> repair -> wait until
# the sandwich is back to normal -> stop the load -> measure.
# Scenarios (issue 5):
#   fw1-blackhole   fw1 drops everything it should forward (link up); on repair, rise and hold-down
#                   are honoured: healthy evidence no earlier than (rise-1) x interval after the
#                   repair, back in service no earlier than hold-down after that (controller events)
#   fw1-linkdown    both of fw1's cables pulled (host side of its veths down)
#   fw1-ingress     only fw1's ingress-side cable pulled (the LBs' leg)
#   fw1-egress      only fw1's egress-side cable pulled (er1's leg)
#   fw1-flap        fw1 black-holed 5 s / forwarding 4 s, 4 times: taken out once, not re-added
#                   while it flaps (rise + hold-down), back once it stays up
#   all-down        fw1 and fw2 black-holed: fail-open keeps them in IPVS (nothing to fail over to)
#   drain           `sandwich drain fw1`, then `sandwich undrain fw1`
#   drift           by hand: `ipvsadm -d` fw1 on the VIP holder, `ip route del` er1's table 101
#   failover        `sandwich failover --to <the other LB> --wait 60000` (the VM is slow)
#   leader-kill     kill -9 of the VIP holder's controller: the other LB takes over; restarted
#   leader-stop     SIGSTOP of the VIP holder's controller: 5 s (shorter than the lab's 30 s lease:
#                   it keeps the VIP), then until the other LB holds the VIP; after SIGCONT it
#                   steps down (drops the addresses, sends no gratuitous ARP)
#   etcd-kill-failover  `sandwich failover --to <the other LB>`; as soon as the leader has taken
#                   the request, kill -9 of etcd's raft leader: the failover completes, the
#                   member is restarted (needs the default 3 members)
# Every scenario also needs: no moment in which two LBs answer ARP for the gateway VIP, as the
# upstream router ir sees it (lab/arpwatch.py; the dual-VIP column). An LB that still has the
# address behind an expired ARP fence (after kill -9 or SIGSTOP) is silent and does not count;
# the "VIP address on both" column counts addresses (lab/watch.py).
# Appends one object per scenario to $LAB_OUT/scenarios/results.json (a JSON array, rewritten) and
# writes $LAB_OUT/scenarios/summary.md, <name>/timeline.svg. Exit status 1 if a scenario's
# essential check failed (listed at the end), 2 for usage errors.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab/lib.sh
. "$HERE/lib.sh"
# shellcheck source=lab/run-lib.sh
. "$HERE/run-lib.sh"
ALL=(fw1-blackhole fw1-linkdown fw1-ingress fw1-egress fw1-flap all-down drain drift failover leader-kill leader-stop etcd-kill-failover)
usage() { echo "usage: lab/scenarios.sh <scenario...>|all   (scenarios: ${ALL[*]})" >&2; exit 2; }
[ $# -ge 1 ] || usage
names=()
for a in "$@"; do
  if [ "$a" = all ]; then names+=("${ALL[@]}"); continue; fi
  [[ " ${ALL[*]} " == *" $a "* ]] || { echo "scenarios: unknown scenario \"$a\"" >&2; usage; }
  names+=("$a")
done
[ -d /proc/sys/net/ipv4/vs ] || { echo "scenarios: no IPVS here: run me with lab/vm/run.sh lab/scenarios.sh" >&2; exit 2; }
S=$LAB_OUT/scenarios
rm -rf "$S" "$LAB_LOGS"; mkdir -p "$S" "$LAB_LOGS"
echo '[]' > "$S/results.json"
T0=$EPOCHREALTIME
trap 'loadgen_stop 2>/dev/null || true; lab_down > /dev/null 2>&1 || true' EXIT
failures=()

say "scenarios: ${names[*]}; kernel $(uname -r), qemu TCG; timing from lab/config.lab.yaml"
lab_up "$S/watch" || { say "FAIL: the controllers did not bring the sandwich up"; exit 1; }

holder() { if has_vip lb1 && ! has_vip lb2; then echo lb1; elif has_vip lb2 && ! has_vip lb1; then echo lb2; else echo none; fi; }
other() { [ "$1" = lb1 ] && echo lb2 || echo lb1; }
# Normal: both firewalls at 100 on both LBs, one VIP holder, er1's tables via their own firewall
# (a scenario that ended with table 101 still via fw2 made the next one's baseline fail: replies
# of flows through fw1 went back through fw2, which drops them).
normal() { both_weights_are 100 100 && [ "$(holder)" != none ] && table_is 101 10.2.0.11 && table_is 102 10.2.0.12; }

# Per-scenario state, set by run_scenario and the scenario functions.
SC='' DIR='' M='' R='' problems=() notes=()
need() { # need <what> <command...>: an essential check of the scenario
  local what=$1; shift
  if "$@"; then return 0; fi
  problems+=("$what"); say "  PROBLEM: $what" >&2; return 1
}
took() { el "$1" "$EPOCHREALTIME"; }
note() { notes+=("$1"); say "  $1"; }

sc_fw1-blackhole() {
  local t; t=$EPOCHREALTIME; mark "$M" "phase:fault" "fw1 black-holed (FORWARD DROP)"; fw_blackhole fw1
  need "fw1 quiesced on both LBs" wait_until 120 "fw1 at weight 0" both_weights_are 0 100 > /dev/null && note "fw1 at weight 0 on both LBs after $(took "$t")s"
  need "er1 table 101 via fw2" wait_until 120 "table 101 via fw2" table_is 101 10.2.0.12 > /dev/null && note "er1 table 101 via fw2 after $(took "$t")s"
  POLL=1 need "new requests succeed with fw1 down" wait_until 60 "30 good requests" loadgen_ok_since "$R" "$t" 30 > /dev/null
  sleep 3
  t=$EPOCHREALTIME; mark "$M" "phase:repair" "fw1 forwards again"; fw_unblackhole fw1
  local done=$EPOCHREALTIME   # the rule is gone by now: times measured from here are lower bounds
  need "fw1 back on both LBs" wait_until 150 "fw1 at weight 100" both_weights_are 100 100 > /dev/null && note "fw1 back at weight 100 after $(took "$t")s (hold-down 10 s)"
  need "er1 table 101 back via fw1" wait_until 60 "table 101 via fw1" table_is 101 10.2.0.11 > /dev/null
  holddown_check fw1 "$done"
}
# holddown_check <fw> <repaired_t>: rise and hold-down honoured after a repair, from the leader's
# verdict "<fw> up: healthy since T, hold-down of H ms passed" (logged at the decision, before any
# kernel change): T - repair >= (rise - 1) x interval of the path check (the first good probe can
# follow the repair at once; rise good probes in a row span rise - 1 intervals), decision - T >=
# hold-down, and so the weight is back no earlier than rise x interval after the repair.
holddown_check() {
  local fw=$1 rep=$2 v dec hs rise iv hd
  read -r rise iv < <(sed -n 's/.*name: path-http,.*intervalMs: \([0-9]*\),.*rise: \([0-9]*\),.*/\2 \1/p' "$CFG")
  hd=$(sed -n 's/^  holdDownMs: \([0-9]*\).*/\1/p' "$CFG")
  rise=${rise:-3} iv=${iv:-1000} hd=${hd:-10000}
  v=$(fw_up_verdict "$fw" "$rep") || v=''
  need "the leader logged \"$fw up: healthy since ...\" after the repair" [ -n "$v" ] || return 0
  read -r dec hs <<< "$v"
  note "$fw healthy (rise $rise x ${iv} ms) $(el "$rep" "$hs")s after the repair, back in service $(el "$rep" "$dec")s after it (decision; hold-down ${hd} ms)"
  need "rise honoured: $fw healthy no earlier than (rise - 1) x interval after the repair" \
    awk -v a="$rep" -v b="$hs" -v m="$(( (rise - 1) * iv ))" 'BEGIN { exit !(b - a >= m / 1000) }'
  need "hold-down honoured: $fw back no earlier than ${hd} ms after it was healthy" \
    awk -v a="$hs" -v b="$dec" -v m="$hd" 'BEGIN { exit !(b - a >= m / 1000 - 0.001) }'
  need "$fw back no earlier than rise x interval after the repair" \
    awk -v a="$rep" -v b="$dec" -v m="$(( rise * iv ))" 'BEGIN { exit !(b - a >= m / 1000) }'
}
# fw_up_verdict <fw> <after_t>: "<decision unix t> <healthy-since unix t>" of the first
# "<fw> up: healthy since HH:MM:SS.mmm" verdict logged after t (status 1: none).
fw_up_verdict() {
  /usr/bin/python3 - "$1" "$2" "$SW_DIR"/*/events.log <<'PY'
import datetime, json, re, sys
fw, after = sys.argv[1], float(sys.argv[2])
best = None
for path in sys.argv[3:]:
    for line in open(path):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        m = re.match(re.escape(fw) + r" up: healthy since (\d\d):(\d\d):(\d\d(?:\.\d+)?)", e.get("reason", ""))
        if e.get("event") != "verdict" or e.get("firewall") != fw or not m:
            continue
        t = datetime.datetime.fromisoformat(e["ts"].replace("Z", "+00:00"))
        if t.timestamp() < after:
            continue
        hs = t.replace(hour=int(m[1]), minute=int(m[2]), second=0, microsecond=0) + datetime.timedelta(seconds=float(m[3]))
        if hs > t:
            hs -= datetime.timedelta(days=1)
        if best is None or t.timestamp() < best[0]:
            best = (t.timestamp(), hs.timestamp())
if not best:
    sys.exit(1)
print("%.3f %.3f" % best)
PY
}
cables() { ip link set "fw1-$1" "$2"; }
sc_fw1-linkdown() {
  local t; t=$EPOCHREALTIME; mark "$M" "phase:fault" "fw1's cables pulled (eth0, eth1)"; cables eth0 down; cables eth1 down
  need "fw1 quiesced on both LBs" wait_until 120 "fw1 at weight 0" both_weights_are 0 100 > /dev/null && note "fw1 at weight 0 on both LBs after $(took "$t")s"
  need "er1 table 101 via fw2" wait_until 120 "table 101 via fw2" table_is 101 10.2.0.12 > /dev/null
  POLL=1 need "new requests succeed with fw1 down" wait_until 60 "30 good requests" loadgen_ok_since "$R" "$t" 30 > /dev/null
  t=$EPOCHREALTIME; mark "$M" "phase:repair" "fw1's cables back"; cables eth0 up; cables eth1 up
  need "fw1 back on both LBs" wait_until 150 "fw1 at weight 100" both_weights_are 100 100 > /dev/null && note "fw1 back after $(took "$t")s"
  need "er1 table 101 back via fw1" wait_until 60 "table 101 via fw1" table_is 101 10.2.0.11 > /dev/null
}
leg() { # leg <eth0|eth1> <label>
  local t; t=$EPOCHREALTIME; mark "$M" "phase:fault" "fw1 $2 cable pulled ($1)"; cables "$1" down
  need "fw1 quiesced on both LBs" wait_until 120 "fw1 at weight 0" both_weights_are 0 100 > /dev/null && note "fw1 at weight 0 on both LBs after $(took "$t")s"
  POLL=1 need "new requests succeed with fw1 down" wait_until 60 "30 good requests" loadgen_ok_since "$R" "$t" 30 > /dev/null
  t=$EPOCHREALTIME; mark "$M" "phase:repair" "fw1 $2 cable back"; cables "$1" up
  need "fw1 back on both LBs" wait_until 150 "fw1 at weight 100" both_weights_are 100 100 > /dev/null && note "fw1 back after $(took "$t")s"
  need "er1 table 101 back via fw1" wait_until 60 "table 101 via fw1" table_is 101 10.2.0.11 > /dev/null
  local why
  why=$(grep -h '"event":"verdict"' "$SW_DIR"/*/events.log 2>/dev/null | grep '"firewall":"fw1"' | grep -o '"reason":"[^"]*' | grep -i 'down' | tail -n 1 | cut -c11-)
  note "verdict: ${why:-none logged}"
}
sc_fw1-ingress() { leg eth0 ingress-side; }
sc_fw1-egress() { leg eth1 egress-side; }
# weight_changes <lb> <t0> <t1>: "<removed> <re-added>": how often fw1's weight on that LB left 100
# and came back to 100 between t0 and t1 (lab/watch.py's change log; weights sampled every 0.5 s).
weight_changes() {
  jq -rs --arg a "$2" --arg b "$3" '($a | tonumber) as $a | ($b | tonumber) as $b
    | [.[] | select(.end != true and .t <= $b)] as $all
    | [([$all[] | select(.t < $a)] | last | .w[0])] + [$all[] | select(.t >= $a) | .w[0]]
    | [range(1; length) as $i | [.[$i - 1], .[$i]]]
    | "\(map(select(.[0] == 100 and .[1] != 100)) | length) \(map(select(.[0] != 100 and .[1] == 100)) | length)"' "$S/watch.$1"
}
sc_fw1-flap() {
  local t t0 i n=${SCEN_FLAPS:-4} h d1 r1 d2 r2; h=$(holder)
  t0=$EPOCHREALTIME; mark "$M" "phase:flap" "fw1 flaps: black-holed 5 s, forwarding 4 s, $n times"
  for ((i = 0; i < n; i++)); do fw_blackhole fw1; sleep 5; fw_unblackhole fw1; sleep 4; done
  t=$EPOCHREALTIME; mark "$M" "phase:stable" "fw1 stays up"
  read -r d1 r1 < <(weight_changes "$h" "$t0" "$t")
  note "while fw1 flapped ($(el "$t0" "$t")s, $n cycles): fw1 taken out $d1 time(s), re-added $r1 time(s) on $h"
  need "fw1 taken out while it flaps" [ "${d1:-0}" -ge 1 ]
  need "fw1 not re-added while it flaps (rise + hold-down)" [ "${r1:-1}" -eq 0 ]
  need "fw1 back on both LBs once it stays up" wait_until 150 "fw1 at weight 100" both_weights_are 100 100 > /dev/null && note "fw1 back at weight 100 $(took "$t")s after the flapping stopped"
  need "er1 table 101 back via fw1" wait_until 60 "table 101 via fw1" table_is 101 10.2.0.11 > /dev/null
  read -r d2 r2 < <(weight_changes "$h" "$t0" "$EPOCHREALTIME")
  note "in the whole scenario fw1 was taken out $d2 time(s) and re-added $r2 time(s) on $h"
  need "fw1 taken out and re-added once each" [ "$d2" -eq 1 ] && [ "$r2" -eq 1 ]
}
sc_all-down() {
  local t; t=$EPOCHREALTIME; mark "$M" "phase:fault" "fw1 and fw2 black-holed"; fw_blackhole fw1; fw_blackhole fw2
  sleep 20
  local w; w=$(weights "$(holder)")
  note "after 20 s with every firewall down: IPVS weights on the VIP holder: $w (fail-open)"
  need "fail-open keeps a firewall in service" [ "$w" != "0 0" ] && [ "$w" != "- -" ]
  t=$EPOCHREALTIME; mark "$M" "phase:repair" "fw1 and fw2 forward again"; fw_unblackhole fw1; fw_unblackhole fw2
  POLL=1 need "traffic back" wait_until 90 "30 good requests" loadgen_ok_since "$R" "$t" 30 > /dev/null && note "traffic back after $(took "$t")s"
  need "both firewalls back" wait_until 150 "weights 100 100" both_weights_are 100 100 > /dev/null
}
sc_drain() {
  local t; t=$EPOCHREALTIME; mark "$M" "phase:drain" "sandwich drain fw1"
  note "$(sandwich drain fw1 --config "$CFG" --reason "lab scenario" 2>&1) (CLI took $(took "$t")s)"
  need "fw1 drained on both LBs" wait_until 120 "fw1 at weight 0" both_weights_are 0 100 > /dev/null && note "fw1 at weight 0 on both LBs $(took "$t")s after the command started"
  sleep 3
  t=$EPOCHREALTIME; mark "$M" "phase:undrain" "sandwich undrain fw1"
  note "$(sandwich undrain fw1 --config "$CFG" 2>&1) (CLI took $(took "$t")s)"
  need "fw1 back on both LBs" wait_until 150 "fw1 at weight 100" both_weights_are 100 100 > /dev/null && note "fw1 back $(took "$t")s after the command started"
}
sc_drift() {
  local h t; h=$(holder)
  t=$EPOCHREALTIME; mark "$M" "phase:ipvs-drift" "ipvsadm -d fw1 on $h"
  ip netns exec "$h" ipvsadm -d -f 1 -r 10.1.0.11
  need "fw1 deleted by hand on $h" wait_until 20 "fw1 gone from $h's IPVS" weights_are "$h" - 100 > /dev/null || true
  need "the controller re-adds fw1 on $h" wait_until 90 "fw1 back in $h's IPVS" weights_are "$h" 100 100 > /dev/null && note "fw1 re-added on $h $(took "$t")s after ipvsadm -d"
  t=$EPOCHREALTIME; mark "$M" "phase:route-drift" "ip route del default table 101 on er1"
  ip -n er1 route del default table 101
  need "the controller restores er1 table 101" wait_until 90 "table 101 via fw1" table_is 101 10.2.0.11 > /dev/null && note "er1 table 101 restored $(took "$t")s after ip route del"
  local d; d=$(grep -h '"event":"drift"' "$SW_DIR"/*/events.log 2>/dev/null | grep -c . || true)
  note "drift events logged: $d"
  need "drift logged" [ "$d" -gt 0 ]
}
sc_failover() {
  local from to t; from=$(holder); to=$(other "$from")
  t=$EPOCHREALTIME; mark "$M" "phase:failover" "sandwich failover --to $to"
  note "$(sandwich failover --to "$to" --wait 60000 --config "$CFG" 2>&1) (CLI took $(took "$t")s)"
  mark "$M" requested "switchover requested"
  need "the VIP group moves to $to" wait_until 120 "VIP on $to only" vip_on "$to" "$from" > /dev/null && note "VIP group on $to only $(took "$t")s after the command started"
  POLL=1 need "traffic through $to" wait_until 60 "30 good requests" loadgen_ok_since "$R" "$t" 30 > /dev/null
}
sc_leader-kill() {
  local from to t; from=$(holder); to=$(other "$from")
  t=$EPOCHREALTIME; mark "$M" "phase:kill" "kill -9 $from's controller"
  node_signal "$from" KILL
  need "$to takes the VIP group" wait_until 120 "VIP on $to" has_vip "$to" > /dev/null && note "$to holds the VIP $(took "$t")s after the kill (lease TTL 30 s)"
  POLL=1 need "traffic through $to" wait_until 90 "30 good requests" loadgen_ok_since "$R" "$t" 30 > /dev/null && note "traffic good $(took "$t")s after the kill"
  has_vip "$from" && note "$from still has the VIP addresses (its controller is dead; the ARP fence is what keeps it silent)"
  t=$EPOCHREALTIME; mark "$M" "phase:restart" "$from's controller restarted"
  node_start "$from"
  need "$from releases the VIP after its restart" wait_until 300 "VIP on $to only" vip_on "$to" "$from" > /dev/null && note "$from restarted as standby, VIP on $to only, $(took "$t")s after the restart"
}

# garps_from <lb> <since_t>: gratuitous ARPs for the VIP from that LB seen by ir since t.
garps_from() { jq -c --arg n "$1" --arg t "$2" 'select(.k == "garp" and .node == $n and .t >= ($t | tonumber))' "$S/watch.arp" | grep -c . || true; }
sc_leader-stop() {
  local from to t s g; from=$(holder); to=$(other "$from")
  t=$EPOCHREALTIME; mark "$M" "phase:stop-5s" "SIGSTOP $from's controller for 5 s"
  node_signal "$from" STOP; sleep 5; node_signal "$from" CONT
  mark "$M" resumed "SIGCONT $from"
  sleep 10
  # The lab's lease is 30 s (validity 22.5 s after the last acknowledged keepalive): a 5 s freeze
  # must not move anything. With a short production lease, the second phase below is this case.
  need "$from keeps the VIP group through a 5 s freeze (lease 30 s)" vip_on "$from" "$to" && note "after a 5 s SIGSTOP $from still holds the VIP group alone"
  need "$from's controller runs after SIGCONT" node_alive "$from"
  t=$EPOCHREALTIME; mark "$M" "phase:stop" "SIGSTOP $from's controller until $to holds the VIP"
  node_signal "$from" STOP
  s=$(wait_until 150 "VIP on $to" has_vip "$to") && note "$to holds the VIP ${s}s after $from froze (lease TTL 30 s)"
  need "$to takes the VIP group while $from is frozen" [ -n "$s" ]
  has_vip "$from" && note "$from, frozen, still has the VIP addresses (its ARP fence keeps it silent)"
  sleep 3
  t=$EPOCHREALTIME; mark "$M" "phase:resume" "SIGCONT $from's controller"
  node_signal "$from" CONT
  need "$from steps down after SIGCONT (VIP on $to only)" wait_until 120 "VIP on $to only" vip_on "$to" "$from" > /dev/null && note "$from dropped the VIP addresses $(took "$t")s after SIGCONT"
  need "$from's controller still runs" node_alive "$from"
  need "$from no longer claims leadership" wait_until 60 "$from not leader" eval "! is_leader $from" > /dev/null
  need "$to is ingress leader" is_leader "$to"
  POLL=1 need "traffic through $to" wait_until 90 "30 good requests" loadgen_ok_since "$R" "$t" 30 > /dev/null
  sleep 2
  g=$(garps_from "$from" "$t")
  note "gratuitous ARPs from $from after SIGCONT: $g; from $to since the freeze: $(garps_from "$to" "$t")"
  need "$from sent no gratuitous ARP after SIGCONT" [ "$g" -eq 0 ]
}
# switchover_seen <lb> <n>: the LB's event log has more than n switchover events (bash only: no fork).
switchover_count() { local f=$SW_DIR/$1/events.log line c=0; [ -f "$f" ] && while IFS= read -r line; do [[ $line == *'"event":"switchover"'* ]] && c=$((c + 1)); done < "$f"; echo "$c"; }
switchover_seen() { [ "$(switchover_count "$1")" -gt "$2" ]; }
sc_etcd-kill-failover() {
  local from to t m n0 cli rc took_s
  from=$(holder); to=$(other "$from")
  need "three etcd members (LAB_ETCD_MEMBERS=3)" [ "$ETCD_N" = 3 ] || return 0
  m=$(etcd_ctl leader) || m=''
  need "etcd's raft leader found" [ -n "$m" ] || return 0
  n0=$(switchover_count "$from")
  t=$EPOCHREALTIME; mark "$M" "phase:failover" "sandwich failover --to $to; kill -9 etcd $m (raft leader) once $from takes the request"
  ( sandwich failover --to "$to" --wait 60000 --config "$CFG" > "$DIR/failover-cli.out" 2>&1; echo "$? $(el "$t" "$EPOCHREALTIME")" > "$DIR/failover-cli.rc" ) &
  cli=$!
  need "$from takes the switchover request" wait_until 120 "switchover event on $from" switchover_seen "$from" "$n0" > /dev/null
  etcd_ctl kill "$m"; mark "$M" etcd-killed "kill -9 etcd $m"
  note "etcd $m (raft leader) killed $(took "$t")s after the command started, once $from had logged the switchover request"
  need "the VIP group moves to $to" wait_until 180 "VIP on $to only" vip_on "$to" "$from" > /dev/null && note "VIP group on $to only $(took "$t")s after the command started"
  wait "$cli" || true
  read -r rc took_s < "$DIR/failover-cli.rc" 2>/dev/null || { rc='?' took_s='?'; }
  note "CLI (exit $rc, ${took_s}s): $(tr '\n' ' ' < "$DIR/failover-cli.out" | cut -c1-300)"
  need "$to is ingress leader" wait_until 60 "$to leader" is_leader "$to" > /dev/null
  POLL=1 need "traffic through $to" wait_until 60 "30 good requests" loadgen_ok_since "$R" "$t" 30 > /dev/null
  t=$EPOCHREALTIME; mark "$M" "phase:etcd-restart" "etcd $m restarted"
  need "etcd $m rejoins, all members healthy" etcd_ctl start > /dev/null && note "etcd healthy again $(took "$t")s after restarting $m; raft leader now $(etcd_ctl leader || echo '?')"
  sleep 5
  need "VIP group still on $to only" vip_on "$to" "$from"
}

run_scenario() {
  SC=$1 DIR=$S/$1 problems=() notes=()
  mkdir -p "$DIR"; M=$DIR/markers.jsonl R=$DIR/requests.jsonl
  say "== $SC"
  POLL=1 wait_until 200 "normal state before $SC (both firewalls at 100 on both LBs, one VIP holder, er1 tables via fw1/fw2)" normal > /dev/null \
    || { problems+=("not back to normal before the scenario"); }
  # The baseline starts once the load flows: every long-lived connection has answered. A VM stall
  # right then (a lapsed lease drops the VIP group for half a minute) leaves no baseline: the load
  # is restarted once, after the sandwich is back to normal (its records kept as requests.jsonl.try1).
  local try
  for try in 1 2; do
    loadgen_start "$R" 400 --rate "${SCEN_RATE:-10}" --first 10 --last 34 --long 6
    POLL=1 wait_until 60 "6 long-lived connections up" loadgen_long_up "$R" 6 > /dev/null && break
    if [ "$try" = 2 ]; then problems+=("long-lived connections not up before the fault"); break; fi
    loadgen_stop
    mv "$R" "$R.try1"
    note "long-lived connections not up within 60 s (VIP holder: $(holder)); load restarted once"
    POLL=1 wait_until 200 "normal state" normal > /dev/null || true
  done
  sleep 2
  mark "$M" "phase:baseline" "holder $(holder)"
  sleep 4
  "sc_$SC" || true
  sleep 4
  mark "$M" end "load stopped"
  loadgen_stop
  local ev=() f
  for f in "$SW_DIR"/*/events.log; do ev+=(--events "$f"); done
  /usr/bin/python3 "$HERE/analyze.py" --records "$R" --vip "$S/watch.lb1" --vip "$S/watch.lb2" --arp "$S/watch.arp" --markers "$M" \
    "${ev[@]}" --title "scenario $SC" \
    --json "$DIR/analysis.json" --svg "$DIR/timeline.svg" --md "$DIR/table.md" > /dev/null || problems+=("analysis failed")
  # Safety, in every scenario: never two LBs answering ARP for the VIP (as ir sees it).
  local arp
  arp=$(jq -r '"\(.dualVipSeconds) \(.arpAnsweringAtEnd != null)"' "$DIR/analysis.json" 2>/dev/null) || arp=''
  [ "${arp#* }" = true ] || problems+=("the ARP watcher recorded nothing")
  [ "${arp%% *}" = 0 ] || problems+=("two LBs answered ARP for the VIP for ${arp%% *}s")
  local pj nj
  pj=$(printf '%s\n' "${problems[@]}" | jq -R . | jq -s 'map(select(length > 0))')
  nj=$(printf '%s\n' "${notes[@]}" | jq -R . | jq -s 'map(select(length > 0))')
  jq --arg n "$SC" --argjson p "$pj" --argjson notes "$nj" --slurpfile a "$DIR/analysis.json" \
    '. + [{name: $n, ok: ($p | length == 0), problems: $p, notes: $notes, requests: $a[0].requests, failed: $a[0].failed,
      dualVipSeconds: $a[0].dualVipSeconds, dualVipAddressSeconds: $a[0].dualVipAddressSeconds, vipHolderAtEnd: $a[0].vipHolderAtEnd,
      arpAnsweringAtEnd: $a[0].arpAnsweringAtEnd, garps: $a[0].garps, long: $a[0].long, phases: $a[0].phases, markers: $a[0].markers}]' \
    "$S/results.json" > "$S/results.json.tmp" && mv "$S/results.json.tmp" "$S/results.json"
  sed 's/^/    /' "$DIR/table.md"
  if ((${#problems[@]})); then failures+=("$SC: ${problems[*]}"); say "== $SC: FAIL (${problems[*]})"; else say "== $SC: ok"; fi
}

for n in "${names[@]}"; do run_scenario "$n"; done
watch_stop

{
  echo "# sandwich lab scenarios — $(date -u +%Y-%m-%dT%H:%MZ), kernel $(uname -r), qemu TCG"
  echo
  echo "Load per scenario: ${SCEN_RATE:-10} new HTTP requests/s (2 s timeout) from 25 client addresses + 6 long-lived"
  echo "keep-alive connections (1 request/s). Timing: lab/config.lab.yaml (probes 1 s / fall 3 / rise 3, ICMP legs 3 s,"
  echo "decide on change + every 3 s, reconcile on change + every 15 s, hold-down 10 s, lease 30 s)."
  echo
  echo "dual-VIP: seconds in which two LBs answered the same ARP request for the gateway VIP, asked every 0.2 s"
  echo "from the upstream router ir (lab/arpwatch.py; an LB whose ARP fence has expired is silent). VIP address on"
  echo "both: seconds in which both LBs had the address (lab/watch.py). Holder at end: by address / answering ARP."
  echo
  echo "| scenario | phase | what | requests | failed | until every new request succeeds (s) | long-lived lost / alive | dual-VIP (s) | VIP address on both (s) | VIP holder at end |"
  echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  jq -r '.[] | .name as $n | .phases[] | "| \($n) | \(.name) | \(.detail) | \(.requests) | \(.failed) | \(.recoverySeconds // "never") | \(.longLost) / \(.longAlive) | \(.dualVipSeconds) | \(.dualVipAddressSeconds) | \(.vipHolderAtEnd | join(", ") | if . == "" then "none" else . end) / \(if .arpAnsweringAtEnd == null then "?" else (.arpAnsweringAtEnd | join(", ") | if . == "" then "none" else . end) end) |"' "$S/results.json"
  echo
  jq -r '.[] | "- **\(.name)** \(if .ok then "ok" else "FAILED: " + (.problems | join("; ")) end). \(.notes | join(". "))"' "$S/results.json"
} > "$S/summary.md"
say "summary:"; sed 's/^/    /' "$S/summary.md"
say "scenarios: $(el "$T0" "$EPOCHREALTIME")s"
if ((${#failures[@]})); then say "scenarios: FAIL: ${failures[*]}"; exit 1; fi
say "scenarios: PASS"
