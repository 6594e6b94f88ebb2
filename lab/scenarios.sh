#!/usr/bin/env bash
# Fault scenarios under load, inside the VM:   lab/vm/run.sh lab/scenarios.sh [timeout_s] -- <name...>|all
# One sandwich (lab_up: no seed real servers, 3-member etcd, `sandwich run` on lb1 lb2 er1), then
# per scenario: load (SCEN_RATE new requests/s, default 10, + 6 long-lived connections) -> a few
# seconds of baseline -> the fault -> wait for the controllers' reaction -> repair -> wait until
# the sandwich is back to normal -> stop the load -> measure.
# Scenarios (issue 5):
#   fw1-blackhole   fw1 drops everything it should forward (link up)
#   fw1-linkdown    both of fw1's cables pulled (host side of its veths down)
#   fw1-ingress     only fw1's ingress-side cable pulled (the LBs' leg)
#   fw1-egress      only fw1's egress-side cable pulled (er1's leg)
#   all-down        fw1 and fw2 black-holed: fail-open keeps them in IPVS (nothing to fail over to)
#   drain           `sandwich drain fw1`, then `sandwich undrain fw1`
#   drift           by hand: `ipvsadm -d` fw1 on the VIP holder, `ip route del` er1's table 101
#   failover        `sandwich failover --to <the other LB>`
#   leader-kill     kill -9 of the VIP holder's controller: the other LB takes over; restarted
# Appends one object per scenario to $LAB_OUT/scenarios/results.json (a JSON array, rewritten) and
# writes $LAB_OUT/scenarios/summary.md, <name>/timeline.svg. Exit status 1 if a scenario's
# essential check failed (listed at the end), 2 for usage errors.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab/lib.sh
. "$HERE/lib.sh"
# shellcheck source=lab/run-lib.sh
. "$HERE/run-lib.sh"
ALL=(fw1-blackhole fw1-linkdown fw1-ingress fw1-egress all-down drain drift failover leader-kill)
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
normal() { both_weights_are 100 100 && [ "$(holder)" != none ]; }

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
  need "fw1 back on both LBs" wait_until 150 "fw1 at weight 100" both_weights_are 100 100 > /dev/null && note "fw1 back at weight 100 after $(took "$t")s (hold-down 10 s)"
  need "er1 table 101 back via fw1" wait_until 60 "table 101 via fw1" table_is 101 10.2.0.11 > /dev/null
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
  local why
  why=$(grep -h '"event":"verdict"' "$SW_DIR"/*/events.log 2>/dev/null | grep '"firewall":"fw1"' | grep -o '"reason":"[^"]*' | grep -i 'down' | tail -n 1 | cut -c11-)
  note "verdict: ${why:-none logged}"
}
sc_fw1-ingress() { leg eth0 ingress-side; }
sc_fw1-egress() { leg eth1 egress-side; }
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
  note "$(sandwich failover --to "$to" --config "$CFG" 2>&1) (CLI took $(took "$t")s)"
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

run_scenario() {
  SC=$1 DIR=$S/$1 problems=() notes=()
  mkdir -p "$DIR"; M=$DIR/markers.jsonl R=$DIR/requests.jsonl
  say "== $SC"
  POLL=1 wait_until 200 "normal state before $SC (both firewalls at 100 on both LBs, one VIP holder)" normal > /dev/null \
    || { problems+=("not back to normal before the scenario"); }
  loadgen_start "$R" 400 --rate "${SCEN_RATE:-10}" --first 10 --last 34 --long 6
  # The baseline starts once the load flows: every long-lived connection has answered.
  POLL=1 wait_until 60 "6 long-lived connections up" loadgen_long_up "$R" 6 > /dev/null \
    || problems+=("long-lived connections not up before the fault")
  sleep 2
  mark "$M" "phase:baseline" "holder $(holder)"
  sleep 4
  "sc_$SC" || true
  sleep 4
  mark "$M" end "load stopped"
  loadgen_stop
  local ev=() f
  for f in "$SW_DIR"/*/events.log; do ev+=(--events "$f"); done
  /usr/bin/python3 "$HERE/analyze.py" --records "$R" --vip "$S/watch.lb1" --vip "$S/watch.lb2" --markers "$M" \
    "${ev[@]}" --title "scenario $SC" \
    --json "$DIR/analysis.json" --svg "$DIR/timeline.svg" --md "$DIR/table.md" > /dev/null || problems+=("analysis failed")
  local pj nj
  pj=$(printf '%s\n' "${problems[@]}" | jq -R . | jq -s 'map(select(length > 0))')
  nj=$(printf '%s\n' "${notes[@]}" | jq -R . | jq -s 'map(select(length > 0))')
  jq --arg n "$SC" --argjson p "$pj" --argjson notes "$nj" --slurpfile a "$DIR/analysis.json" \
    '. + [{name: $n, ok: ($p | length == 0), problems: $p, notes: $notes, requests: $a[0].requests, failed: $a[0].failed,
      dualVipSeconds: $a[0].dualVipSeconds, vipHolderAtEnd: $a[0].vipHolderAtEnd, long: $a[0].long, phases: $a[0].phases, markers: $a[0].markers}]' \
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
  echo "| scenario | phase | what | requests | failed | until every new request succeeds (s) | long-lived lost / alive | dual-VIP (s) | VIP holder at end |"
  echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
  jq -r '.[] | .name as $n | .phases[] | "| \($n) | \(.name) | \(.detail) | \(.requests) | \(.failed) | \(.recoverySeconds // "never") | \(.longLost) / \(.longAlive) | \(.dualVipSeconds) | \(.vipHolderAtEnd | join(", ")) |"' "$S/results.json"
  echo
  jq -r '.[] | "- **\(.name)** \(if .ok then "ok" else "FAILED: " + (.problems | join("; ")) end). \(.notes | join(". "))"' "$S/results.json"
} > "$S/summary.md"
say "summary:"; sed 's/^/    /' "$S/summary.md"
say "scenarios: $(el "$T0" "$EPOCHREALTIME")s"
if ((${#failures[@]})); then say "scenarios: FAIL: ${failures[*]}"; exit 1; fi
say "scenarios: PASS"
