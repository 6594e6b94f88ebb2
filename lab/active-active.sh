#!/usr/bin/env bash
# Active-active LB pair behind the upstream router's ECMP route (issue #8 part 3; docs/active-active.md),
# inside the VM:   flock /tmp/sandwich-heavy.lock lab/vm/run.sh lab/active-active.sh 2400 [-- <scenario...>|all]
#
# Topology: lab/topo.sh --wires (no VIP, no seed real servers), then the active-active variant (aa_topo):
#   ir:      198.51.100.0/24 nexthop via 192.0.2.21 (lb1's path) nexthop via 192.0.2.22 (lb2's path),
#            fib_multipath_use_neigh=1 (a next hop whose neighbour entry is FAILED is skipped),
#            fib_multipath_hash_policy=1 (L4: one client's connections spread over both LBs),
#            ARP timers on eth1: base_reachable 1000 ms, delay_probe 200 ms, retrans 200 ms, 2 unicast probes
#   fw1/fw2: replies to the clients: 203.0.113.0/24 nexthop via 10.1.0.251 (lb1) nexthop via 10.1.0.252 (lb2),
#            same sysctls and ARP timers on eth0 (instead of the route via the firewall-facing VIP)
#   config:  lab/config.lab.yaml with its vipGroups replaced by one active-active group (aa_config):
#            each LB holds 192.0.2.2N/24 (client side) and 10.1.0.25N/24 (firewall side) while healthy.
# Both LBs direct traffic: each one's IPVS (fwmark 1, sh) follows the same desired state, in config order,
# so a client hashes to the same firewall on either LB, and sloppy_tcp lets the other LB pick a moved
# connection up mid-stream.
#
# Scenarios (default: all), each under load (AA_RATE new requests/s, default 10, + AA_LONG long-lived
# keep-alive connections, default 12, 5 s request timeout):
#   lb1-stop   SIGTERM of lb1's controller: it withdraws lb1's path addresses (IPVS stays), then restarted
#   lb1-kill   kill -9 of lb1's controller: the addresses stay; the path fence expires (pathFenceMs) and
#              lb1's kernel stops answering ARP for them; then restarted
#   lb1-down   lb1 host down: both of its data cables pulled (host side of eth0, eth1); then back
# Per scenario: which LB carried each long-lived connection (its IPVS connection table before the fault),
# how many of each LB's were kept, requests failed, when ir marked lb1's path FAILED (polled every 0.5 s).
# Writes $LAB_OUT/active-active/{results.json,summary.md,<name>/…}. Exit 1 if an essential check failed.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# User-space cables client–ir and srv–er1 (lab/wire.py): without them the clients' TCP confirms ir's neighbour
# entries across the namespaces and ir never notices a withdrawn path (lab/README.md, "The wire").
export LAB_WIRES=1
export LAB_ETCD_MEMBERS=${LAB_ETCD_MEMBERS:-1}   # one member: three idle ones take a third of the VM; no scenario needs three
# shellcheck source=lab/lib.sh
. "$HERE/lib.sh"
# shellcheck source=lab/run-lib.sh
. "$HERE/run-lib.sh"
ALL=(lb1-stop lb1-kill lb1-down)
usage() { echo "usage: lab/active-active.sh [<scenario...>|all]   (scenarios: ${ALL[*]})" >&2; exit 2; }
names=()
for a in "${@:-all}"; do
  if [ "$a" = all ]; then names+=("${ALL[@]}"); continue; fi
  [[ " ${ALL[*]} " == *" $a "* ]] || { echo "active-active: unknown scenario \"$a\"" >&2; usage; }
  names+=("$a")
done
[ -d /proc/sys/net/ipv4/vs ] || { echo "active-active: no IPVS here: run me with lab/vm/run.sh lab/active-active.sh" >&2; exit 2; }
S=$LAB_OUT/active-active
rm -rf "$S" "$LAB_LOGS"; mkdir -p "$S" "$LAB_LOGS"
echo '[]' > "$S/results.json"
T0=$EPOCHREALTIME
RATE=${AA_RATE:-10} LONG=${AA_LONG:-12}
LAST=$((40 - LONG))   # long-lived connections come from the sources after --last (topo: clients .10-.40)
trap 'diag_stop; loadgen_stop 2>/dev/null || true; lab_down > /dev/null 2>&1 || true' EXIT
failures=()

# The active-active group instead of the lab's leader-mode VIP group (everything else as in config.lab.yaml).
# pathFenceMs 30000: the TCG VM stalls event loops for 10-20 s (lab/README.md), as the 30 s lease does.
aa_config() {
  write_config
  awk '/^vipGroups:/ { skip = 1; print; print "  - name: ingress\n    role: ingress\n    mode: active-active\n    paths:\n      - { node: lb1, address: 192.0.2.21/24, interface: client }\n      - { node: lb1, address: 10.1.0.251/24, interface: firewall }\n      - { node: lb2, address: 192.0.2.22/24, interface: client }\n      - { node: lb2, address: 10.1.0.252/24, interface: firewall }\n    pathFenceMs: 30000\n    garp: { count: 2, repeatAfterMs: 3000, refreshIntervalMs: 5000 }\n"; next }
       skip && /^[a-z]/ { skip = 0 }
       !skip' "$CFG" > "$CFG.aa" && mv "$CFG.aa" "$CFG"
  grep -q 'mode: active-active' "$CFG" || { echo "aa_config: could not write the active-active group into $CFG" >&2; return 1; }
}

# ECMP at ir (towards the LBs) and at the firewalls (replies towards the clients), neighbour-aware.
aa_topo() {
  local n
  for n in ir fw1 fw2; do
    ip netns exec "$n" sh -e -c 'echo 1 > /proc/sys/net/ipv4/fib_multipath_use_neigh; echo 1 > /proc/sys/net/ipv4/fib_multipath_hash_policy'
  done
  ip -n ir -batch - <<'EOF'
ntable change name arp_cache dev eth1 base_reachable 1000 delay_probe 200 retrans 200 ucast_probes 2
route replace 198.51.100.0/24 nexthop via 192.0.2.21 dev eth1 nexthop via 192.0.2.22 dev eth1
EOF
  for n in fw1 fw2; do
    ip -n "$n" -batch - <<'EOF'
ntable change name arp_cache dev eth0 base_reachable 1000 delay_probe 200 retrans 200 ucast_probes 2
route replace 203.0.113.0/24 nexthop via 10.1.0.251 dev eth0 nexthop via 10.1.0.252 dev eth0
EOF
  done
}

# Like lab_up (lab/run-lib.sh), for this topology: both LBs must end up holding their paths.
aa_up() {
  local s
  rm -rf "$SW_DIR"; mkdir -p "$SW_DIR" "$LAB_LOGS"
  aa_config
  say "building the sandwich (lab/topo.sh, no VIP) with ECMP at ir and the firewalls; copying the controller to tmpfs"
  stage_app &
  local stage=$!
  "$LAB_REPO/lab/topo.sh" up --vip none
  aa_topo
  wait "$stage" || return 1
  say "starting etcd ($ETCD_N member(s))"
  ETCD_MEMBERS=$ETCD_N ETCD_HEARTBEAT_MS=${ETCD_HEARTBEAT_MS:-300} ETCD_ELECTION_MS=${ETCD_ELECTION_MS:-3000} "$LAB_REPO/lab/etcd.sh" start
  # The watchers' "vip" column is each LB's own path address here.
  rm -f "$LAB_RUN/watch.stop"; mkdir -p "$LAB_RUN/watch"
  for n in 1 2; do
    ip netns exec "lb$n" /usr/bin/python3 "$LAB_REPO/lab/watch.py" --name "lb$n" --vip "192.0.2.2$n" --out "$S/watch.lb$n" \
      --state "$LAB_RUN/watch/lb$n" --stop-file "$LAB_RUN/watch.stop" > "$LAB_LOGS/watch-lb$n.out" 2>&1 < /dev/null &
  done
  say "starting sandwich run for er1, lb1 and lb2"
  node_start er1; node_start lb1
  s=$(POLL=1 wait_until "${LAB_START_TIMEOUT_S:-900}" "lb1 is ingress leader" is_leader lb1) || return 1
  node_start lb2
  s=$(POLL=1 wait_until 600 "both LBs hold their path addresses" paths_on) || return 1
  say "both LBs hold their path addresses (${s}s after lb1 led)"
  s=$(wait_until 300 "both LBs list fw1 and fw2 at weight 100" both_weights_are 100 100) || return 1
  say "IPVS on both LBs lists both firewalls at weight 100"
}
paths_on() { has_vip lb1 && has_vip lb2; }
ir_neigh() { ip -n ir neigh show "$1" dev eth1 2>/dev/null | awk '{ print $NF; exit }'; }
# ir_uses <path address>: ir's ECMP route may pick that next hop (its neighbour entry is not FAILED or INCOMPLETE;
# no entry yet counts as usable, as for the kernel). After a fault ir keeps a FAILED entry until the LB's next
# gratuitous ARP, and every new flow meanwhile hashes to the other LB.
ir_uses() { case $(ir_neigh "$1") in FAILED | INCOMPLETE) return 1 ;; esac; }
normal() { paths_on && both_weights_are 100 100 && ir_uses 192.0.2.21 && ir_uses 192.0.2.22; }

# lbmap <out.json>: client address:port → the LB whose IPVS carries that connection now. A connection that
# moved LB in an earlier scenario has an entry on both; the one carrying it has just been refreshed (expiry
# near 900 s), the other's counts down, so the larger expiry wins (both within 5 s: listed as both).
lbmap() {
  local n
  for n in lb1 lb2; do ip netns exec "$n" cat /proc/net/ip_vs_conn > "$DIR/ip_vs_conn.$n" 2>/dev/null || true; done
  /usr/bin/python3 - "$DIR" "$1" <<'EOF'
import json, sys, socket, struct
d, out = sys.argv[1], sys.argv[2]
m = {}
for lb in ("lb1", "lb2"):
    for line in open(f"{d}/ip_vs_conn.{lb}"):
        p = line.split()
        if len(p) < 9 or p[0] != "TCP" or p[7] != "ESTABLISHED":
            continue
        src = "%s:%d" % (socket.inet_ntoa(struct.pack("!I", int(p[1], 16))), int(p[2], 16))
        e = m.setdefault(src, {})
        e[lb] = max(e.get(lb, 0), int(p[8]))
res = {}
for src, e in m.items():
    best = max(e.values())
    res[src] = sorted(lb for lb, x in e.items() if best - x <= 5)
json.dump(res, open(out, "w"))
EOF
}

# keptby <requests.jsonl> <lbmap.json>: per LB, long-lived connections kept / carried (JSON).
keptby() {
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
lbmap = json.load(open(sys.argv[2]))
end = next((r for r in recs if r.get("k") == "end"), {"long": {}})
ports = {}   # a long-lived connection's source address -> its source port(s)
for r in recs:
    if r.get("k") == "long" and "port" in r:
        ports.setdefault(r["src"], set()).add(r["port"])
out = {"lb1": {"kept": 0, "carried": 0, "lost": []}, "lb2": {"kept": 0, "carried": 0, "lost": []}, "unknown": {"kept": 0, "carried": 0, "lost": []}}
for src, state in end["long"].items():
    lbs = sorted({lb for port in ports.get(src, ()) for lb in lbmap.get(f"{src}:{port}", [])})
    k = lbs[0] if len(lbs) == 1 else "unknown"
    out[k]["carried"] += 1
    if state == "alive":
        out[k]["kept"] += 1
    else:
        out[k]["lost"].append(f"{src} ({state})")
print(json.dumps(out))
EOF
}

SC='' DIR='' M='' R='' problems=() notes=() FAILED_AT=''
need() {
  local what=$1; shift
  if "$@"; then return 0; fi
  problems+=("$what"); say "  PROBLEM: $what" >&2; return 1
}
took() { el "$1" "$EPOCHREALTIME"; }
note() { notes+=("$1"); say "  $1"; }
# ir_failed_after <t>: polls ir's neighbour entry for lb1's path until FAILED; notes when.
ir_path_failed() { [ "$(ir_neigh 192.0.2.21)" = FAILED ]; }
ir_path_ok() { ! ir_path_failed; }
lb1_path_gone() { ! has_vip lb1; }
wait_ir_failed() {
  local t=$1 s
  if s=$(POLL=0.5 wait_until 120 "ir marks lb1's path FAILED" ir_path_failed); then
    FAILED_AT=$(el "$t" "$EPOCHREALTIME"); note "ir's neighbour entry for lb1's path 192.0.2.21 FAILED ${FAILED_AT}s after the fault (polled every 0.5 s)"
  else problems+=("ir never marked lb1's path FAILED"); fi
}
# Evidence for ir's view of lb1's path: every ARP on ir's LB-side link and every change of ir's
# neighbour entries (ir-arp.txt, ir-neigh.txt in the scenario's directory).
DIAG=()
diag_start() {
  ip netns exec ir tcpdump -n -e -tt -l -i eth1 arp > "$DIR/ir-arp.txt" 2> /dev/null < /dev/null & DIAG+=($!)
  ip -n ir -ts monitor neigh dev eth1 > "$DIR/ir-neigh.txt" 2>&1 < /dev/null & DIAG+=($!)
}
diag_stop() { ((${#DIAG[@]})) && kill "${DIAG[@]}" 2> /dev/null; DIAG=(); return 0; }
restart_lb1() {
  local t; t=$EPOCHREALTIME; mark "$M" "phase:restart" "lb1's controller restarted"
  node_start lb1
  POLL=1 need "lb1 holds its path again" wait_until 600 "lb1's path address back" has_vip lb1 > /dev/null && note "lb1 holds its path again $(took "$t")s after the restart"
}

sc_lb1-stop() {
  local t stopper; t=$EPOCHREALTIME; mark "$M" "phase:fault" "SIGTERM lb1's controller (path withdrawn)"
  node_stop lb1 60 & stopper=$!
  POLL=0.2 need "lb1's path addresses removed" wait_until 30 "lb1's path gone" lb1_path_gone > /dev/null && note "lb1's path addresses gone $(took "$t")s after SIGTERM"
  wait_ir_failed "$t"
  wait "$stopper" || true
  note "lb1's controller exited $(took "$t")s after SIGTERM"
  sleep 8
  restart_lb1
}
sc_lb1-kill() {
  local t; t=$EPOCHREALTIME; mark "$M" "phase:fault" "kill -9 lb1's controller (path fence expires after 30 s)"
  node_signal lb1 KILL
  wait_ir_failed "$t"
  has_vip lb1 && note "lb1 still has its path addresses (its controller is dead; the path fence keeps its kernel silent)"
  sleep 8
  restart_lb1
}
cables() { ip link set "lb1-eth0" "$1"; ip link set "lb1-eth1" "$1"; }
sc_lb1-down() {
  local t; t=$EPOCHREALTIME; mark "$M" "phase:fault" "lb1's data cables pulled (eth0, eth1)"
  cables down
  wait_ir_failed "$t"
  sleep 8
  t=$EPOCHREALTIME; mark "$M" "phase:repair" "lb1's cables back"
  cables up
  POLL=1 need "lb1 holds its path again" wait_until 600 "lb1's path address back" has_vip lb1 > /dev/null && note "lb1 holds its path again $(took "$t")s after the cables came back"
  need "ir uses lb1's path again" wait_until 120 "ir's entry valid" ir_path_ok > /dev/null && note "ir's entry for lb1's path valid again $(took "$t")s after the cables came back"
}

run_scenario() {
  SC=$1 DIR=$S/$1 problems=() notes=() FAILED_AT=''
  mkdir -p "$DIR"; M=$DIR/markers.jsonl R=$DIR/requests.jsonl
  say "== $SC"
  POLL=1 wait_until 600 "normal state before $SC (both paths held and used by ir, both firewalls at 100 on both LBs)" normal > /dev/null \
    || problems+=("not back to normal before the scenario")
  diag_start
  loadgen_start "$R" 900 --rate "$RATE" --first 10 --last "$LAST" --long "$LONG" --timeout 5
  POLL=1 wait_until 90 "$LONG long-lived connections up" loadgen_long_up "$R" "$LONG" > /dev/null \
    || problems+=("long-lived connections not up before the fault")
  sleep 2
  lbmap "$DIR/lbmap.json"
  mark "$M" "phase:baseline" "established IPVS connections: lb1 $(grep -o lb1 "$DIR/lbmap.json" | grep -c . || true) / lb2 $(grep -o lb2 "$DIR/lbmap.json" | grep -c . || true)"
  sleep 4
  "sc_$SC" || true
  sleep 4
  mark "$M" end "load stopped"
  loadgen_stop
  diag_stop
  local ev=() f kept
  for f in "$SW_DIR"/*/events.log; do ev+=(--events "$f"); done
  /usr/bin/python3 "$HERE/analyze.py" --records "$R" --markers "$M" "${ev[@]}" --title "active-active $SC" \
    --json "$DIR/analysis.json" --svg "$DIR/timeline.svg" --md "$DIR/table.md" > /dev/null || problems+=("analysis failed")
  kept=$(keptby "$R" "$DIR/lbmap.json") || kept='{}'
  echo "$kept" > "$DIR/kept.json"
  note "long-lived kept: lb2 $(jq -r '"\(.lb2.kept)/\(.lb2.carried)"' <<< "$kept"), lb1 $(jq -r '"\(.lb1.kept)/\(.lb1.carried)"' <<< "$kept")$(jq -r 'if .unknown.carried > 0 then ", unmapped \(.unknown.kept)/\(.unknown.carried)" else "" end' <<< "$kept")"
  # The goal: the other LB's connections all survive.
  need "every long-lived connection on lb2 kept" jq -e '.lb2.kept == .lb2.carried and .lb2.carried > 0' <<< "$kept" > /dev/null || true
  local pj nj
  pj=$(printf '%s\n' "${problems[@]}" | jq -R . | jq -s 'map(select(length > 0))')
  nj=$(printf '%s\n' "${notes[@]}" | jq -R . | jq -s 'map(select(length > 0))')
  jq --arg n "$SC" --argjson p "$pj" --argjson notes "$nj" --argjson kept "$kept" --arg failedAt "$FAILED_AT" --slurpfile a "$DIR/analysis.json" \
    '. + [{name: $n, ok: ($p | length == 0), problems: $p, notes: $notes, keptByLb: $kept, irFailedAfterS: $failedAt,
      requests: $a[0].requests, failed: $a[0].failed, long: $a[0].long, phases: $a[0].phases}]' \
    "$S/results.json" > "$S/results.json.tmp" && mv "$S/results.json.tmp" "$S/results.json"
  sed 's/^/    /' "$DIR/table.md"
  if ((${#problems[@]})); then failures+=("$SC: ${problems[*]}"); say "== $SC: FAIL (${problems[*]})"; else say "== $SC: ok"; fi
}

say "active-active: ${names[*]}; kernel $(uname -r), qemu TCG; timing from lab/config.lab.yaml, pathFenceMs 30000"
aa_up || { say "FAIL: the controllers did not bring the active-active sandwich up"; exit 1; }
for n in "${names[@]}"; do run_scenario "$n"; done
watch_stop

{
  echo "# sandwich active-active LB pair — $(date -u +%Y-%m-%dT%H:%MZ), kernel $(uname -r), qemu TCG"
  echo
  echo "ECMP at ir over lb1/lb2's path addresses (fib_multipath_use_neigh=1, L4 hash, ARP base_reachable 1000 ms,"
  echo "delay_probe 200 ms, retrans 200 ms, 2 unicast probes); replies from the firewalls by ECMP over the LBs' firewall-side"
  echo "paths. Load per scenario: $RATE new HTTP requests/s (5 s timeout) + $LONG long-lived keep-alive connections (1 request/s)."
  echo
  echo "| scenario | long-lived kept on lb2 | long-lived kept on lb1 (moved to lb2) | requests | failed | ir marked lb1's path FAILED after (s) |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  jq -r '.[] | "| \(.name) | \(.keptByLb.lb2.kept)/\(.keptByLb.lb2.carried) | \(.keptByLb.lb1.kept)/\(.keptByLb.lb1.carried) | \(.requests) | \(.failed) | \(.irFailedAfterS) |"' "$S/results.json"
  echo
  echo "| scenario | phase | what | requests | failed | until every new request succeeds (s) | long-lived lost / alive |"
  echo "| --- | --- | --- | ---: | ---: | ---: | ---: |"
  jq -r '.[] | .name as $n | .phases[] | "| \($n) | \(.name) | \(.detail) | \(.requests) | \(.failed) | \(.recoverySeconds // "never") | \(.longLost) / \(.longAlive) |"' "$S/results.json"
  echo
  jq -r '.[] | "- **\(.name)** \(if .ok then "ok" else "FAILED: " + (.problems | join("; ")) end). \(.notes | join(". "))"' "$S/results.json"
} > "$S/summary.md"
say "summary:"; sed 's/^/    /' "$S/summary.md"
say "active-active: $(el "$T0" "$EPOCHREALTIME")s"
if ((${#failures[@]})); then say "active-active: FAIL: ${failures[*]}"; exit 1; fi
say "active-active: PASS"
