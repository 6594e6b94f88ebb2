#!/usr/bin/env bash
# The dual-stack lab's plumbing, on the host (no IPVS): lab/host-run.sh lab/check-ipv6.sh
# Builds lab/topo.sh up --ipv6 --services --vip lb1 and proves, with real packets:
#  - IPv6 probe paths: from each LB's IPv6 probe source for fwN (policy-routed as the controller
#    would), HTTP to [2001:db8:100::10]/health crosses fwN (its ip6tables conntrack saw it) and
#    comes back through fwN (er1's IPv6 CONNMARK/MAC mark N, table 10N);
#  - the extra services through a firewall: tcp/443 and udp/7 (the echo) in both families;
#  - the IPv6 firewall is stateful: a connection opened from the server side is dropped;
#  - lab/ndpwatch.py, from ir: lb1 answers neighbour solicitations for 2001:db8:0:1::254; with the
#    address also on lb2 (accept_dad=0, ndisc_notify=1: the kernel's unsolicited NA, as
#    failover/vip.ts does it) both answer (dual VIP seen); once lb1 drops it, lb2 alone, and ir's
#    neighbour entry follows lb2's NA.
# Prints one line per check; exit status 1 if one failed.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab/lib.sh
. "$HERE/lib.sh"
"$HERE/topo.sh" up --ipv6 --services --vip lb1
bad=0
check() { # check <label> <command...>
  local what=$1; shift
  if "$@"; then log "$what: ok"; else log "$what: FAILED"; bad=$((bad + 1)); fi
}
body() { x "$1" curl -sS --max-time 5 --interface "$2" "$3" 2>&1 | head -n 1; }
udp_echo() { # udp_echo <ns> <source> <dest>: one datagram to <dest>:7 and its echo
  x "$1" /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0)); s.settimeout(3); s.sendto(b"lab", (sys.argv[2], 7))
d, a = s.recvfrom(64); sys.exit(0 if d == b"lab" and a[0] == sys.argv[2] else 1)' "$2" "$3"
}
# Policy routes as the controller would set them: source ::N1 via fw1 (table 200), ::N2 via fw2 (201).
for lb in lb1 lb2; do
  p=2001:db8:1::$((${lb#lb} + 1))
  printf 'rule add from %s1 lookup 200 pref 1000\nroute add default via 2001:db8:1::11 dev eth1 table 200\n' "$p" | ip -n "$lb" -6 -batch -
  printf 'rule add from %s2 lookup 201 pref 1000\nroute add default via 2001:db8:1::12 dev eth1 table 201\n' "$p" | ip -n "$lb" -6 -batch -
done
printf 'rule add from 10.1.0.21 lookup 200 pref 1000\nroute add default via 10.1.0.11 dev eth1 table 200\n' | ip -n lb1 -batch -
printf 'rule add from 2001:db8:2::21 lookup 200 pref 1000\nroute add default via 2001:db8:2::11 dev eth0 table 200\n' | ip -n er1 -6 -batch -
seen_by() { # seen_by <fwN> <source> <port>: fwN's conntrack has an IPv6 entry from that source to that port
  x "$1" conntrack -L -f ipv6 2>/dev/null | grep -q "src=$2 dst=2001:db8:100::10 .*dport=$3 "
}
marked() { # marked <N> <source>: er1's conntrack gave that source's flows mark N
  x er1 conntrack -L -f ipv6 2>/dev/null | grep "src=$2 " | grep -q "mark=$1 "
}
for lb in lb1 lb2; do
  for i in 1 2; do
    s=2001:db8:1::$((${lb#lb} + 1))$i o=$((3 - i))
    check "path $lb ($s) -> fw$i -> [2001:db8:100::10]/health" [ "$(body "$lb" "$s" 'http://[2001:db8:100::10]/health')" = ok ]
    check "  seen by fw$i only, marked $i on er1" eval "seen_by fw$i $s 80 && ! seen_by fw$o $s 80 && marked $i $s"
  done
done
check "tcp/443 over IPv6 through fw1" [ "$(body lb1 2001:db8:1::21 'http://[2001:db8:100::10]:443/health')" = ok ]
check "tcp/443 over IPv4 through fw1" [ "$(body lb1 10.1.0.21 'http://198.51.100.10:443/health')" = ok ]
check "udp/7 echo over IPv6 through fw1" udp_echo lb1 2001:db8:1::21 2001:db8:100::10
check "udp/7 echo over IPv4 through fw1" udp_echo lb1 10.1.0.21 198.51.100.10
check "  the IPv6 echo crossed fw1 (udp conntrack)" eval "x fw1 conntrack -L -f ipv6 -p udp 2>/dev/null | grep -q 'dport=7 '"
drops() { x fw1 ip6tables -L FORWARD -v -n -x | awk '$3 == "DROP" { n = $1 } END { print n + 0 }'; }
d0=$(drops)
check "IPv6 firewall stateful: a connection opened from the egress side (er1 via fw1) is dropped" \
  eval "! x er1 curl -sS --max-time 2 --interface 2001:db8:2::21 'http://[2001:db8:1::1]/' > /dev/null 2>&1 && [ \"\$(drops)\" -gt $d0 ]"
check "er1 egress leg fw1 over IPv6" x er1 ping -6 -c 1 -W 2 -I 2001:db8:2::21 2001:db8:2::11 > /dev/null

# Who answers ND for the IPv6 gateway VIP (lab/ndpwatch.py), and ir's neighbour entry.
W=$LAB_RUN/check-ipv6; rm -rf "$W"; mkdir -p "$W"
mac() { ip -n "$1" -br link show eth0 | awk '{ print $3 }'; }
x ir /usr/bin/python3 "$HERE/ndpwatch.py" --iface eth1 --macs "lb1=$(mac lb1),lb2=$(mac lb2)" --out "$W/ndp.jsonl" \
  --state "$W/state" --stop-file "$W/stop" --every 0.1 --settle 0.5 --max 60 &
answered() { local i; for ((i = 0; i < 40; i++)); do [ "$(cat "$W/state" 2>/dev/null)" = "$1" ] && return 0; sleep 0.1; done; return 1; }
neigh() { ip -n ir -6 neigh show 2001:db8:0:1::254 dev eth1 | grep -q "lladdr $1"; }
x client ping -6 -c 1 -W 2 -I 2001:db8:c::10 2001:db8:0:1::254 > /dev/null || true   # ir resolves the VIP
check "ndpwatch: lb1 alone answers for 2001:db8:0:1::254; ir's entry is lb1's MAC" eval "answered lb1 && neigh $(mac lb1)"
x lb2 sysctl -qw net.ipv6.conf.eth0.accept_dad=0 net.ipv6.conf.eth0.ndisc_notify=1
ip -n lb2 addr add 2001:db8:0:1::254/64 dev eth0
check "ndpwatch: both answer once lb2 has it too (dual VIP seen)" answered "lb1 lb2"
ip -n lb1 addr del 2001:db8:0:1::254/64 dev eth0
check "ndpwatch: lb2 alone once lb1 dropped it" answered lb2
check "ir's neighbour entry follows lb2's unsolicited NA" neigh "$(mac lb2)"
touch "$W/stop"; wait
check "ndpwatch recorded lb2's unsolicited NA" grep -q '"k": "garp".*"node": "lb2".*"op": "na"' "$W/ndp.jsonl"
[ "$bad" -eq 0 ] || fail "$bad check(s) failed"
log "check-ipv6: all checks ok"
