#!/usr/bin/env bash
# Two stateful firewalls with a sync link, in network namespaces on the host (no IPVS): for
# test/system/statesync.test.ts. The "lb" namespace stands in for the LB pair (its route to the
# servers picks the firewall, as IPVS does); er1 has the seed's CONNMARK/MAC marks, the
# controller (the test's Actuator) owns its rules and tables 101/102.
#
#   lb 10.1.0.1 ──bfi── fw1 10.1.0.11 / fw2 .12 ──bfo── er1 10.2.0.1 ──── srv 10.3.0.2 (198.51.100.10 HTTP :80,
#                                                                              198.51.100.11 a server that speaks first)
#                       fw1 10.8.0.11 / fw2 .12 ──bsy── (the sync link, eth2)
#
# Usage: statesync-topo.sh up|down PREFIX   (namespaces PREFIX-hub, PREFIX-lb, …)
set -euo pipefail
cmd=${1:?up|down}
P=${2:?prefix}
NS=(hub lb fw1 fw2 er1 srv)
n() { echo "$P-$1"; }
x() { ip netns exec "$(n "$1")" "${@:2}"; }

down() {
  local s pids
  for s in "${NS[@]}"; do
    pids=$(ip netns pids "$(n "$s")" 2>/dev/null || true)
    # shellcheck disable=SC2086 # a list of pids
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
    ip netns del "$(n "$s")" 2>/dev/null || true
  done
}

# port NS IF BRIDGE [MAC]: NS's interface IF, its peer (NS-IF) enslaved to BRIDGE in the hub.
port() {
  ip link add "$2" ${4:+address "$4"} netns "$(n "$1")" type veth peer name "$1-$2" netns "$(n hub)"
  x hub ip link set "$1-$2" master "$3" up
  x "$1" ip link set "$2" up
}

up() {
  local s i f
  down
  for s in "${NS[@]}"; do
    ip netns add "$(n "$s")"
    x "$s" ip link set lo up
    x "$s" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  done
  for s in bfi bfo bsy; do x hub ip link add "$s" type bridge; x hub ip link set "$s" up; done
  port lb eth0 bfi; x lb ip addr add 10.1.0.1/24 dev eth0
  x lb ip route add 198.51.100.0/24 via 10.1.0.11
  for i in 1 2; do
    f=fw$i
    port "$f" eth0 bfi; x "$f" ip addr add "10.1.0.1$i/24" dev eth0
    port "$f" eth1 bfo "02:00:00:00:f$i:0e"; x "$f" ip addr add "10.2.0.1$i/24" dev eth1
    port "$f" eth2 bsy; x "$f" ip addr add "10.8.0.1$i/24" dev eth2
    x "$f" sysctl -qw net.ipv4.ip_forward=1
    x "$f" ip route add 198.51.100.0/24 via 10.2.0.1
    # lab/topo.sh's firewall: NEW only as a SYN from the ingress side, no mid-stream pickup.
    x "$f" iptables-restore <<'END'
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i eth0 -o eth1 -p tcp -m tcp --dport 80 --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -j DROP
COMMIT
END
    x "$f" sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0
  done
  port er1 eth0 bfo; x er1 ip addr add 10.2.0.1/24 dev eth0
  ip link add eth1 netns "$(n er1)" type veth peer name eth0 netns "$(n srv)"
  x er1 ip link set eth1 up; x er1 ip addr add 10.3.0.1/24 dev eth1
  x srv ip link set eth0 up; x srv ip addr add 10.3.0.2/24 dev eth0
  x srv ip addr add 198.51.100.10/32 dev lo
  x srv ip addr add 198.51.100.11/32 dev lo
  x srv ip route add default via 10.3.0.1
  x er1 sysctl -qw net.ipv4.ip_forward=1
  x er1 ip route add 198.51.100.0/24 via 10.3.0.2
  x er1 iptables-restore <<'END'
*mangle
-A PREROUTING -j CONNMARK --restore-mark
-A PREROUTING -m mark --mark 0 -m mac --mac-source 02:00:00:00:f1:0e -j MARK --set-mark 1
-A PREROUTING -m mark --mark 0 -m mac --mac-source 02:00:00:00:f2:0e -j MARK --set-mark 2
-A POSTROUTING -j CONNMARK --save-mark
COMMIT
END
}

case $cmd in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down PREFIX" >&2; exit 2 ;;
esac
