#!/usr/bin/env bash
# The seed sandwich in network namespaces on the host (no IPVS here): for the system tests.
#
#   c 192.0.2.100 ──brc── lb1 .1 / lb2 .2  (VIP 192.0.2.254)
#   lb1 10.1.0.1 / lb2 .2 (VIP 10.1.0.254) ──brfi── fw1 10.1.0.11, fw2 .12
#   fw1 10.2.0.11, fw2 .12 ──brfo── er1 10.2.0.1 ──── srv 10.3.0.2 (198.51.100.10 on lo, HTTP :80)
#   etcd 10.9.0.1 ──brm── lb1 .11, lb2 .12, er1 .21
#
# Usage: topo.sh up|down PREFIX   (namespaces are PREFIX-hub, PREFIX-lb1, …; PREFIX ≤ 5 chars)
set -euo pipefail
cmd=${1:?up|down}
P=${2:?prefix}

NS=(hub c lb1 lb2 fw1 fw2 er1 srv etcd)
n() { echo "$P-$1"; }
x() { ip netns exec "$(n "$1")" "${@:2}"; }

down() {
  for s in "${NS[@]}"; do
    pids=$(ip netns pids "$(n "$s")" 2>/dev/null || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
    ip netns del "$(n "$s")" 2>/dev/null || true
  done
}

# veth NS IF HUBPORT BRIDGE: NS's interface IF, peer enslaved to BRIDGE in the hub.
port() {
  ip link add "$2" netns "$(n "$1")" type veth peer name "$3" netns "$(n hub)"
  x hub ip link set "$3" master "$4" up
  x "$1" ip link set "$2" up
}

up() {
  down
  for s in "${NS[@]}"; do
    ip netns add "$(n "$s")"
    x "$s" ip link set lo up
    x "$s" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  done
  for b in brc brfi brfo brm; do x hub ip link add "$b" type bridge; x hub ip link set "$b" up; done

  port c lan c-lan brc;          x c ip addr add 192.0.2.100/24 dev lan
  x c ip route add default via 192.0.2.254
  for i in 1 2; do
    port "lb$i" cli "lb$i-cli" brc;  x "lb$i" ip addr add "192.0.2.$i/24" dev cli
    port "lb$i" fwn "lb$i-fwn" brfi; x "lb$i" ip addr add "10.1.0.$i/24" dev fwn
    port "lb$i" mgmt "lb$i-m" brm;   x "lb$i" ip addr add "10.9.0.1$i/24" dev mgmt
    x "lb$i" sysctl -qw net.ipv4.ip_forward=1
  done
  for i in 1 2; do
    f="fw$i"
    port "$f" ing "$f-ing" brfi; x "$f" ip addr add "10.1.0.1$i/24" dev ing
    port "$f" egr "$f-egr" brfo; x "$f" ip addr add "10.2.0.1$i/24" dev egr
    x "$f" ip link set egr address "02:00:00:00:f${i}:0e"
    x "$f" sysctl -qw net.ipv4.ip_forward=1
    x "$f" sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0 2>/dev/null || true
    x "$f" ip route add 198.51.100.0/24 via 10.2.0.1
    x "$f" ip route add 192.0.2.0/24 via 10.1.0.254
    # Stateful: new flows only from the ingress side; the egress side sees replies only.
    x "$f" iptables -P FORWARD DROP
    x "$f" iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    x "$f" iptables -A FORWARD -i ing -o egr -m conntrack --ctstate NEW -j ACCEPT
    # Counters: which probe sources crossed this firewall.
    x "$f" iptables -N COUNT
    x "$f" iptables -I FORWARD 1 -i ing -j COUNT
    for s in 10.1.0.21 10.1.0.22 10.1.0.31 10.1.0.32; do x "$f" iptables -A COUNT -s "$s"; done
  done

  port er1 fwn er1-fwn brfo; x er1 ip addr add 10.2.0.1/24 dev fwn
  port er1 mgmt er1-m brm;   x er1 ip addr add 10.9.0.21/24 dev mgmt
  ip link add srv netns "$(n er1)" type veth peer name er netns "$(n srv)"
  x er1 ip link set srv up; x er1 ip addr add 10.3.0.1/24 dev srv
  x srv ip link set er up;  x srv ip addr add 10.3.0.2/24 dev er
  x srv ip addr add 198.51.100.10/32 dev lo
  x srv ip route add default via 10.3.0.1
  x er1 sysctl -qw net.ipv4.ip_forward=1
  x er1 ip route add 198.51.100.0/24 via 10.3.0.2
  # The seed's return-path marks: restore the connection's mark, else mark by the firewall's MAC, save.
  x er1 iptables -t mangle -A PREROUTING -j CONNMARK --restore-mark
  x er1 iptables -t mangle -A PREROUTING -i fwn -m mark --mark 0 -m mac --mac-source 02:00:00:00:f1:0e -j MARK --set-mark 1
  x er1 iptables -t mangle -A PREROUTING -i fwn -m mark --mark 0 -m mac --mac-source 02:00:00:00:f2:0e -j MARK --set-mark 2
  x er1 iptables -t mangle -A PREROUTING -j CONNMARK --save-mark
  # (ip rule fwmark N iif srv lookup 10N and the tables are the controller's job.)

  port etcd mgmt etcd-m brm; x etcd ip addr add 10.9.0.1/24 dev mgmt
}

case "$cmd" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down PREFIX" >&2; exit 2 ;;
esac
