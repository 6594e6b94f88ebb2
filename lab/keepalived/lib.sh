# shellcheck shell=bash
# Helpers for running keepalived in the lab's namespaces (lab/compare.sh), sourced after lab/lib.sh
# and lab/run-lib.sh. One keepalived per node (lb1 lb2 er1), each started with `ip netns exec`
# and its own pid files; configs rendered by lab/keepalived/render.sh into $KA_RUN.
KA_RUN=$LAB_RUN/keepalived
KA_DIR=$LAB_REPO/lab/keepalived

ka_render() { rm -rf "$KA_RUN"; mkdir -p "$KA_RUN"; "$KA_DIR/render.sh" "$KA_RUN" > /dev/null; }
ka_conf() { case $1 in lb1 | lb2) echo "$KA_RUN/lb.conf" ;; *) echo "$KA_RUN/$1.conf" ;; esac; }

# ka_start <node>: keepalived in the node's namespace, in the foreground of a background job (-n),
# logging to $LAB_LOGS/keepalived-<node>.log. KA_VRRP_ONLY=1 adds -P (hosts without IPVS).
ka_start() {
  local n=$1 extra=()
  [ "${KA_VRRP_ONLY:-}" = 1 ] && extra+=(-P)
  mkdir -p "$LAB_LOGS"
  rm -f "$KA_RUN/$n".*pid
  ip netns exec "$n" keepalived -n -l -D -G "${extra[@]}" -i "$n" -f "$(ka_conf "$n")" \
    -p "$KA_RUN/$n.pid" -r "$KA_RUN/$n.vrrp.pid" -c "$KA_RUN/$n.check.pid" -b "$KA_RUN/$n.bfd.pid" \
    >> "$LAB_LOGS/keepalived-$n.log" 2>&1 < /dev/null &
  echo $! > "$KA_RUN/$n.job"
  disown $! 2>/dev/null || true   # no "Killed" job notice when a scenario kills it
}
# ka_pids <node>: the live processes of the node's keepalived (parent and children).
ka_pids() {
  local f p
  for f in "$KA_RUN/$1.pid" "$KA_RUN/$1.vrrp.pid" "$KA_RUN/$1.check.pid" "$KA_RUN/$1.job"; do
    p=$(cat "$f" 2>/dev/null) || continue
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
  done | sort -u
}
# ka_signal <node> <SIG>: the signal to every process of the node's keepalived at once.
ka_signal() { local p; p=$(ka_pids "$1"); [ -n "$p" ] || return 1; # shellcheck disable=SC2086 # one pid per word
  kill "-$2" $p 2>/dev/null; }
ka_stop() { # ka_stop <node>: SIGTERM (keepalived removes its VIPs and IPVS config), then SIGKILL
  local n=$1 i
  ka_signal "$n" CONT 2>/dev/null || true
  ka_signal "$n" TERM 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do [ -z "$(ka_pids "$n")" ] && return 0; sleep 0.2; done
  ka_signal "$n" KILL 2>/dev/null || true
}
# ka_state <node>: MASTER/BACKUP/FAULT... from the log's last "(ingress) Entering ... STATE" line.
ka_state() { grep -o '(ingress) Entering [A-Z]* STATE' "$LAB_LOGS/keepalived-$1.log" 2>/dev/null | tail -n 1 | awk '{ print $3 }'; }

# The ARP observer: namespace arpw with one port on each VIP's bridge (brl: 192.0.2.0/24 like ir,
# brfi: 10.1.0.0/24 like the firewalls), lab/arpwatch-multi.py asking who has each VIP every 0.2 s.
arpw_up() {
  ip netns add arpw
  ip -batch - <<'B'
link add arpw-eth0 type veth peer name eth0 netns arpw
link set arpw-eth0 master brl up
link add arpw-eth1 type veth peer name eth1 netns arpw
link set arpw-eth1 master brfi up
B
  ip -n arpw -batch - <<'B'
link set lo up
link set eth0 up
link set eth1 up
B
}
arpw_down() {
  local p
  for p in $(ip netns pids arpw 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  ip netns del arpw 2>/dev/null || true
  ip link del arpw-eth0 2>/dev/null || true; ip link del arpw-eth1 2>/dev/null || true
}
# arpw_start <out prefix>: <prefix>.gw (192.0.2.254 from brl), <prefix>.fi (10.1.0.254 from brfi).
arpw_start() {
  local m1 m2 m3 m4
  m1=$(ip -n lb1 -o link show eth0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
  m2=$(ip -n lb2 -o link show eth0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
  m3=$(ip -n lb1 -o link show eth1 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
  m4=$(ip -n lb2 -o link show eth1 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
  rm -f "$LAB_RUN/arpw.stop"
  ip netns exec arpw /usr/bin/python3 "$LAB_REPO/lab/arpwatch-multi.py" \
    --watch "eth0,192.0.2.254,192.0.2.90-97,$1.gw" --watch "eth1,10.1.0.254,10.1.0.90-97,$1.fi" \
    --mac "lb1=$m1" --mac "lb2=$m2" --mac "lb1=$m3" --mac "lb2=$m4" \
    --stop-file "$LAB_RUN/arpw.stop" > "$LAB_LOGS/arpwatch.out" 2>&1 < /dev/null &
}
arpw_stop() { touch "$LAB_RUN/arpw.stop"; }
