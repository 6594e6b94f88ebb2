#!/usr/bin/env bash
# The narrated demo, inside the VM:   lab/vm/run.sh lab/demo.sh [timeout_s]
# The sandwich without real servers, one etcd member (LAB_ETCD_MEMBERS=3 for three), `sandwich run` on lb1, lb2, er1 (the
# controllers add the real servers and the VIP group) -> load (DEMO_RATE new requests/s, default 10, from 25 client
# addresses + 6 long-lived connections) -> (a) fw1 black-holed: the controllers quiesce fw1 on
# both LBs and point er1's table 101 at fw2; fw1 restored: back after the hold-down -> (b) manual
# failover to lb2 -> the event timeline and a summary.
# Writes $LAB_OUT/demo/{results.json,timeline.svg,summary.md}. Exit 0 only if the controller
# reacted, traffic recovered and the VIP moved. Env: DEMO_LOAD_MAX_S (300) bounds the load.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# One member: three idle members take a third of the 2-vCPU TCG VM, enough to starve the LBs' probes on a busy
# host (lab/README.md); the etcd fault tests run three on the host (test/integration).
export LAB_ETCD_MEMBERS=${LAB_ETCD_MEMBERS:-1}
# shellcheck source=lab/lib.sh
. "$HERE/lib.sh"
# shellcheck source=lab/run-lib.sh
. "$HERE/run-lib.sh"
[ -d /proc/sys/net/ipv4/vs ] || { echo "demo: no IPVS here: run me with lab/vm/run.sh lab/demo.sh" >&2; exit 2; }
D=$LAB_OUT/demo
rm -rf "$D" "$LAB_LOGS"; mkdir -p "$D" "$LAB_LOGS"
M=$D/markers.jsonl R=$D/requests.jsonl
T0=$EPOCHREALTIME
trap 'loadgen_stop 2>/dev/null || true; lab_down > /dev/null 2>&1 || true' EXIT
problems=()
check() { # check <what> <command...>: record a failed essential instead of stopping the demo
  local what=$1; shift
  if "$@"; then return 0; fi
  problems+=("$what"); say "PROBLEM: $what"; return 1
}

say "demo: kernel $(uname -r), $(nproc) vCPUs (qemu TCG); timing from lab/config.lab.yaml:"
say "  probes: path-http 1 s interval, fall/rise 3; ICMP legs 3 s (one long-lived ping each), fall/rise 2; decide on every change and every 3 s, reconcile on every change and every 15 s, hold-down 10 s, etcd lease 30 s"
lab_up "$D/vip" || { problems+=("the controllers did not bring the sandwich up"); say "FAIL: ${problems[*]}"; exit 1; }
say "lb1 IPVS:"; ip netns exec lb1 ipvsadm -Ln | sed 's/^/    /'
say "lb2 IPVS:"; ip netns exec lb2 ipvsadm -Ln | sed 's/^/    /'

RATE=${DEMO_RATE:-10}
say "load: $RATE new requests/s from 203.0.113.10-34, 6 long-lived connections from .35-.40 (1 request/s each)"
loadgen_start "$R" "${DEMO_LOAD_MAX_S:-300}" --rate "$RATE" --first 10 --last 34 --long 6
sleep 8
mark "$M" phase:baseline "both firewalls up, lb1 leads"
sleep 10

# (a) fw1 black-holed: its link stays up, it drops everything it should forward.
say "(a) fw1 fails: iptables DROP at the top of fw1's FORWARD chain"
t_fail=$EPOCHREALTIME
mark "$M" phase:fw1-blackhole "fw1 drops all forwarded packets"
fw_blackhole fw1
if s=$(wait_until 120 "IPVS weight 0 for fw1 on lb1 and lb2" both_weights_are 0 100); then
  mark "$M" reacted "fw1 at weight 0 on both LBs"; say "controllers quiesced fw1 on both LBs ($(el "$t_fail" "$EPOCHREALTIME")s after the fault)"
else problems+=("fw1 not quiesced on both LBs within 120 s"); fi
if s=$(wait_until 120 "er1 table 101 via fw2" table_is 101 10.2.0.12); then
  say "er1: table 101 now via fw2 (10.2.0.12), $(el "$t_fail" "$EPOCHREALTIME")s after the fault"
else problems+=("er1 table 101 not re-pointed at fw2 within 120 s"); fi
if s=$(POLL=1 wait_until 60 "40 new requests in a row succeed" loadgen_ok_since "$R" "$t_fail" 40); then
  say "traffic: the last 40 new requests all succeeded"
else problems+=("traffic did not recover with fw1 down"); fi
sleep 5

say "fw1 repaired: DROP removed; the controllers wait rise (3 probes) + hold-down (10 s) before fw1 takes new flows again"
t_fix=$EPOCHREALTIME
mark "$M" phase:fw1-restored "fw1 forwards again (hold-down 10 s)"
fw_unblackhole fw1
if s=$(wait_until 150 "fw1 back at weight 100 on both LBs" both_weights_are 100 100); then
  mark "$M" back "fw1 at weight 100 on both LBs"; say "fw1 back in service on both LBs $(el "$t_fix" "$EPOCHREALTIME")s after the repair"
else problems+=("fw1 not back at weight 100 within 150 s"); fi
check "er1 table 101 back via fw1" wait_until 60 "er1 table 101 via fw1" table_is 101 10.2.0.11 > /dev/null || true
sleep 5

# (b) manual failover: lb1 releases the VIP group and resigns, lb2 takes over.
say "(b) manual failover: sandwich failover --to lb2"
t_sw=$EPOCHREALTIME
mark "$M" phase:failover "sandwich failover --to lb2"
say "  $(sandwich failover --to lb2 --config "$CFG" 2>&1)"
if s=$(wait_until 120 "the VIP group on lb2 only" vip_on lb2 lb1); then
  mark "$M" vip-moved "VIP group on lb2"; say "the VIP group moved to lb2 $(el "$t_sw" "$EPOCHREALTIME")s after the request"
else problems+=("the VIP group did not move to lb2 within 120 s"); fi
POLL=1 check "traffic through lb2" wait_until 60 "40 new requests in a row succeed" loadgen_ok_since "$R" "$t_sw" 40 > /dev/null || true
sleep 8
mark "$M" end "load stopped"
loadgen_stop
watch_stop
sleep 0.5

say "event timeline (sandwich events --config ..., all nodes merged):"
sandwich events --config "$CFG" 2>&1 | sed 's/^/    /' | tee "$D/events.txt" | grep -v '"event":"probe"' | tail -n 60 || true
cat "$SW_DIR"/*/events.log > "$D/events.jsonl" 2> /dev/null || true   # the same events as JSON lines (no second node start)
cp "$CFG" "$D/config.yaml"
ip netns exec lb1 ipvsadm -Ln > "$D/lb1-ipvsadm.txt" 2>&1 || true
ip netns exec lb2 ipvsadm -Ln > "$D/lb2-ipvsadm.txt" 2>&1 || true

say "analysing (lab/analyze.py)"
/usr/bin/python3 "$HERE/analyze.py" --records "$R" --vip "$D/vip.lb1" --vip "$D/vip.lb2" --markers "$M" \
  --events "$D/events.jsonl" --title "sandwich demo: fw1 black-holed and restored, manual failover to lb2" \
  --json "$D/results.json" --svg "$D/timeline.svg" --md "$D/table.md" > /dev/null

# Essentials, from the measurements.
ph() { jq -r --arg n "$1" ".phases[] | select(.name == \$n) | $2" "$D/results.json"; }
check "baseline without failures" [ "$(ph baseline .failed)" = 0 ] || true
check "traffic recovered after fw1 failed" [ "$(ph fw1-blackhole .recoverySeconds)" != null ] || true
check "no failures after fw1 came back" [ "$(ph fw1-restored .failed)" = 0 ] || true
check "traffic recovered after the failover" [ "$(ph failover .recoverySeconds)" != null ] || true
check "the VIP ends on lb2 only" [ "$(jq -c .vipHolderAtEnd "$D/results.json")" = '["lb2"]' ] || true

{
  echo "# sandwich lab demo — $(date -u +%Y-%m-%dT%H:%MZ), kernel $(uname -r), qemu TCG, 2 vCPUs"
  echo
  echo "Real IPVS (fwmark 1, sh) on lb1/lb2, stateful iptables firewalls fw1/fw2, egress router er1"
  echo "(CONNMARK + MAC marks, tables 101/102), ${ETCD_N}-member etcd, \`sandwich run\` on lb1, lb2, er1."
  echo "Load: $RATE new HTTP requests/s (one connection each, 2 s timeout) from 25 client addresses,"
  echo "plus 6 long-lived keep-alive connections (1 request/s each)."
  echo
  echo "Timing (lab/config.lab.yaml, slowed for the TCG VM where one exec costs 0.15-2 s): path-http"
  echo "probe every 1 s (timeout 0.8 s, fall 3, rise 3), ICMP leg probes every 3 s (one long-lived ping"
  echo "per target; fall 2, rise 2), decide on every change and every 3 s, reconcile on every"
  echo "desired-state change and every 15 s, hold-down 10 s, etcd calls 10 s, lease 30 s, down action"
  echo "quiesce (weight 0 under sh-fallback)."
  echo
  cat "$D/table.md"
  echo
  echo "Reaction times:"
  jq -r '.markers as $m | ($m | map(select(.name == "phase:fw1-blackhole"))[0].t) as $f
    | ($m | map(select(.name == "phase:fw1-restored"))[0].t) as $r | ($m | map(select(.name == "phase:failover"))[0].t) as $s
    | ($m | map(select(.name == "reacted"))[0].t) as $a | ($m | map(select(.name == "back"))[0].t) as $b
    | ($m | map(select(.name == "vip-moved"))[0].t) as $v
    | "- fw1 fault → weight 0 on both LBs: \(if $a then (($a - $f) * 100 | round / 100 | tostring) + " s" else "not seen" end)",
      "- fw1 repaired → weight 100 on both LBs: \(if $b then (($b - $r) * 100 | round / 100 | tostring) + " s" else "not seen" end)",
      "- failover request → VIP group on lb2 only: \(if $v then (($v - $s) * 100 | round / 100 | tostring) + " s" else "not seen" end)"' "$D/results.json"
  echo "- requests in total: $(jq .requests "$D/results.json"), failed: $(jq .failed "$D/results.json"); dual-VIP time: $(jq .dualVipSeconds "$D/results.json") s"
  echo
  echo "Columns: failed = requests started in the phase that got no correct answer within 2 s;"
  echo "until every new request succeeds = from the phase's action to the first request after the"
  echo "phase's last failure; long-lived lost/alive = keep-alive connections alive at the phase start"
  echo "and broken during it (the ones hashed to fw1 break when fw1 black-holes: their state lives"
  echo "on fw1). Timeline: timeline.svg; raw records: requests.jsonl, events.jsonl, markers.jsonl."
  if ((${#problems[@]})); then echo; echo "**FAILED:** ${problems[*]}"; fi
} > "$D/summary.md"
say "summary:"; sed 's/^/    /' "$D/summary.md"
say "demo: $(el "$T0" "$EPOCHREALTIME")s; results in $D (summary.md, timeline.svg, results.json)"
if ((${#problems[@]})); then say "demo: FAIL (${#problems[@]}): ${problems[*]}"; exit 1; fi
say "demo: PASS"
