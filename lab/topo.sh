#!/usr/bin/env bash
# The firewall sandwich in network namespaces (addressing plan and picture: lab/README.md).
#
#   lab/topo.sh up [--seed] [--vip lb1|lb2|none] [--scheduler sh|mh] [--no-ipvs] [--sync-link] [--ipv6] [--services] [--wires]
#   lab/topo.sh down
#
# up builds: namespaces client ir lb1 lb2 fw1 fw2 er1 srv etcd, bridges in the current (root)
# namespace, the seed's LB marks/rule/table 100 and IPVS service (fwmark 1, no real servers),
# stateful firewalls, the egress router's CONNMARK/MAC marks and tables 101/102, the HTTP server.
#   --seed       also the seed's real servers (fw1, fw2, weight 100) and the VIP group on lb1:
#                a working sandwich without any controller (baseline)
#   --vip X      put the VIP group (192.0.2.254/24, 10.1.0.254/24) on X (default: none, or lb1 with --seed)
#   --no-ipvs    skip everything IPVS (for hosts whose kernel has no IPVS; also LAB_NO_IPVS=1).
#                Client traffic then ends at the LB; probes through the firewalls still work.
#   --sync-link  also a dedicated link between the firewalls for conntrackd (lab/statesync.sh; also
#                LAB_SYNC_LINK=1): bridge brsync 10.8.0.0/24, fw1 eth2 10.8.0.11, fw2 eth2 10.8.0.12
#   --ipv6       dual stack (also LAB_IPV6=1): every namespace also gets the IPv6 plan of lab/README.md
#                (2001:db8::/32 sub-blocks, `nodad`), ip6tables firewalls equal to the IPv4 ones, er1's
#                CONNMARK/MAC marks and `ip -6 rule`/tables 101/102, IPVS service fwmark 6 -6 (tcp/80),
#                the IPv6 VIPs 2001:db8:0:1::254/64 and 2001:db8:1::254/64 with the IPv4 ones, httpd on [::]:80.
#   --services   more services (also LAB_SERVICES=1): tcp/443 (fwmark 3) and udp/7 (fwmark 7) marked on the
#                LBs (for IPv6 too with --ipv6), allowed by the firewalls (NEW tcp/443, tcp/7, udp/7), httpd
#                also on :443 and :7, a UDP echo server on :7 (lab/config.services.yaml, lab/services.sh).
#   --wires      the two links between a TCP end point and its router (client–ir, srv–er1) are user-space
#                cables (lab/wire.py between two TAP devices, also LAB_WIRES=1) instead of bridges brc and brs: a
#                client's TCP then cannot confirm ir's neighbour entries across the namespaces, as it cannot
#                between machines (lab/README.md, "The wire"). Needed where a router's neighbour
#                unreachability detection is measured (lab/active-active.sh).
#   Without --ipv6 and --services the topology is exactly the IPv4, one-service lab.
# down kills the processes in the namespaces and deletes them and the bridges.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab/lib.sh
. "$HERE/lib.sh"

NAMESPACES=(client ir lb1 lb2 fw1 fw2 er1 srv etcd)
BRIDGES=(brc brl brfi brfo brs brm)
# namespace:interface:bridge[:mac] — the host side of each veth is <namespace>-<interface>.
PORTS=(client:eth0:brc ir:eth0:brc ir:eth1:brl
  lb1:eth0:brl lb1:eth1:brfi lb1:eth2:brm lb2:eth0:brl lb2:eth1:brfi lb2:eth2:brm
  fw1:eth0:brfi fw1:eth1:brfo:02:00:00:00:f1:0e fw2:eth0:brfi fw2:eth1:brfo:02:00:00:00:f2:0e
  er1:eth0:brfo er1:eth1:brs er1:eth2:brm srv:eth0:brs etcd:eth0:brm)
CLIENT_FIRST=10 CLIENT_LAST=40

die() { echo "topo: $*" >&2; exit 2; }

down() {
  local ns p
  for ns in "${NAMESPACES[@]}"; do
    [ -e "/run/netns/$ns" ] || continue
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  done
  sleep 0.2
  for ns in "${NAMESPACES[@]}"; do
    [ -e "/run/netns/$ns" ] || continue
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns"
  done
  for p in "${BRIDGES[@]}" brsync; do ip link del "$p" 2>/dev/null || true; done
  for p in "$LAB_RUN"/topo/wire-*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; rm -f "$p"; done
  for p in w-client w-ir w-srv w-er1; do ip link del "$p" 2>/dev/null || true; done
  rm -rf "${LAB_RUN:?}/topo" "$LAB_RUN/httpd.ready"
}

# sc <sysctl.name> <value>: a shell line that sets it inside the namespace script (no fork).
sc() { echo "echo $2 > /proc/sys/${1//.//}"; }

common() { # lines every namespace gets
  if [ -n "$IPV6" ]; then sc net.ipv6.conf.all.disable_ipv6 0; sc net.ipv6.conf.default.disable_ipv6 0
  else sc net.ipv6.conf.all.disable_ipv6 1; sc net.ipv6.conf.default.disable_ipv6 1; fi
  sc net.ipv4.conf.all.rp_filter 0; sc net.ipv4.conf.default.rp_filter 0
}
links_up() { # ip -batch lines: lo and the namespace's veths up
  local ns=$1 p
  echo "link set lo up"
  for p in "${PORTS[@]}"; do IFS=: read -r n i _ <<< "$p"; [ "$n" = "$ns" ] && echo "link set $i up"; done
  return 0
}

# Per-namespace setup script, run with "ip netns exec <ns> sh -e".
script_for() {
  local ns=$1 i
  common
  case $ns in
    lb1 | lb2) sc net.ipv4.ip_forward 1; [ -n "$NO_IPVS" ] || sc net.ipv4.vs.expire_nodest_conn 1 ;;
    ir | fw1 | fw2 | er1) sc net.ipv4.ip_forward 1 ;;
  esac
  [ -z "$IPV6" ] || case $ns in lb1 | lb2 | ir | fw1 | fw2 | er1) sc net.ipv6.conf.all.forwarding 1 ;; esac
  case $ns in fw1 | fw2) sc net.netfilter.nf_conntrack_tcp_loose 0 ;; esac   # no mid-stream pickup: strict
  echo "ip -batch - <<'EOF'"
  links_up "$ns"
  case $ns in
    client)
      for ((i = CLIENT_FIRST; i <= CLIENT_LAST; i++)); do echo "addr add 203.0.113.$i/24 dev eth0"; done
      echo "route add default via 203.0.113.1 dev eth0" ;;
    ir)
      echo "addr add 203.0.113.1/24 dev eth0"
      echo "addr add 192.0.2.1/24 dev eth1"
      echo "route add 198.51.100.0/24 via 192.0.2.254 dev eth1" ;;   # the gateway VIP
    lb1 | lb2)
      local n=${ns#lb} m=$((${ns#lb} + 1))
      echo "addr add 192.0.2.1$n/24 dev eth0"
      echo "addr add 10.1.0.$n/24 dev eth1"
      echo "addr add 10.1.0.${m}1/32 dev eth1"    # probe source via fw1 (lb1 .21, lb2 .31)
      echo "addr add 10.1.0.${m}2/32 dev eth1"    # probe source via fw2 (lb1 .22, lb2 .32)
      echo "addr add 10.9.0.1$n/24 dev eth2"
      echo "route add default via 192.0.2.1 dev eth0"
      echo "rule add fwmark 1 lookup 100 pref 100"
      [ -z "$SVC" ] || printf 'rule add fwmark %s lookup 100 pref 100\n' 3 7
      echo "route add local 0.0.0.0/0 dev lo table 100"
      if [ "$VIP" = "$ns" ]; then
        echo "addr add 192.0.2.254/24 dev eth0"
        echo "addr add 10.1.0.254/24 dev eth1"
      fi ;;
    fw1 | fw2)
      local n=${ns#fw}
      echo "addr add 10.1.0.1$n/24 dev eth0"
      echo "addr add 10.2.0.1$n/24 dev eth1"
      echo "route add 198.51.100.0/24 via 10.2.0.1 dev eth1"
      echo "route add 203.0.113.0/24 via 10.1.0.254 dev eth0"       # back through the LB pair's VIP
      [ -z "$SYNC_LINK" ] || echo "addr add 10.8.0.1$n/24 dev eth2" ;;   # conntrackd's sync link
    er1)
      echo "addr add 10.2.0.1/24 dev eth0"
      echo "addr add 10.2.0.21/32 dev eth0"      # probe source via fw1
      echo "addr add 10.2.0.22/32 dev eth0"      # probe source via fw2
      echo "addr add 10.3.0.1/24 dev eth1"
      echo "addr add 10.9.0.13/24 dev eth2"
      echo "route add 198.51.100.0/24 via 10.3.0.2 dev eth1"
      # Replies (arriving from the servers, iif eth1) follow their connection's firewall.
      echo "rule add fwmark 1 iif eth1 lookup 101 pref 500"
      echo "rule add fwmark 2 iif eth1 lookup 102 pref 500"
      echo "route add default via 10.2.0.11 dev eth0 table 101"
      echo "route add default via 10.2.0.12 dev eth0 table 102" ;;
      # No route to the clients in the main table: an unmarked reply is unroutable.
    srv)
      echo "addr add 10.3.0.2/24 dev eth0"
      echo "addr add 198.51.100.10/32 dev lo"
      echo "route add default via 10.3.0.1 dev eth0" ;;
      # (the HTTP server is started at the end of this script: python starts slowly in the VM)
    etcd)
      for i in 1 2 3; do echo "addr add 10.9.0.$i/24 dev eth0"; done ;;
  esac
  echo "EOF"
  [ -z "$IPV6" ] || { echo "ip -6 -batch - <<'EOF'"; v6_lines "$ns"; echo "EOF"; }
  [ "$ns" = srv ] && printf 'setsid /usr/bin/python3 %q --port %s --idle-timeout %q --ready %q%s > %q 2>&1 < /dev/null &\n' \
    "$HERE/httpd.py" "80${SVC:+,443,7}" "${LAB_HTTPD_IDLE_S:-30}" "$LAB_RUN/httpd.ready" "${IPV6:+ --host 0.0.0.0,::}${SVC:+ --udp-echo 7 --udp-host 198.51.100.10${IPV6:+,2001:db8:100::10}}" "$LAB_LOGS/httpd.log"
  case $ns in
    lb1 | lb2)
      echo "iptables-restore <<'EOF'"
      echo "*mangle"
      echo "-A PREROUTING -i eth0 -p tcp --dport 80 -j MARK --set-mark 1"
      [ -z "$SVC" ] || svc_marks
      echo "COMMIT"
      echo "EOF"
      if [ -n "$IPV6" ]; then
        echo "ip6tables-restore <<'EOF'"
        echo "*mangle"
        echo "-A PREROUTING -i eth0 -p tcp --dport 80 -j MARK --set-mark 6"
        [ -z "$SVC" ] || svc_marks
        echo "COMMIT"
        echo "EOF"
      fi
      if [ -z "$NO_IPVS" ]; then
        echo "ipvsadm -R <<'EOF'"
        echo "-A -f 1 -s $SCHED"
        if [ -n "$SEED" ]; then
          echo "-a -f 1 -r 10.1.0.11:0 -g -w 100"
          echo "-a -f 1 -r 10.1.0.12:0 -g -w 100"
        fi
        [ -z "$IPV6$SVC" ] || ipvs_extra
        echo "EOF"
      fi ;;
    fw1 | fw2)
      cat <<'EOF'
iptables-restore <<'END'
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i eth0 -o eth1 -p tcp -m tcp --dport 80 --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j ACCEPT
-A FORWARD -i eth0 -o eth1 -p icmp -m icmp --icmp-type 8 -m conntrack --ctstate NEW -j ACCEPT
EOF
      [ -z "$SVC" ] || svc_allow
      cat <<'EOF'
-A FORWARD -j DROP
COMMIT
END
EOF
      [ -z "$IPV6" ] || fw6_rules ;;
    er1)
      cat <<'EOF'
iptables-restore <<'END'
*mangle
-A PREROUTING -j CONNMARK --restore-mark
-A PREROUTING -m mark --mark 0 -m mac --mac-source 02:00:00:00:f1:0e -j MARK --set-mark 1
-A PREROUTING -m mark --mark 0 -m mac --mac-source 02:00:00:00:f2:0e -j MARK --set-mark 2
-A POSTROUTING -j CONNMARK --save-mark
COMMIT
END
EOF
      [ -z "$IPV6" ] || er1_marks6 ;;
  esac
}

# IPv6 (--ipv6): the IPv4 plan's twin; `ip -6 -batch` lines of one namespace. nodad: usable at once.
v6_lines() {
  local ns=$1 i n m
  case $ns in
    client)
      for ((i = CLIENT_FIRST; i <= CLIENT_LAST; i++)); do echo "addr add 2001:db8:c::$i/64 dev eth0 nodad"; done
      echo "route add ::/0 via 2001:db8:c::1 dev eth0" ;;
    ir)
      echo "addr add 2001:db8:c::1/64 dev eth0 nodad"
      echo "addr add 2001:db8:0:1::1/64 dev eth1 nodad"
      echo "route add 2001:db8:100::/64 via 2001:db8:0:1::254 dev eth1" ;;   # the IPv6 gateway VIP
    lb1 | lb2)
      n=${ns#lb} m=$((${ns#lb} + 1))
      echo "addr add 2001:db8:0:1::1$n/64 dev eth0 nodad"
      echo "addr add 2001:db8:1::$n/64 dev eth1 nodad"
      echo "addr add 2001:db8:1::${m}1/128 dev eth1 nodad"   # probe source via fw1 (lb1 ::21, lb2 ::31)
      echo "addr add 2001:db8:1::${m}2/128 dev eth1 nodad"   # probe source via fw2 (lb1 ::22, lb2 ::32)
      echo "route add ::/0 via 2001:db8:0:1::1 dev eth0"
      for i in 6 ${SVC:+3 7}; do echo "rule add fwmark $i lookup 100 pref 100"; done
      echo "route add local ::/0 dev lo table 100"
      if [ "$VIP" = "$ns" ]; then
        echo "addr add 2001:db8:0:1::254/64 dev eth0 nodad"
        echo "addr add 2001:db8:1::254/64 dev eth1 nodad"
      fi ;;
    fw1 | fw2)
      n=${ns#fw}
      echo "addr add 2001:db8:1::1$n/64 dev eth0 nodad"
      echo "addr add 2001:db8:2::1$n/64 dev eth1 nodad"
      echo "route add 2001:db8:100::/64 via 2001:db8:2::1 dev eth1"
      echo "route add 2001:db8:c::/64 via 2001:db8:1::254 dev eth0" ;;   # back through the LB pair's VIP
    er1)
      echo "addr add 2001:db8:2::1/64 dev eth0 nodad"
      echo "addr add 2001:db8:2::21/128 dev eth0 nodad"   # probe source via fw1
      echo "addr add 2001:db8:2::22/128 dev eth0 nodad"   # probe source via fw2
      echo "addr add 2001:db8:3::1/64 dev eth1 nodad"
      echo "route add 2001:db8:100::/64 via 2001:db8:3::2 dev eth1"
      echo "rule add fwmark 1 iif eth1 lookup 101 pref 500"
      echo "rule add fwmark 2 iif eth1 lookup 102 pref 500"
      echo "route add ::/0 via 2001:db8:2::11 dev eth0 table 101"
      echo "route add ::/0 via 2001:db8:2::12 dev eth0 table 102" ;;
    srv)
      echo "addr add 2001:db8:3::2/64 dev eth0 nodad"
      echo "addr add 2001:db8:100::10/128 dev lo nodad"
      echo "route add ::/0 via 2001:db8:3::1 dev eth0" ;;
  esac
  return 0
}
# --services: the LBs' marks for tcp/443 (3) and udp/7 (7); the same lines for iptables and ip6tables.
svc_marks() {
  echo "-A PREROUTING -i eth0 -p tcp --dport 443 -j MARK --set-mark 3"
  echo "-A PREROUTING -i eth0 -p udp --dport 7 -j MARK --set-mark 7"
}
# --services: what the firewalls let through besides tcp/80 (ip(6)tables-restore lines, before the DROP).
svc_allow() {
  local p
  for p in 443 7; do echo "-A FORWARD -i eth0 -o eth1 -p tcp -m tcp --dport $p --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j ACCEPT"; done
  echo "-A FORWARD -i eth0 -o eth1 -p udp -m udp --dport 7 -m conntrack --ctstate NEW -j ACCEPT"
}
fw6_rules() { # the IPv4 firewall's rules for IPv6 (ICMPv6 echo request instead of ICMP echo)
  echo "ip6tables-restore <<'END'"
  echo "*filter"
  echo ":INPUT ACCEPT [0:0]"
  echo ":FORWARD DROP [0:0]"
  echo ":OUTPUT ACCEPT [0:0]"
  echo "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
  echo "-A FORWARD -i eth0 -o eth1 -p tcp -m tcp --dport 80 --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j ACCEPT"
  echo "-A FORWARD -i eth0 -o eth1 -p ipv6-icmp -m icmp6 --icmpv6-type 128 -m conntrack --ctstate NEW -j ACCEPT"
  [ -z "$SVC" ] || svc_allow
  echo "-A FORWARD -j DROP"
  echo "COMMIT"
  echo "END"
}
er1_marks6() { # er1's marks for IPv6: the IPv4 lines
  echo "ip6tables-restore <<'END'"
  echo "*mangle"
  echo "-A PREROUTING -j CONNMARK --restore-mark"
  echo "-A PREROUTING -m mark --mark 0 -m mac --mac-source 02:00:00:00:f1:0e -j MARK --set-mark 1"
  echo "-A PREROUTING -m mark --mark 0 -m mac --mac-source 02:00:00:00:f2:0e -j MARK --set-mark 2"
  echo "-A POSTROUTING -j CONNMARK --save-mark"
  echo "COMMIT"
  echo "END"
}
# IPVS services besides fwmark 1 (ipvsadm -R lines): IPv6 tcp/80 (6); tcp/443 (3) and udp/7 (7) per family.
ipvs_extra() {
  local f m o marks reals
  for f in ${SVC:+4} ${IPV6:+6}; do
    if [ "$f" = 6 ]; then o='-6 ' marks="6 ${SVC:+3 7}" reals="[2001:db8:1::11]:0 [2001:db8:1::12]:0"
    else o='' marks="3 7" reals="10.1.0.11:0 10.1.0.12:0"; fi
    for m in $marks; do
      echo "-A -f $m $o-s $SCHED"
      [ -z "$SEED" ] || for r in $reals; do echo "-a -f $m $o-r $r -g -w 100"; done
    done
  done
}

# --wires: the bridges replaced by a user-space cable (lab/wire.py), and their two ports.
WIRED=(brc:client:ir brs:srv:er1)
wired() { [ -n "$WIRES" ] && [[ " ${WIRED[*]} " == *" $1:"* ]]; }
wires_up() { # one wire.py per cable between the TAP devices w-<ns>, which then become eth<N> in <ns>
  local w br a b p ns i
  for w in "${WIRED[@]}"; do
    IFS=: read -r br a b <<< "$w"
    rm -f "$LAB_RUN/topo/wire-$br.ready"
    /usr/bin/python3 "$HERE/wire.py" "w-$a" "w-$b" --ready "$LAB_RUN/topo/wire-$br.ready" > "$LAB_LOGS/wire-$br.log" 2>&1 < /dev/null &
    echo $! > "$LAB_RUN/topo/wire-$br.pid"
  done
  for w in "${WIRED[@]}"; do
    IFS=: read -r br _ <<< "$w"
    wait_file "$LAB_RUN/topo/wire-$br.ready" 10 || { cat "$LAB_LOGS/wire-$br.log" >&2; die "lab/wire.py for $br did not start"; }
  done
  for p in "${PORTS[@]}"; do
    IFS=: read -r ns i br _ <<< "$p"
    wired "$br" || continue
    ip link set "w-$ns" netns "$ns" && ip -n "$ns" link set "w-$ns" name "$i" || die "moving the wire's end w-$ns into $ns failed"
  done
}

up() {
  local ns p n i br mac batch pids=() t0
  t0=$(now)
  # The bridges and the management address live in the current namespace, and IPv6 is switched off there:
  # only in the VM or in host-run.sh's private namespace, never in a host's own network namespace.
  [ -n "${LAB_IN_VM:-}${LAB_PRIVATE_NET:-}" ] || die "run me in the VM (lab/vm/run.sh) or on the host through lab/host-run.sh, not in this machine's own network namespace"
  for ns in "${NAMESPACES[@]}"; do
    [ ! -e "/run/netns/$ns" ] || die "namespace $ns already exists (lab/topo.sh down first)"
  done
  if [ -z "$NO_IPVS" ]; then
    modprobe -a -q veth bridge tun nf_conntrack ip_vs ip_vs_sh ip_vs_mh xt_mark xt_connmark xt_mac xt_conntrack xt_tcpudp 2>/dev/null || true
    [ -d /proc/sys/net/ipv4/vs ] || die "this kernel has no IPVS (ip_vs did not load); use --no-ipvs or run inside the VM (lab/vm/run.sh)"
  fi
  command -v iptables-restore >/dev/null || die "iptables missing"
  [ -n "$NO_IPVS" ] || command -v ipvsadm >/dev/null || die "ipvsadm missing (apt-get install ipvsadm)"
  mkdir -p "$LAB_RUN/topo" "$LAB_LOGS"
  rm -f "$LAB_RUN/httpd.ready"
  [ -w /proc/sys/net/ipv6/conf/all/disable_ipv6 ] && echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6

  # Root namespace: namespaces, bridges, veth pairs (one ip process).
  batch=$LAB_RUN/topo/root.batch
  {
    for ns in "${NAMESPACES[@]}"; do echo "netns add $ns"; done
    for br in "${BRIDGES[@]}"; do wired "$br" && continue; echo "link add $br type bridge"; echo "link set $br up"; done
    for p in "${PORTS[@]}"; do
      IFS=: read -r ns i br mac <<< "$p"
      if wired "$br"; then echo "tuntap add dev w-$ns mode tap"; continue; fi
      echo "link add $ns-$i type veth peer name $i ${mac:+address $mac} netns $ns"
      echo "link set $ns-$i master $br up"
    done
    echo "addr add 10.9.0.254/24 dev brm"   # the VM itself on the management net (etcdctl from scripts)
  } > "$batch"
  ip -batch "$batch" || die "root namespace setup failed ($batch)"
  [ -z "$WIRES" ] || wires_up

  # Each namespace configures itself; they are independent, so in parallel.
  for ns in "${NAMESPACES[@]}"; do
    script_for "$ns" > "$LAB_RUN/topo/$ns.sh"
    ip netns exec "$ns" sh -e "$LAB_RUN/topo/$ns.sh" > "$LAB_RUN/topo/$ns.log" 2>&1 &
    pids+=($!)
  done
  n=0
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      ns=${NAMESPACES[$i]}
      echo "topo: setting up namespace $ns failed (script $LAB_RUN/topo/$ns.sh):" >&2
      sed 's/^/  /' "$LAB_RUN/topo/$ns.log" >&2
      n=$((n + 1))
    fi
  done
  [ "$n" -eq 0 ] || exit 1

  wait_file "$LAB_RUN/httpd.ready" 30 || { cat "$LAB_LOGS/httpd.log" >&2; die "the HTTP server in srv did not start within 30 s"; }
  log "topo: up in $(el "$t0" "$(now)")s (vip: ${VIP:-none}, real servers: $([ -n "$SEED" ] && echo seed || echo none)${NO_IPVS:+, no IPVS}${IPV6:+, IPv6}${SVC:+, services tcp/443 udp/7}${WIRES:+, user-space wires client–ir and srv–er1})"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
SEED='' VIP='' NO_IPVS=${LAB_NO_IPVS:-} SCHED=sh SYNC_LINK=${LAB_SYNC_LINK:-} IPV6=${LAB_IPV6:-} SVC=${LAB_SERVICES:-} WIRES=${LAB_WIRES:-}
[ "$WIRES" = 0 ] && WIRES=
[ "$NO_IPVS" = 0 ] && NO_IPVS=
[ "$SYNC_LINK" = 0 ] && SYNC_LINK=
[ "$IPV6" = 0 ] && IPV6=
[ "$SVC" = 0 ] && SVC=
while [ $# -gt 0 ]; do
  case $1 in
    --seed) SEED=1 ;;
    --vip) [ $# -ge 2 ] || die "--vip needs lb1, lb2 or none"; VIP=$2; shift ;;
    --no-ipvs) NO_IPVS=1 ;;
    --sync-link) SYNC_LINK=1 ;;
    --ipv6) IPV6=1 ;;
    --services) SVC=1 ;;
    --wires) WIRES=1 ;;
    --scheduler) [ $# -ge 2 ] || die "--scheduler needs sh or mh"; SCHED=$2; shift ;;
    *) die "unknown option \"$1\" (see the header of lab/topo.sh)" ;;
  esac
  shift
done
case $SCHED in sh | mh) ;; *) die "--scheduler must be sh or mh, not \"$SCHED\"" ;; esac
[ -n "$VIP" ] || { [ -n "$SEED" ] && VIP=lb1 || VIP=none; }
case $VIP in lb1 | lb2) ;; none) VIP= ;; *) die "--vip must be lb1, lb2 or none, not \"$VIP\"" ;; esac
if [ -n "$SYNC_LINK" ]; then BRIDGES+=(brsync); PORTS+=(fw1:eth2:brsync fw2:eth2:brsync); fi
[ "$(id -u)" -eq 0 ] || die "must run as root"
case $cmd in
  up) up ;;
  down) down ;;
  *) die "usage: lab/topo.sh up [--seed] [--vip lb1|lb2|none] [--scheduler sh|mh] [--no-ipvs] [--sync-link] [--ipv6] [--services] [--wires] | down" ;;
esac
