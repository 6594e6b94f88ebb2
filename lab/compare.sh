#!/usr/bin/env bash
# keepalived and the sandwich side by side, inside the VM (issue #6 part 3):
#   flock /tmp/sandwich-heavy.lock lab/vm/run.sh lab/compare.sh 3600 [-- <scenario...>]
# For each stack (LAB_COMPARE_STACKS, default "keepalived sandwich"), the topology is built once
# (keepalived: lab/topo.sh + lab/keepalived/ on lb1 lb2 er1; sandwich: lab_up from lab/run-lib.sh),
# then the same scenarios run under the same load, measured the same way:
#   fw1-blackhole   fw1 drops everything it should forward (FORWARD DROP, links up), then repaired
#   lb-stall        SIGSTOP of the VIP holder's HA daemon for 5 s (every keepalived process / the
#                   controller), then SIGCONT
#   lb-crash        kill -9 of the VIP holder's HA daemon (every keepalived process / the controller),
#                   then restarted
#   lb-down         every cable of the VIP holder pulled (the LB dead as the network sees it), then back
#   fw1-linkdown    (not in the default list) both of fw1's cables pulled, then back
# Load (lab/loadgen.py): LAB_SCEN_RATE (10) new requests/s from 25 client addresses + 6 long-lived
# connections. Measured (lab/analyze.py): failed requests, seconds until every new request succeeds,
# long-lived connections lost, and dual-VIP time two ways: by address (lab/watch.py: both LBs have
# 192.0.2.254 on an interface) and by ARP (lab/arpwatch-multi.py in an observer namespace on ir's and on
# the firewalls' segment: both LBs' MACs answer the same who-has for 192.0.2.254 / 10.1.0.254).
# Writes $LAB_OUT/compare/{results.json,summary.md} (lab/compare.py) and per stack and scenario
# <stack>/<scenario>/{requests.jsonl,markers.jsonl,analysis*.json,timeline.svg}.
# Env (lab/vm/run.sh passes LAB_* variables into the VM): LAB_KA_ADVERT_INT (1) and the other knobs of
# lab/keepalived/render.sh with a LAB_ prefix; LAB_COMPARE_STACKS ("keepalived sandwich");
# LAB_COMPARE_OUT (compare: the output directory under $LAB_OUT); LAB_SCEN_RATE (10).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab/lib.sh
. "$HERE/lib.sh"
# shellcheck source=lab/run-lib.sh
. "$HERE/run-lib.sh"
# shellcheck source=lab/keepalived/lib.sh
. "$HERE/keepalived/lib.sh"
# LAB_KA_X -> KA_X for lab/keepalived/render.sh.
while IFS='=' read -r v _; do export "${v#LAB_}=${!v}"; done < <(env | grep -E '^LAB_KA_[A-Z_]*=' || true)
SCEN_RATE=${LAB_SCEN_RATE:-${SCEN_RATE:-10}}
ALL=(fw1-blackhole lb-stall lb-crash lb-down fw1-linkdown)
DEFAULT=(fw1-blackhole lb-stall lb-crash lb-down)
usage() { echo "usage: lab/compare.sh [scenario...]   (scenarios: ${ALL[*]}; default: ${DEFAULT[*]})" >&2; exit 2; }
names=()
for a in "$@"; do
  [[ " ${ALL[*]} " == *" $a "* ]] || { echo "compare: unknown scenario \"$a\"" >&2; usage; }
  names+=("$a")
done
((${#names[@]})) || names=("${DEFAULT[@]}")
read -r -a STACKS <<< "${LAB_COMPARE_STACKS:-keepalived sandwich}"
for s in "${STACKS[@]}"; do case $s in keepalived | sandwich) ;; *) echo "compare: unknown stack \"$s\"" >&2; usage ;; esac; done
[ -d /proc/sys/net/ipv4/vs ] || { echo "compare: no IPVS here: run me with lab/vm/run.sh lab/compare.sh" >&2; exit 2; }
command -v keepalived > /dev/null || { echo "compare: keepalived missing (apt-get install keepalived)" >&2; exit 2; }
C=$LAB_OUT/${LAB_COMPARE_OUT:-compare}
rm -rf "$C" "$LAB_LOGS"; mkdir -p "$C" "$LAB_LOGS"
T0=$EPOCHREALTIME
STACK=''
stack_down() {
  loadgen_stop 2> /dev/null || true
  arpw_stop; watch_stop; sleep 1
  if [ "$STACK" = sandwich ]; then lab_down > /dev/null 2>&1 || true
  else for n in lb1 lb2 er1; do ka_stop "$n" & done; wait; "$LAB_REPO/lab/topo.sh" down > /dev/null 2>&1 || true; fi
  arpw_down
}
trap 'stack_down' EXIT

holder() { if has_vip lb1 && ! has_vip lb2; then echo lb1; elif has_vip lb2 && ! has_vip lb1; then echo lb2; else echo none; fi; }
other() { [ "$1" = lb1 ] && echo lb2 || echo lb1; }
normal() { both_weights_are 100 100 && [ "$(holder)" != none ]; }
# The HA daemon of an LB, per stack.
daemon_signal() { if [ "$STACK" = sandwich ]; then node_signal "$1" "$2"; else ka_signal "$1" "$2"; fi; }
daemon_start() { if [ "$STACK" = sandwich ]; then node_start "$1"; else ka_start "$1"; fi; }

ka_up() {
  say "keepalived $(keepalived --version 2>&1 | head -n 1 | cut -d' ' -f2): building the sandwich without IPVS real servers or VIPs"
  "$LAB_REPO/lab/topo.sh" up || return 1
  # keepalived creates the IPVS service itself (sh + sh-fallback); topo.sh's seed service would be in its way.
  ip netns exec lb1 ipvsadm -D -f 1; ip netns exec lb2 ipvsadm -D -f 1
  # The IPVS sysctls the controller sets on its LBs (ipvsSysctls; sysctl.conf in a keepalived
  # deployment). sloppy_tcp: the LB taking over schedules mid-stream packets of connections it has
  # no entry for (by the same sh hash), instead of handing them to its local stack (a RST).
  local n
  for n in lb1 lb2; do
    ip netns exec "$n" sh -c 'echo 1 > /proc/sys/net/ipv4/vs/sloppy_tcp; echo 1 > /proc/sys/net/ipv4/vs/expire_quiescent_template; echo 1 > /proc/sys/net/ipv4/vs/expire_nodest_conn'
  done
  ka_render
  say "keepalived configs: $KA_RUN/lb.conf (advert_int $(awk '/advert_int/ { print $2 }' "$KA_RUN/lb.conf"), VRRPv$(awk '/vrrp_version/ { print $2 }' "$KA_RUN/lb.conf")), $KA_RUN/er1.conf"
  cp "$KA_RUN/lb.conf" "$KA_RUN/er1.conf" "$C/keepalived/"
  watch_start "$C/keepalived/watch"
  ka_start er1; ka_start lb1
  local s
  s=$(wait_until 120 "lb1 holds the VIPs" vip_on lb1 lb2) || return 1
  say "lb1 is VRRP master (${s}s); starting keepalived on lb2"
  ka_start lb2
  s=$(wait_until 120 "both LBs list fw1 and fw2 at weight 100" both_weights_are 100 100) || return 1
  say "IPVS on both LBs lists both firewalls at weight 100 (${s}s more); lb1: $(ka_state lb1), lb2: $(ka_state lb2)"
  s=$(wait_until 60 "er1 tables 101/102 via fw1/fw2" eval 'table_is 101 10.2.0.11 && table_is 102 10.2.0.12') || return 1
}

# Per-scenario state.
SC='' DIR='' M='' R='' problems=() notes=()
need() { local what=$1; shift; if "$@"; then return 0; fi; problems+=("$what"); say "  PROBLEM: $what" >&2; return 1; }
took() { el "$1" "$EPOCHREALTIME"; }
note() { notes+=("$1"); say "  $1"; }
# vip_moves <since>: how many times the address watchers saw a VIP appear since <since>.
vip_moves() { cat "$C/$STACK/watch.lb1" "$C/$STACK/watch.lb2" | jq -s --argjson t "$1" '[.[] | select(.t >= $t and .vip == true and (.end | not))] | length'; }

fw_scenario() { # fw_scenario <fault cmd> <repair cmd> <what fault> <what repair>
  local t
  t=$EPOCHREALTIME; mark "$M" "phase:fault" "$3"; eval "$1"
  need "fw1 quiesced on both LBs" wait_until 120 "fw1 at weight 0" both_weights_are 0 100 > /dev/null && note "fw1 at weight 0 on both LBs after $(took "$t")s"
  POLL=1 need "new requests succeed with fw1 down" wait_until 60 "30 good requests" loadgen_ok_since "$R" "$t" 30 > /dev/null && note "30 good requests in a row $(took "$t")s after the fault"
  if [ "$STACK" = sandwich ]; then
    need "er1 table 101 via fw2" wait_until 60 "table 101 via fw2" table_is 101 10.2.0.12 > /dev/null && note "er1 table 101 via fw2 after $(took "$t")s"
  elif wait_until 15 "table 101 via fw2" table_is 101 10.2.0.12 > /dev/null 2>&1; then note "er1 table 101 via fw2 after $(took "$t")s"
  else note "er1 table 101 still via $(table_via 101) $(took "$t")s after the fault (er1's keepalived sees only its own leg)"; fi
  sleep 3
  t=$EPOCHREALTIME; mark "$M" "phase:repair" "$4"; eval "$2"
  need "fw1 back on both LBs" wait_until 150 "fw1 at weight 100" both_weights_are 100 100 > /dev/null && note "fw1 back at weight 100 on both LBs after $(took "$t")s"
  need "er1 table 101 via fw1" wait_until 60 "table 101 via fw1" table_is 101 10.2.0.11 > /dev/null
}
sc_fw1-blackhole() { fw_scenario "fw_blackhole fw1" "fw_unblackhole fw1" "fw1 black-holed (FORWARD DROP)" "fw1 forwards again"; }
sc_fw1-linkdown() { fw_scenario "ip link set fw1-eth0 down; ip link set fw1-eth1 down" "ip link set fw1-eth0 up; ip link set fw1-eth1 up" "fw1's cables pulled" "fw1's cables back"; }
sc_lb-stall() {
  local h t; h=$(holder)
  t=$EPOCHREALTIME; mark "$M" "phase:stall" "SIGSTOP $h's $STACK for 5 s"
  # STOP, 5 s, CONT from one real-time process: the lab script's own sleep stretched to 49 s once
  # in a starved VM. (A starved VM still stretches it: the note says by how much.)
  local pids
  if [ "$STACK" = sandwich ]; then pids=$(node_pid "$h"); else pids=$(ka_pids "$h" | tr '\n' ' '); fi
  # shellcheck disable=SC2016,SC2086 # $@ is the inner shell's; one pid per word
  chrt -f 10 sh -c 'kill -STOP "$@"; sleep 5; kill -CONT "$@"' stall $pids 2> /dev/null \
    || { daemon_signal "$h" STOP; sleep 5; daemon_signal "$h" CONT; }
  mark "$M" resumed "SIGCONT $h"
  note "SIGCONT $(took "$t")s after the SIGSTOP (a starved VM stretches the 5 s)"
  POLL=1 need "one VIP holder with both firewalls after the stall" wait_until 120 "normal" normal > /dev/null
  sleep 8   # a late move (the resumed daemon taking the VIPs back) shows up here
  POLL=1 need "traffic good after the stall" wait_until 60 "30 good requests" loadgen_ok_since "$R" "$t" 30 > /dev/null
  note "VIP appeared $(vip_moves "$t") time(s) on an LB since the SIGSTOP; holder now $(holder) (was $h)"
}
sc_lb-crash() {
  local h o t; h=$(holder); o=$(other "$h")
  t=$EPOCHREALTIME; mark "$M" "phase:crash" "kill -9 $h's $STACK"
  daemon_signal "$h" KILL
  need "$o takes the VIPs" wait_until 120 "VIP on $o" has_vip "$o" > /dev/null && note "$o holds the VIPs $(took "$t")s after the kill"
  POLL=1 need "traffic through $o" wait_until 90 "30 good requests" loadgen_ok_since "$R" "$t" 30 > /dev/null && note "30 good requests in a row $(took "$t")s after the kill"
  has_vip "$h" && note "$h still has the VIP addresses (its daemon is dead)"
  sleep 3
  t=$EPOCHREALTIME; mark "$M" "phase:restart" "$h's $STACK restarted"
  daemon_start "$h"
  need "$h releases the VIPs after its restart" wait_until 300 "VIP on $o only" vip_on "$o" "$h" > /dev/null && note "$h restarted, VIPs on $o only, $(took "$t")s after the restart"
  POLL=1 need "back to normal after the restart" wait_until 200 "normal" normal > /dev/null
  sleep 3
}

sc_lb-down() {
  local h o t i; h=$(holder); o=$(other "$h")
  t=$EPOCHREALTIME; mark "$M" "phase:down" "every cable of $h pulled"
  for i in eth0 eth1 eth2; do ip link set "$h-$i" down; done
  need "$o takes the VIPs" wait_until 120 "VIP on $o" has_vip "$o" > /dev/null && note "$o holds the VIPs $(took "$t")s after the cables were pulled"
  POLL=1 need "traffic through $o" wait_until 90 "30 good requests" loadgen_ok_since "$R" "$t" 30 > /dev/null && note "30 good requests in a row $(took "$t")s after the cables were pulled"
  sleep 3
  t=$EPOCHREALTIME; mark "$M" "phase:repair" "$h's cables back"
  for i in eth0 eth1 eth2; do ip link set "$h-$i" up; done
  need "$h comes back as standby" wait_until 300 "VIP on $o only" vip_on "$o" "$h" > /dev/null && note "VIPs on $o only $(took "$t")s after the cables came back"
  POLL=1 need "back to normal after the repair" wait_until 200 "normal" normal > /dev/null
  sleep 3
}

run_scenario() {
  SC=$1 DIR=$C/$STACK/$1 problems=() notes=()
  mkdir -p "$DIR"; M=$DIR/markers.jsonl R=$DIR/requests.jsonl
  say "== $STACK: $SC"
  POLL=1 wait_until 200 "normal state before $SC" normal > /dev/null || problems+=("not back to normal before the scenario")
  loadgen_start "$R" 400 --rate "$SCEN_RATE" --first 10 --last 34 --long 6
  POLL=1 wait_until 60 "6 long-lived connections up" loadgen_long_up "$R" 6 > /dev/null || problems+=("long-lived connections not up before the fault")
  sleep 2
  mark "$M" "phase:baseline" "holder $(holder)"
  sleep 4
  "sc_$SC" || true
  sleep 4
  mark "$M" end "load stopped"
  loadgen_stop
  local ev=() f
  if [ "$STACK" = sandwich ]; then for f in "$SW_DIR"/*/events.log; do ev+=(--events "$f"); done; fi
  /usr/bin/python3 "$HERE/analyze.py" --records "$R" --vip "$C/$STACK/watch.lb1" --vip "$C/$STACK/watch.lb2" --markers "$M" \
    "${ev[@]}" --title "$STACK: $SC" --json "$DIR/analysis.json" --svg "$DIR/timeline.svg" --md "$DIR/table.md" > /dev/null || problems+=("analysis failed")
  # The same records against what the ARP observer saw (dual-VIP by ARP; the other figures are identical).
  for v in gw "fi"; do
    /usr/bin/python3 "$HERE/analyze.py" --records "$R" --vip "$C/$STACK/arp.$v" --markers "$M" --title "$STACK: $SC (ARP $v)" \
      --json "$DIR/analysis-arp-$v.json" --svg "$DIR/timeline-arp-$v.svg" > /dev/null || problems+=("ARP analysis ($v) failed")
  done
  printf '%s\n' "${problems[@]}" | jq -R . | jq -s 'map(select(length > 0))' > "$DIR/problems.json"
  printf '%s\n' "${notes[@]}" | jq -R . | jq -s 'map(select(length > 0))' > "$DIR/notes.json"
  sed 's/^/    /' "$DIR/table.md"
  if ((${#problems[@]})); then say "== $STACK: $SC: FAIL (${problems[*]})"; else say "== $STACK: $SC: ok"; fi
}

say "compare: stacks ${STACKS[*]}; scenarios ${names[*]}; kernel $(uname -r), qemu TCG"
for STACK in "${STACKS[@]}"; do
  mkdir -p "$C/$STACK"
  t=$EPOCHREALTIME
  if [ "$STACK" = sandwich ]; then up=(lab_up "$C/sandwich/watch"); else up=(ka_up); fi
  # A deleted namespace's interfaces go away asynchronously (seconds in the TCG VM): wait for the
  # previous stack's, or topo.sh up fails with "File exists".
  # shellcheck disable=SC2016
  POLL=1 wait_until 120 "the previous topology's interfaces to go" eval '! ip -o link | grep -qE "(-eth[0-9]|^[0-9]+: br[a-z]+:)"' > /dev/null || true
  if "${up[@]}" && [ -e /run/netns/lb1 ]; then
    arpw_up; arpw_start "$C/$STACK/arp"
    echo "{\"upSeconds\": $(took "$t")}" > "$C/$STACK/up.json"
    say "$STACK: up in $(took "$t")s"
    for n in "${names[@]}"; do run_scenario "$n"; done
  else
    say "FAIL: $STACK did not come up"
    echo '{"upFailed": true}' > "$C/$STACK/up.json"
  fi
  stack_down
  cp -r "$LAB_LOGS" "$C/$STACK/logs" 2> /dev/null || true
  rm -rf "$LAB_LOGS"; mkdir -p "$LAB_LOGS"
done
trap - EXIT

args=(--out "$C" --rate "$SCEN_RATE" --advert-int "${KA_ADVERT_INT:-1}")
for s in "${STACKS[@]}"; do args+=(--stack "$s"); done
for n in "${names[@]}"; do args+=(--scenario "$n"); done
/usr/bin/python3 "$HERE/compare.py" "${args[@]}"
say "summary:"; sed 's/^/    /' "$C/summary.md"
say "compare: $(el "$T0" "$EPOCHREALTIME")s"
jq -e '.problems | length == 0' "$C/results.json" > /dev/null || { say "compare: problems: $(jq -c .problems "$C/results.json")"; exit 1; }
say "compare: PASS"
