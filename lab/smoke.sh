#!/usr/bin/env bash
# The lab's smoke test, inside the VM:   lab/vm/run.sh lab/smoke.sh
# Seed sandwich (real servers, VIP group on lb1) -> 21 client requests through it, both firewalls
# used, only the VIP holder directs -> probe paths through each firewall -> etcd reachable from
# lb1/lb2/er1 -> drain fw2 (weight 0 + sh-fallback) keeps every client working -> VIP group
# moved to lb2 keeps every client working -> captures real
# ipvsadm/ip outputs as parser fixtures into $LAB_OUT/fixtures (lab/update-fixtures.sh copies
# them to test/unit/fixtures/kernel/ipvs). Exit status 0 only if every check passed.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab/lib.sh
. "$HERE/lib.sh"
FIX=$LAB_OUT/fixtures
rm -rf "$FIX" "$LAB_LOGS"; mkdir -p "$FIX"
T0=$(now)
log "smoke: start (kernel $(uname -r))"
[ -d /proc/sys/net/ipv4/vs ] || fail "no IPVS in this kernel: run me with lab/vm/run.sh lab/smoke.sh"

t=$(now); "$HERE/topo.sh" up --seed; T_TOPO=$(el "$t" "$(now)")

# etcd boots (slowly, in TCG) while the data path is tested.
"$HERE/etcd.sh" start --no-wait

# 1. 21 clients through the sandwich (ir -> gateway VIP on lb1 -> IPVS DR -> fwN -> er1 -> srv,
#    back srv -> er1 -(CONNMARK)-> same fwN -> firewall-facing VIP on lb1 -> ir -> client).
t=$(now); r=$(clients 10 30 5 --json "$LAB_OUT/clients-seed.json") || fail "client round (seed): $r"; T_CURL=$(el "$t" "$(now)")
log "clients .10-.30 (seed): $r in ${T_CURL}s"
r=$(x client curl -sS --max-time 5 --interface 203.0.113.31 http://198.51.100.10/) && [ "$r" = "hello from srv" ] \
  || fail "curl from 203.0.113.31: $r"
log "curl from 203.0.113.31: $r"

# conns <file>: "<fw1> <fw2>" connections (ActiveConn + InActConn) of service FWM 1 in an
# ipvsadm -Ln output. (The --stats counters lag: the kernel's estimator folds them in every 2 s.)
conns() { awk '$1 == "FWM" || $1 == "TCP" || $1 == "UDP" { s = ($1 == "FWM" && $2 == "1") }
  s && $1 == "->" && $2 == "10.1.0.11:0" { a = $5 + $6 } s && $1 == "->" && $2 == "10.1.0.12:0" { b = $5 + $6 }
  END { print (a == "" ? -1 : a), (b == "" ? -1 : b) }' "$1"; }
# shellcheck disable=SC2016
x lb1 sh -c 'ipvsadm -Ln > "$1/ipvsadm-Ln-seed.txt"; ipvsadm -Sn > "$1/ipvsadm-Sn-seed.txt"
  ipvsadm -Ln --exact > "$1/ipvsadm-Ln-exact-seed.txt"; ipvsadm -Ln --stats > "$1/ipvsadm-Ln-stats-seed.txt"
  ipvsadm -Ln --stats --exact > "$1/ipvsadm-Ln-stats-exact-seed.txt"; ipvsadm -Lnc > "$1/ipvsadm-Lnc-seed.txt"' sh "$FIX"
x lb2 ipvsadm -Ln --exact > "$LAB_OUT/lb2-Ln-seed.txt"
for fw in 10.1.0.11 10.1.0.12; do grep -q -- "-> $fw:0 " "$FIX/ipvsadm-Ln-seed.txt" || fail "lb1 ipvsadm -Ln does not list $fw"; done
read -r a b < <(conns "$FIX/ipvsadm-Ln-exact-seed.txt")
read -r c d < <(conns "$LAB_OUT/lb2-Ln-seed.txt")
log "IPVS conns: lb1 fw1=$a fw2=$b, lb2 fw1=$c fw2=$d"
[ "$a" -gt 0 ] && [ "$b" -gt 0 ] || fail "both firewalls should carry clients (lb1: fw1=$a fw2=$b)"
[ $((a + b)) -eq 22 ] || fail "lb1 (VIP holder) should have directed all 22 connections, got $((a + b))"
[ "$c" -eq 0 ] && [ "$d" -eq 0 ] || fail "lb2 (standby, no VIP) should have directed nothing (fw1=$c fw2=$d)"

# 2. Probe paths through each firewall (the controller's addressing).
t=$(now); "$HERE/check-paths.sh"; T_PATHS=$(el "$t" "$(now)")

# 3. etcd on the management net, reached from the controllers' namespaces.
t=$(now); "$HERE/etcd.sh" wait
for ns in lb1 lb2 er1; do
  x "$ns" etcdctl --endpoints http://10.9.0.1:2379,http://10.9.0.2:2379,http://10.9.0.3:2379 \
    --command-timeout 5s put "/lab/smoke/$ns" ok > /dev/null || fail "etcd put from $ns failed"
done
n=$(ETCDCTL_API=3 etcdctl --endpoints http://10.9.0.2:2379 get --prefix /lab/smoke/ --keys-only | grep -c /lab/smoke/ || true)
[ "$n" -eq 3 ] || fail "expected 3 keys written from lb1, lb2, er1; found $n"
"$HERE/etcd.sh" stop; T_ETCD=$(el "$t" "$(now)")
log "etcd: puts from lb1, lb2, er1 ok (${T_ETCD}s after the data-path checks)"

# 4. Drain fw2 the way the controller's quiesce does: weight 0 under sh-fallback, on both LBs;
#    plus an mh service with mh-fallback and a TCP service, so the fixtures cover more syntax.
for lb in lb1 lb2; do
  x "$lb" ipvsadm -R <<'EOF'
-E -f 1 -s sh -b sh-fallback
-e -f 1 -r 10.1.0.12:0 -g -w 0
-A -f 2 -s mh -b mh-fallback
-a -f 2 -r 10.1.0.11:0 -g -w 100
-a -f 2 -r 10.1.0.12:0 -g -w 100
-A -t 192.0.2.254:443 -s mh -b mh-fallback,mh-port
-a -t 192.0.2.254:443 -r 10.1.0.11:443 -g -w 1
-a -t 192.0.2.254:443 -r 10.1.0.12:443 -g -w 1
EOF
  x "$lb" ipvsadm -Z
done
t=$(now); r=$(clients 10 30 5 --json "$LAB_OUT/clients-drained.json") || fail "client round (fw2 drained): $r"; T_CURL2=$(el "$t" "$(now)")
log "clients .10-.30 (fw2 at weight 0, sh-fallback): $r in ${T_CURL2}s"
# shellcheck disable=SC2016
x lb1 sh -c 'ipvsadm -Sn > "$1/ipvsadm-Sn-fallback.txt"; ipvsadm -Ln --exact > "$1/ipvsadm-Ln-exact-fallback.txt"
  ipvsadm -Ln --stats > "$1/ipvsadm-Ln-stats-fallback.txt"; ipvsadm -Ln --stats --exact > "$1/ipvsadm-Ln-stats-exact-fallback.txt"' sh "$FIX"
read -r a2 b2 < <(conns "$FIX/ipvsadm-Ln-exact-fallback.txt")
[ "$b2" -eq "$b" ] && [ "$a2" -eq $((a + 21)) ] \
  || fail "drained fw2 should get no new connections (lb1 before: fw1=$a fw2=$b, after: fw1=$a2 fw2=$b2)"
grep -q 'sh-fallback' "$FIX/ipvsadm-Sn-fallback.txt" || fail "ipvsadm -Sn does not show sh-fallback"
grep -q 'mh-fallback' "$FIX/ipvsadm-Sn-fallback.txt" || fail "ipvsadm -Sn does not show mh-fallback"
# 5. Move the VIP group to lb2 (addresses, then gratuitous ARP on both sides): lb2 now directs
#    the clients and forwards the replies.
t=$(now)
printf 'addr del 192.0.2.254/24 dev eth0\naddr del 10.1.0.254/24 dev eth1\n' | ip -n lb1 -batch -
printf 'addr add 192.0.2.254/24 dev eth0\naddr add 10.1.0.254/24 dev eth1\n' | ip -n lb2 -batch -
# shellcheck disable=SC2016
x lb2 sh -c 'arping -q -U -c 1 -I eth0 192.0.2.254 & arping -q -U -c 1 -I eth1 10.1.0.254 & wait'
x lb2 ipvsadm -Ln --exact > "$LAB_OUT/lb2-Ln-before-move.txt"
r=$(clients 10 30 5 --json "$LAB_OUT/clients-lb2.json") || fail "client round (VIP group on lb2): $r"; T_MOVE=$(el "$t" "$(now)")
x lb2 ipvsadm -Ln --exact > "$LAB_OUT/lb2-Ln-after-move.txt"
read -r c d < <(conns "$LAB_OUT/lb2-Ln-before-move.txt")
read -r c2 d2 < <(conns "$LAB_OUT/lb2-Ln-after-move.txt")
[ $((c2 + d2 - c - d)) -eq 21 ] || fail "lb2 should have directed 21 connections after the move, got $((c2 + d2 - c - d))"
log "clients .10-.30 (VIP group moved to lb2): $r; lb2 directed 21 (${T_MOVE}s incl. move + ARP)"
# The neighbours now resolve both VIPs to lb2's MACs (the replies take lb2 too).
m0=$(x lb2 cat /sys/class/net/eth0/address) m1=$(x lb2 cat /sys/class/net/eth1/address)
for n in ir:192.0.2.254:$m0 fw1:10.1.0.254:$m1 fw2:10.1.0.254:$m1; do
  IFS=: read -r ns vip _ <<< "$n"; want=${n#*:*:}
  got=$(ip -n "$ns" neigh show "$vip" | awk '{ for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1) }')
  [ "$got" = "$want" ] || fail "$ns resolves $vip to ${got:-nothing}, expected lb2's $want"
done
log "ir, fw1, fw2 resolve the VIPs to lb2"

# A service without real servers (what a controller-managed LB starts with).
# shellcheck disable=SC2016
x etcd sh -c 'ipvsadm -A -f 1 -s sh; ipvsadm -Sn > "$1/ipvsadm-Sn-noreal.txt"; ipvsadm -Ln --exact > "$1/ipvsadm-Ln-exact-noreal.txt"
  ipvsadm -C; ipvsadm -Sn > "$1/ipvsadm-Sn-empty.txt"' sh "$FIX"
# Egress router and VIP state as JSON.
# shellcheck disable=SC2016
x er1 sh -c 'ip -j route show table 101 > "$1/er1-ip-j-route-table-101.json"; ip -j route show table 102 > "$1/er1-ip-j-route-table-102.json"
  ip -j rule show > "$1/er1-ip-j-rule.json"; conntrack -L > "$1/er1-conntrack-L.txt" 2> /dev/null' sh "$FIX"
x lb2 ip -j addr show > "$FIX/lb2-ip-j-addr-vip-holder.json"
x lb1 ip -j addr show > "$FIX/lb1-ip-j-addr-standby.json"
grep -q '"10.2.0.11"' "$FIX/er1-ip-j-route-table-101.json" || fail "er1 table 101 does not point at fw1"
grep -q 'mark=1 ' "$FIX/er1-conntrack-L.txt" && grep -q 'mark=2 ' "$FIX/er1-conntrack-L.txt" \
  || fail "er1 conntrack should hold connections marked 1 and 2"
for f in "$FIX"/*; do [ -s "$f" ] || [ "${f##*/}" = ipvsadm-Sn-empty.txt ] || fail "empty fixture $f"; done

log "fixtures: $(cd "$FIX" && ls | tr '\n' ' ')"
log "TIME topology ${T_TOPO}s, 21 clients ${T_CURL}s, probe paths ${T_PATHS}s, etcd wait+puts ${T_ETCD}s, 21 clients drained ${T_CURL2}s, VIP move + 21 clients ${T_MOVE}s, smoke total $(el "$T0" "$(now)")s"
log "smoke: PASS"
