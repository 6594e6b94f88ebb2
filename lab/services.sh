#!/usr/bin/env bash
# Several services and IPv6 under load, with real IPVS, inside the VM (issue 8, parts 1 and 2):
#   lab/vm/run.sh lab/services.sh 1500 [-- <phase...>]
#   lab/services.sh --report      (anywhere) the analysis and summary again from $LAB_OUT/services
# The dual-stack lab (lab/topo.sh up --ipv6 --services; lab/config.services.yaml): four fwmark services on
# fw1/fw2 — web (1, IPv4 tcp/80), web6 (6, IPv6 tcp/80), https (3, IPv4+IPv6 tcp/443), echo (7, IPv4+IPv6
# udp/7) — the IPv6 VIPs in the VIP group, IPv6 probes and egress tables. One load generator for the
# whole run (lab/loadgen.py, one process): six streams, one per service and family — web 3/s + 4
# long-lived, web6 2/s + 4 long-lived, https, https6, echo, echo6 1/s each (UDP: one datagram and its echo).
# Phases, in this order (default: all; name some to run fewer):
#   https-fw1    fw1 drops only tcp/443 (IPv4 and IPv6): fw1 leaves https and https6 on both LBs, stays in
#                web, web6, echo and echo6; er1's tables 101 stay via fw1; then repaired
#   failover     `sandwich failover --to <other LB>` over IPv4 and IPv6: both VIPs move, the IPv6 one answered by
#                the new holder only (lab/ndpwatch.py), ir's neighbour entry follows its unsolicited NA
#   fw1-blackhole  fw1 drops everything (iptables and ip6tables FORWARD): out of every service on both LBs,
#                er1's tables 101 via fw2 in both families; then repaired
#   prefix       a second sandwich (cluster lab2, prefix /sandwich/lab2/) in the same etcd: `sandwich drain
#                fw1` there; this sandwich must not see it (fw1 stays in service; no lab2 key under /sandwich/lab/)
#   leader-kill  kill -9 of the VIP holder's controller: the other LB takes both VIPs; restarted as standby
# A phase that would start after LAB_SERVICES_BUDGET_S (default 1150) seconds is skipped (and reported), so that
# the analysis fits in the VM's timeout.
# Dual VIP, in every phase: two LBs answering ARP for 192.0.2.254 (lab/arpwatch.py) or neighbour
# solicitations for 2001:db8:0:1::254 (lab/ndpwatch.py) for the same request, as ir sees them: must be 0.
# Writes $LAB_OUT/services/{results.json,summary.md} and per stream <stream>/{analysis.json,table.md,timeline.svg}.
# Exit status 1 if an essential check failed (listed in summary.md), 2 for usage errors.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LAB_IPV6=1 LAB_SERVICES=1 LAB_CONFIG=lab/config.services.yaml
export LAB_ETCD_MEMBERS=${LAB_ETCD_MEMBERS:-1}   # one member: three idle ones take a third of the VM (lab/README.md); no phase needs three
export LAB_WATCH_ARGS="--vip6 2001:db8:0:1::254 --svc web6=6/6 --svc https=3 --svc https6=3/6 --svc echo=7 --svc echo6=7/6"
# shellcheck source=lab/lib.sh
. "$HERE/lib.sh"
# shellcheck source=lab/run-lib.sh
. "$HERE/run-lib.sh"
ALL=(https-fw1 failover fw1-blackhole prefix leader-kill)
S=$LAB_OUT/services
M=$S/markers.jsonl
T0=$EPOCHREALTIME
problems=() notes=() PH=''
need() { # need <what> <command...>: an essential check
  local what=$1; shift
  if "$@"; then return 0; fi
  problems+=("${PH:+$PH: }$what"); say "  PROBLEM: $what" >&2; return 1
}
note() { notes+=("${PH:+$PH: }$1"); say "  $1"; }
took() { el "$1" "$EPOCHREALTIME"; }

# Streams: name proto family host port first last rate long.
# 9 new requests/s in all: with 16/s (5, 3, 2 x 4) the first run saturated the VM (probes "no result within
# 1800 ms" from both LBs for both firewalls, every stream timing out for ~100 s; docs/lab-results.md).
STREAMS=(
  "web tcp 4 198.51.100.10 80 10 34 3 4"
  "web6 tcp 6 2001:db8:100::10 80 10 30 2 4"
  "https tcp 4 198.51.100.10 443 10 34 1 0"
  "https6 tcp 6 2001:db8:100::10 443 10 34 1 0"
  "echo udp 4 198.51.100.10 7 10 34 1 0"
  "echo6 udp 6 2001:db8:100::10 7 10 34 1 0"
)
rec() { echo "$S/$1.jsonl"; }
rate_of() { local st n r; for st in "${STREAMS[@]}"; do read -r n _ _ _ _ _ _ r _ <<< "$st"; [ "$n" = "$1" ] && echo "$r"; done; }

# Service weights and the IPv6 VIP, from the LB watchers' second state file (lab/watch.py --svc/--vip6).
svc_w() { local n a b; while read -r n a b; do [ "$n" = "$2" ] && { echo "$a $b"; return 0; }; done < "$LAB_RUN/watch/$1.svc" 2>/dev/null; echo "- -"; }
has_vip6() { local n v; read -r n v < "$LAB_RUN/watch/$1.svc" 2>/dev/null && [ "$n" = vip6 ] && [ "$v" = 1 ]; }
# svc_are <w1> <w2> <service...>: those weights for fw1/fw2 in every named service on both LBs (web = FWM 1).
svc_are() {
  local w1=$1 w2=$2 lb s; shift 2
  for lb in lb1 lb2; do for s in "$@"; do
    if [ "$s" = web ]; then weights_are "$lb" "$w1" "$w2" || return 1
    else [ "$(svc_w "$lb" "$s")" = "$w1 $w2" ] || return 1; fi
  done; done
}
ALLSVC=(web web6 https https6 echo echo6)
vips_on() { vip_on "$1" "$2" && has_vip6 "$1" && ! has_vip6 "$2"; }
holder() { if vips_on lb1 lb2; then echo lb1; elif vips_on lb2 lb1; then echo lb2; else echo none; fi; }
other() { [ "$1" = lb1 ] && echo lb2 || echo lb1; }
table6_via() { ip -n er1 -6 route show table "$1" 2>/dev/null | awk '$1 == "default" { print $3; exit }'; }
tables_are() { # tables_are <via for 101: fw1|fw2>: er1's table 101 via that firewall in both families, 102 via fw2
  local n=${1#fw}
  if [ "$(table_via 101)" = "10.2.0.1$n" ] && [ "$(table_via 102)" = 10.2.0.12 ] \
    && [ "$(table6_via 101)" = "2001:db8:2::1$n" ] && [ "$(table6_via 102)" = "2001:db8:2::12" ]; then return 0; fi
  sleep 1.5; return 1
}
normal() { svc_are 100 100 "${ALLSVC[@]}" && [ "$(holder)" != none ] && tables_are fw1; }
# ok_since <stream> <unix_t> <n>: the stream's last n requests started after t all succeeded (jq: IPv6 sources have colons).
ok_since() {
  tail -n 300 "$(rec "$1")" | jq -s -e --argjson t "$2" --argjson n "$3" \
    '[.[] | select(.k == "req" and .t >= $t)] | length >= $n and (.[-$n:] | all(.ok))' > /dev/null 2>&1
}
all_ok_since() { # all_ok_since <unix_t> <n> [stream...]: ok_since for every (named) stream
  local t=$1 n=$2 s; shift 2
  [ $# -gt 0 ] || set -- "${ALLSVC[@]}"
  for s in "$@"; do ok_since "$s" "$t" "$n" || return 1; done
}
neigh6() { ip -n ir -6 neigh show 2001:db8:0:1::254 dev eth1 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1) }'; }
mac_of() { ip -n "$1" -br link show eth0 | awk '{ print $3 }'; }
ndp_is() { [ "$(cat "$LAB_RUN/watch/ndp" 2>/dev/null)" = "$1" ]; }       # ndp_is <"lb1"|"lb2"|"lb1 lb2"|->
neigh6_is() { [ "$(neigh6)" = "$1" ]; }
vips_held_by() { has_vip "$1" && has_vip6 "$1"; }
load_up() { all_ok_since 0 3 && loadgen_long_up "$(rec web)" 4 && [ "$(grep -c '"k":"long".*"ok":true' "$(rec web6)")" -ge 4 ]; }
# fw_drop / fw_undrop <fw> [match...]: insert / delete a DROP at the top of FORWARD, IPv4 and IPv6.
fw_drop() { local f=$1; shift; ip netns exec "$f" iptables -I FORWARD 1 "$@" -j DROP -m comment --comment lab-svc; ip netns exec "$f" ip6tables -I FORWARD 1 "$@" -j DROP -m comment --comment lab-svc; }
fw_undrop() { local f=$1; shift; ip netns exec "$f" iptables -D FORWARD "$@" -j DROP -m comment --comment lab-svc; ip netns exec "$f" ip6tables -D FORWARD "$@" -j DROP -m comment --comment lab-svc; }
phase() { PH=$1; mark "$M" "phase:$1" "$2"; say "== $1: $2"; }


ph_prefix() {
  local t c2=$LAB_RUN/config-lab2.yaml out keys
  mkdir -p "$LAB_RUN/lab2"
  sed -e 's/^cluster: lab$/cluster: lab2/' -e "s#$LAB_OUT/sandwich/#$LAB_RUN/lab2/#g" "$CFG" > "$c2"
  t=$EPOCHREALTIME; phase prefix "a second sandwich (cluster lab2) in the same etcd: sandwich drain fw1 there"
  out=$(sandwich drain fw1 --config "$c2" --reason "another sandwich" 2>&1) || true
  note "lab2: $out (CLI $(took "$t")s)"
  keys=$(ETCDCTL_API=3 etcdctl --endpoints "http://10.9.0.1:2379" get --prefix --keys-only /sandwich/ 2>/dev/null | grep -v '^$' || true)
  need "lab2's drain key written under /sandwich/lab2/" grep -qx '/sandwich/lab2/drain/fw1' <<< "$keys"
  need "nothing of lab2 under /sandwich/lab/" [ "$(grep -c '^/sandwich/lab/.*lab2' <<< "$keys")" = 0 ]
  note "etcd keys: $(grep -c '^/sandwich/lab/' <<< "$keys") under /sandwich/lab/, $(grep -c '^/sandwich/lab2/' <<< "$keys") under /sandwich/lab2/ ($(grep '^/sandwich/lab2/' <<< "$keys" | tr '\n' ' '))"
  sleep 15   # a drain this sandwich saw would be decided at once (watch) and applied within the reconcile interval (15 s)
  need "fw1 still in every service on both LBs (lab did not see lab2's drain)" svc_are 100 100 "${ALLSVC[@]}"
  # lab2's drain stays in etcd for the rest of the run: no later phase may see fw1 drained either.
  sleep 1
}

ph_https-fw1() {
  local t d
  t=$EPOCHREALTIME; phase https-fw1 "fw1 drops tcp/443 only (iptables and ip6tables)"
  fw_drop fw1 -p tcp --dport 443
  d=$(wait_until 120 "fw1 at 0 in https and https6" svc_are 0 100 https https6) && note "fw1 at weight 0 in https and https6 on both LBs after ${d}s"
  need "fw1 leaves https and https6 on both LBs" [ -n "$d" ]
  need "fw1 stays in web, web6, echo, echo6 on both LBs" svc_are 100 100 web web6 echo echo6
  need "er1's tables stay via fw1 (IPv4 and IPv6)" wait_until 10 "tables" tables_are fw1 > /dev/null
  POLL=1 need "new https and https6 requests succeed with fw1 out of https" wait_until 90 "https ok" \
    all_ok_since "$t" 10 https https6 > /dev/null && note "https and https6 requests all good again $(took "$t")s after the fault"
  local why
  why=$(grep -h '"event":"verdict"' "$SW_DIR"/*/events.log 2>/dev/null | grep '"firewall":"fw1"' | grep -o '"reason":"[^"]*' | grep 'service https' | tail -n 1 | cut -c11-)
  note "verdict: ${why:-none logged}"
  sleep 3
  t=$EPOCHREALTIME; phase https-repair "fw1 forwards tcp/443 again"
  fw_undrop fw1 -p tcp --dport 443
  d=$(wait_until 150 "fw1 back in https" svc_are 100 100 https https6) && note "fw1 back at 100 in https and https6 after ${d}s (path-https rise 3 x 2 s, hold-down 10 s)"
  need "fw1 back in https and https6" [ -n "$d" ]
}

ph_failover() {
  local from to t d mac
  from=$(holder); to=$(other "$from")
  t=$EPOCHREALTIME; phase failover "sandwich failover --to $to (IPv4 and IPv6 VIPs)"
  note "$(sandwich failover --to "$to" --wait 60000 --config "$CFG" 2>&1 | tail -n 1) (CLI took $(took "$t")s)"
  d=$(wait_until 120 "both VIPs on $to only" vips_on "$to" "$from") && note "IPv4 and IPv6 VIPs on $to only $(took "$t")s after the command started"
  need "both VIPs move to $to" [ -n "$d" ]
  need "$to answers neighbour solicitations for the IPv6 VIP, alone" wait_until 30 "ndp answered by $to" ndp_is "$to" > /dev/null
  mac=$(mac_of "$to")
  d=$(wait_until 30 "ir's neighbour entry for the IPv6 VIP -> $to" neigh6_is "$mac") && note "ir's neighbour entry for 2001:db8:0:1::254 is $to's MAC $(took "$t")s after the command started"
  need "ir's IPv6 neighbour entry follows to $to ($mac)" [ -n "$d" ]
  POLL=1 need "traffic of every stream through $to" wait_until 90 "all ok" all_ok_since "$t" 10 > /dev/null
}

ph_leader-kill() {
  local from to t d
  from=$(holder); to=$(other "$from")
  t=$EPOCHREALTIME; phase leader-kill "kill -9 of $from's controller"
  node_signal "$from" KILL
  d=$(wait_until 150 "both VIPs on $to" vips_held_by "$to") && note "$to holds both VIPs $(took "$t")s after the kill (lease TTL 30 s)"
  need "$to takes both VIPs" [ -n "$d" ]
  need "$to alone answers for the IPv6 VIP" wait_until 30 "ndp answered by $to" ndp_is "$to" > /dev/null
  POLL=1 need "traffic of every stream through $to" wait_until 90 "all ok" all_ok_since "$t" 10 > /dev/null && note "every stream good $(took "$t")s after the kill"
  t=$EPOCHREALTIME; phase restart "$from's controller restarted"
  node_start "$from"
  need "$from releases the VIPs after its restart" wait_until 300 "VIPs on $to only" vips_on "$to" "$from" > /dev/null && note "$from restarted as standby, both VIPs on $to only, $(took "$t")s after the restart"
}

ph_fw1-blackhole() {
  local t d
  t=$EPOCHREALTIME; phase fw1-blackhole "fw1 black-holed (iptables and ip6tables FORWARD DROP)"
  fw_drop fw1
  d=$(wait_until 120 "fw1 at 0 everywhere" svc_are 0 100 "${ALLSVC[@]}") && note "fw1 at weight 0 in every service on both LBs after ${d}s"
  need "fw1 leaves every service on both LBs" [ -n "$d" ]
  d=$(wait_until 120 "er1 tables 101 via fw2" tables_are fw2) && note "er1 table 101 via fw2 in IPv4 and IPv6 after $(took "$t")s"
  need "er1's table 101 via fw2 in both families" [ -n "$d" ]
  POLL=1 need "every stream recovers with fw1 down" wait_until 90 "all ok" all_ok_since "$t" 10 > /dev/null
  sleep 3
  t=$EPOCHREALTIME; phase fw1-repair "fw1 forwards again"
  fw_undrop fw1
  d=$(wait_until 150 "fw1 back everywhere" svc_are 100 100 "${ALLSVC[@]}") && note "fw1 back at 100 in every service after ${d}s"
  need "fw1 back in every service" [ -n "$d" ]
  need "er1's table 101 back via fw1 in both families" wait_until 90 "tables via fw1" tables_are fw1 > /dev/null
}

diag() { # the kernel state behind a failed check, for the logs
  local n
  for n in lb1 lb2; do
    echo "== $n"; ip netns exec "$n" ipvsadm -Ln; ip -n "$n" -6 rule; ip -n "$n" -6 addr show; ip -n "$n" -6 route show table all
    ip netns exec "$n" ip6tables -t mangle -L -v -n; ip netns exec "$n" nft list ruleset; cat "$LAB_RUN/watch/$n.svc"
  done
  echo "== er1"; ip -n er1 -6 rule; ip -n er1 -6 route show table all; ip netns exec er1 ip6tables -t mangle -L -v -n
  for n in fw1 fw2; do echo "== $n"; ip netns exec "$n" ip6tables -L FORWARD -v -n; ip netns exec "$n" iptables -L FORWARD -v -n; done
  echo "== ir"; ip -n ir -6 neigh; ip -n ir neigh
}
live() { # live <phase...>: the sandwich, the load and the phases in the VM; leaves the records in $S
  [ -d /proc/sys/net/ipv4/vs ] || { echo "services: no IPVS here: run me with lab/vm/run.sh lab/services.sh" >&2; exit 2; }
  rm -rf "$S" "$LAB_LOGS"; mkdir -p "$S" "$LAB_LOGS"
  trap 'loadgen_stop 2>/dev/null || true; touch "$LAB_RUN/watch.stop"; lab_down > /dev/null 2>&1 || true' EXIT
  local macs t st n proto fam host port first last rate long pre extra=() ph
  say "services lab: phases $*; kernel $(uname -r), qemu TCG; config $LAB_CONFIG"
  lab_up "$S/watch" || { say "FAIL: the controllers did not bring the sandwich up"; exit 1; }
  macs=lb1=$(mac_of lb1),lb2=$(mac_of lb2)
  ip netns exec ir /usr/bin/python3 "$LAB_REPO/lab/ndpwatch.py" --iface eth1 --macs "$macs" --out "$S/watch.ndp" \
    --state "$LAB_RUN/watch/ndp" --stop-file "$LAB_RUN/watch.stop" --max 3600 > "$LAB_LOGS/ndpwatch.out" 2>&1 < /dev/null &
  t=$EPOCHREALTIME
  need "every service at 100/100 on both LBs, both VIPs on lb1, er1's tables in both families" \
    wait_until 300 "normal (services, VIPs, tables)" normal > /dev/null && note "services, IPv6 VIP and IPv6 tables in place $(took "$t")s after lb1 held the IPv4 VIP"
  need "ndpwatch running" wait_until 120 "ndpwatch state" test -f "$LAB_RUN/watch/ndp" > /dev/null

  extra=()
  for st in "${STREAMS[@]}"; do
    read -r n proto fam host port first last rate long <<< "$st"
    pre=203.0.113.; [ "$fam" = 6 ] && pre=2001:db8:c::
    [ "$n" = web ] && continue
    extra+=(--extra "name=$n,proto=$proto,host=$host,port=$port,prefix=$pre,first=$first,last=$last,rate=$rate,long=$long,out=$(rec "$n")")
  done
  loadgen_start "$(rec web)" 1200 --rate 3 --first 10 --last 34 --long 4 "${extra[@]}"
  if ! POLL=1 need "load flowing on every stream, long-lived connections up" wait_until 120 "load" load_up > /dev/null; then
    set --   # no phase without a working baseline
    for st in "${STREAMS[@]}"; do read -r n _ <<< "$st"; note "$n at the start: $(grep -c '"ok":true' "$(rec "$n")") ok, $(grep -c '"ok":false' "$(rec "$n")") failed, last error: $(grep -o '"err":"[^"]*' "$(rec "$n")" | tail -n 1 | cut -c8-)"; done
  fi
  sleep 2
  phase baseline "holder $(holder)"
  sleep 6
  for ph in "$@"; do
    # Leave time for the analysis within the VM's timeout: a phase whose waits all time out takes ~10 min.
    if (( ${EPOCHREALTIME%.*} - ${T0%.*} > ${LAB_SERVICES_BUDGET_S:-1150} )); then problems+=("$ph: skipped (LAB_SERVICES_BUDGET_S ${LAB_SERVICES_BUDGET_S:-1150} s spent)"); continue; fi
    "ph_$ph" || true
    PH=''
    sleep 4
  done
  mark "$M" end "load stopped"
  loadgen_stop
  ((${#problems[@]} == 0)) || diag > "$LAB_LOGS/diag.txt" 2>&1
  touch "$LAB_RUN/watch.stop"
  sleep 3
  nodes_stop_all
  "$LAB_REPO/lab/etcd.sh" stop > /dev/null 2>&1 || true

}

report() { # the analysis per stream and the summary, from the files in $S (no controller, no VM needed)
  # Analysis per stream, after the controllers stopped (the VM has no CPU to spare while they run):
  # IPv4 streams against the IPv4 VIP (watch.py's "vip", arpwatch), IPv6 ones against the IPv6 VIP (ndpwatch).
  for n in lb1 lb2; do jq -c 'if has("vip6") then .vip = .vip6 else . end' "$S/watch.$n" > "$S/watch6.$n" || true; done
  ev=()
  for f in "$SW_DIR"/*/events.log; do ev+=(--events "$f"); done
  echo '[]' > "$S/results.json"
  for st in "${STREAMS[@]}"; do
    read -r n proto fam _ <<< "$st"
    mkdir -p "$S/$n"
    if [ "$fam" = 6 ]; then w=watch6 arp=$S/watch.ndp; else w=watch arp=$S/watch.arp; fi
    /usr/bin/python3 "$HERE/analyze.py" --records "$(rec "$n")" --vip "$S/$w.lb1" --vip "$S/$w.lb2" --arp "$arp" --markers "$M" \
      "${ev[@]}" --title "services lab: $n ($proto, IPv$fam)" --json "$S/$n/analysis.json" --svg "$S/$n/timeline.svg" --md "$S/$n/table.md" > /dev/null \
      || problems+=("analysis of $n failed")
    if jq --arg n "$n" --arg p "$proto" --arg f "$fam" --slurpfile a "$S/$n/analysis.json" \
      '. + [{stream: $n, proto: $p, family: ("IPv" + $f), requests: $a[0].requests, failed: $a[0].failed, dualVipSeconds: $a[0].dualVipSeconds,
        long: $a[0].long, phases: $a[0].phases}]' "$S/results.json" > "$S/results.tmp"; then mv "$S/results.tmp" "$S/results.json"; fi
  done
  # After the fact: dual VIP 0 in both families; the per-service fault cost nothing to the other services.
  need "no dual VIP (IPv4 ARP, IPv6 ND) in any phase" jq -e 'all(.[]; .dualVipSeconds == 0)' "$S/results.json" > /dev/null || true
  need "every stream answered in the baseline" jq -e 'all(.[]; (.phases[] | select(.name == "baseline") | .failed == 0 and .requests > 0))' "$S/results.json" > /dev/null || true
  if [[ " $* " == *" https-fw1 "* ]]; then
    need "the tcp/443 fault cost web, web6, echo, echo6 no request" \
      jq -e '[.[] | select(.stream | test("^https") | not) | .phases[] | select(.name == "https-fw1" or .name == "https-repair") | .failed] | add == 0' "$S/results.json" > /dev/null || true
  fi
  pj=$(printf '%s\n' "${problems[@]}" | jq -R . | jq -s 'map(select(length > 0))')
  nj=$(printf '%s\n' "${notes[@]}" | jq -R . | jq -s 'map(select(length > 0))')
  jq --argjson p "$pj" --argjson notes "$nj" '{ok: ($p | length == 0), problems: $p, notes: $notes, streams: .}' "$S/results.json" > "$S/results.tmp" && mv "$S/results.tmp" "$S/results.json"
  {
    echo "# sandwich services + IPv6 lab — $(date -u +%Y-%m-%dT%H:%MZ), kernel $(uname -r), qemu TCG"
    echo
    echo "lab/services.sh ($*): lab/topo.sh up --ipv6 --services, lab/config.services.yaml, ${ETCD_N} etcd member(s). Load (one"
    echo "lab/loadgen.py): web $(rate_of web)/s + 4 long-lived (IPv4 tcp/80), web6 $(rate_of web6)/s + 4 long-lived (IPv6 tcp/80), https / https6"
    echo "(tcp/443) and echo / echo6 (udp/7) $(rate_of https)/s each; 2 s timeout. Recovery: seconds from the phase start until every new"
    echo "request of the stream succeeds. dual-VIP: seconds in which two LBs answered the same ARP (IPv4) or neighbour"
    echo "solicitation (IPv6) for the gateway VIP, asked every 0.2 s from ir."
    echo
    echo "Per phase: failed / requests (seconds until every new request succeeds) per stream; long-lived connections"
    echo "lost / alive (web + web6); dual-VIP seconds IPv4 / IPv6."
    echo
    echo "| phase | web | web6 | https | https6 | echo (udp) | echo6 (udp) | long-lived lost / alive | dual-VIP v4 / v6 (s) |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    jq -r '.streams as $s | ($s[0].phases | map(.name))[] as $ph
      | [$s[] | {key: .stream, value: (.phases[] | select(.name == $ph))}] | from_entries as $p
      | "| \($ph) | " + ([("web", "web6", "https", "https6", "echo", "echo6") as $n | $p[$n] | "\(.failed) / \(.requests) (\(.recoverySeconds // "never"))"] | join(" | "))
        + " | \($p.web.longLost + $p.web6.longLost) / \($p.web.longAlive + $p.web6.longAlive) | \($p.web.dualVipSeconds) / \($p.web6.dualVipSeconds) |"' "$S/results.json" || true
    echo
    echo "Per stream:"
    echo
    echo "| phase | stream | requests | failed | until every new request succeeds (s) | long-lived lost / alive | dual-VIP (s) | VIP holder at end (address / answering) |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
    jq -r '.streams as $s | [$s[] | .phases[] | .name] | unique as $names
      | ($s[0].phases | map(.name)) as $order
      | $order[] as $ph | $s[] | .stream as $n | .phases[] | select(.name == $ph)
      | "| \($ph) | \($n) | \(.requests) | \(.failed) | \(.recoverySeconds // "never") | \(.longLost) / \(.longAlive) | \(.dualVipSeconds) | \(.vipHolderAtEnd | join(", ") | if . == "" then "none" else . end) / \(if .arpAnsweringAtEnd == null then "?" else (.arpAnsweringAtEnd | join(", ") | if . == "" then "none" else . end) end) |"' "$S/results.json" || true
    echo
    jq -r '"**\(if .ok then "PASS" else "FAIL: " + (.problems | join("; ")) end)**", "", (.notes[] | "- " + .)' "$S/results.json" || true
  } > "$S/summary.md"
  say "summary:"; sed 's/^/    /' "$S/summary.md"
  say "services: $(el "$T0" "$EPOCHREALTIME")s"
  if ((${#problems[@]})); then say "services: FAIL: ${problems[*]}"; exit 1; fi
  say "services: PASS"
}

if [ "${1:-}" = --report ]; then
  # Again from the files: the live run's problems and notes come from live.json.
  mapfile -t problems < <(jq -r '.problems[]' "$S/live.json")
  mapfile -t notes < <(jq -r '.notes[]' "$S/live.json")
  mapfile -t phs < <(jq -r '.phases[]' "$S/live.json")
  report "${phs[@]}"
else
  [ $# -gt 0 ] || set -- "${ALL[@]}"
  for a in "$@"; do [[ " ${ALL[*]} " == *" $a "* ]] || { echo "services: unknown phase \"$a\" (phases: ${ALL[*]})" >&2; exit 2; }; done
  live "$@"
  pj=$(printf '%s\n' "${problems[@]}" | jq -R . | jq -s 'map(select(length > 0))')
  nj=$(printf '%s\n' "${notes[@]}" | jq -R . | jq -s 'map(select(length > 0))')
  jq -n --argjson p "$pj" --argjson n "$nj" '{problems: $p, notes: $n, phases: $ARGS.positional}' --args "$@" > "$S/live.json"
  report "$@"
fi
