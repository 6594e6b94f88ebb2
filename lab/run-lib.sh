# shellcheck shell=bash
# Helpers for the controller runs in the VM (lab/demo.sh, lab/scenarios.sh): the sandwich without
# seed real servers, etcd, `sandwich run` for lb1 lb2 er1, the load generator, the VIP watchers,
# faults, and waits on the controllers' status files and the kernel. Sourced after lab/lib.sh.
# Every wait is bounded; times are unix seconds ($EPOCHREALTIME: no fork, same clock as the
# controllers' event timestamps and the load generator's records).
CFG=$LAB_RUN/config.yaml
SW_DIR=$LAB_OUT/sandwich                 # events/<node>/events.log, run/<node>.status.json
NODES=(lb1 lb2 er1)

ts() { echo "$EPOCHREALTIME"; }
say() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }   # narration for the console
# mark <file> <name> [detail]: one timeline marker (JSON line) at the current time.
mark() { printf '{"t":%s,"name":"%s","detail":"%s"}\n' "$EPOCHREALTIME" "$2" "${3:-}" >> "$1"; }

# The lab config with its lab/out/ paths pointing at $LAB_OUT (the repo is read-only in the VM).
# Three etcd members by default; LAB_ETCD_MEMBERS=1 (lighter on a loaded host) cuts the endpoints list to e1.
ETCD_N=${LAB_ETCD_MEMBERS:-3}
write_config() {
  mkdir -p "$LAB_RUN"
  sed "s#lab/out/#$LAB_OUT/#g" "$LAB_REPO/${LAB_CONFIG:-lab/config.lab.yaml}" > "$CFG"   # LAB_CONFIG: another lab config (lab/services.sh)
  if [ "$ETCD_N" = 1 ]; then
    sed -i 's#^  endpoints: \[http://10.9.0.1:2379, http://10.9.0.2:2379, http://10.9.0.3:2379\]#  endpoints: [http://10.9.0.1:2379]#' "$CFG"
    grep -q '^  endpoints: \[http://10.9.0.1:2379\]' "$CFG" || { echo "write_config: could not set one etcd endpoint in $CFG" >&2; return 1; }
  fi
}

# The CLI and its run-time dependencies copied to tmpfs (lab/app-files.js says why).
APP=$LAB_RUN/app
stage_app() {
  local t0=$EPOCHREALTIME
  rm -rf "$APP"; mkdir -p "$APP"
  if [ -f "$LAB_OUT/vm/app/bin/sandwich" ]; then   # bundled by lab/vm/run.sh on the host
    cp -r "$LAB_OUT/vm/app/." "$APP/"
  elif [ -f "$LAB_OUT/vm/app.tar" ]; then   # packed by lab/vm/run.sh on the host
    tar -C "$APP" -xf "$LAB_OUT/vm/app.tar"
  else
    node "$LAB_REPO/lab/app-files.js" > "$LAB_RUN/app-files.txt"
    tar -C "$LAB_REPO" -cf - -T "$LAB_RUN/app-files.txt" | tar -C "$APP" -xf -
  fi
  say "copied the controller and its dependencies to tmpfs in $(el "$t0" "$EPOCHREALTIME")s"
}
sandwich() { node "$APP/bin/sandwich" "$@"; }

node_start() { # node_start <node>: `sandwich run` inside the node's namespace, in the background
  local n=$1
  mkdir -p "$LAB_LOGS"
  ip netns exec "$n" node "$APP/bin/sandwich" run --node "$n" --config "$CFG" \
    >> "$LAB_LOGS/sandwich-$n.out" 2>&1 < /dev/null &
  echo $! > "$LAB_RUN/sandwich-$n.pid"
}
node_pid() { cat "$LAB_RUN/sandwich-$1.pid" 2>/dev/null; }
node_alive() { local p; p=$(node_pid "$1") && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
node_signal() { local p; p=$(node_pid "$1") && kill "-$2" "$p" 2>/dev/null; }
node_stop() { # node_stop <node> [timeout_s]: SIGTERM, then SIGKILL
  local n=$1 i p
  p=$(node_pid "$n") || return 0
  kill "$p" 2>/dev/null || return 0
  for ((i = 0; i < ${2:-20} * 5; i++)); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$p" 2>/dev/null || true
}
nodes_stop_all() { local n; for n in "${NODES[@]}"; do node_stop "$n" 10 & done; wait; }

# is_leader <node>: its event log says it became ingress/egress leader more recently than it
# stopped being one (bash only: no fork).
is_leader() {
  local f=$SW_DIR/$1/events.log line state=1
  [ -f "$f" ] || return 1
  state=1
  while IFS= read -r line; do
    case $line in
      *"is now "*" leader"*) state=0 ;;
      *"is no longer "*" leader"* | *"resigned "*" leadership"* | *"stopping:"*) state=1 ;;
    esac
  done < "$f"
  return $state
}

# The LB watchers (lab/watch.py, one per LB namespace, no exec per sample) keep
# $LAB_RUN/watch/<lb> = "<vip 0|1> <fw1 weight|-> <fw2 weight|->"; their change logs go to <prefix>.<lb>.
# The ARP watcher (lab/arpwatch.py, in ir) keeps $LAB_RUN/watch/arp and logs to <prefix>.arp.
watch_start() { # watch_start <log prefix>
  local n
  rm -f "$LAB_RUN/watch.stop"; mkdir -p "$LAB_RUN/watch"
  for n in lb1 lb2; do
    # shellcheck disable=SC2086 # LAB_WATCH_ARGS: extra watch.py options, split on purpose (lab/services.sh)
    ip netns exec "$n" /usr/bin/python3 "$LAB_REPO/lab/watch.py" --name "$n" --out "$1.$n" \
      --state "$LAB_RUN/watch/$n" --stop-file "$LAB_RUN/watch.stop" --max 14400 ${LAB_WATCH_ARGS:-} > "$LAB_LOGS/watch-$n.out" 2>&1 < /dev/null &
  done
  # Who answers ARP for the gateway VIP, seen from the upstream router (lab/arpwatch.py): the
  # dual-VIP measurement that respects the ARP fence. Log: <prefix>.arp; state: $LAB_RUN/watch/arp.
  local macs
  macs=lb1=$(ip -n lb1 -br link show eth0 | awk '{ print $3 }'),lb2=$(ip -n lb2 -br link show eth0 | awk '{ print $3 }')
  ip netns exec ir /usr/bin/python3 "$LAB_REPO/lab/arpwatch.py" --iface eth1 --macs "$macs" --out "$1.arp" \
    --state "$LAB_RUN/watch/arp" --stop-file "$LAB_RUN/watch.stop" --max 14400 > "$LAB_LOGS/arpwatch.out" 2>&1 < /dev/null &
  # shellcheck disable=SC2016 # expanded by eval, at each poll
  wait_until 120 "the LB watchers" eval '[ -f "$LAB_RUN/watch/lb1" ] && [ -f "$LAB_RUN/watch/lb2" ] && [ -f "$LAB_RUN/watch/arp" ]' > /dev/null
}
watch_stop() { touch "$LAB_RUN/watch.stop"; }
# arp_answering: the LBs that answered the ARP watcher's last closed request ("lb1", "lb1 lb2", "-").
arp_answering() { local l; read -r l < "$LAB_RUN/watch/arp" 2>/dev/null || return 1; echo "$l"; }
watch_state() { local v w1 w2; read -r v w1 w2 < "$LAB_RUN/watch/$1" 2>/dev/null || return 1; echo "$v $w1 $w2"; }
# has_vip <lb>: the gateway VIP is local in the namespace.
has_vip() { local v _; read -r v _ < "$LAB_RUN/watch/$1" 2>/dev/null && [ "$v" = 1 ]; }
# weights <lb>: "<fw1 weight> <fw2 weight>" of service FWM 1 (- when absent).
weights() { local _ w1 w2; read -r _ w1 w2 < "$LAB_RUN/watch/$1" 2>/dev/null || { echo "- -"; return; }; echo "$w1 $w2"; }
# table_via <table>: er1's default next hop in that table (two execs: poll it slowly).
table_via() { ip -n er1 route show table "$1" 2>/dev/null | awk '$1 == "default" { print $3; exit }'; }

# wait_until <timeout_s> <what> <command...>: polls the command (every $POLL s, default 0.3) until
# it succeeds. Prints the seconds it took; status 1 (and a message) on timeout.
wait_until() {
  local limit=$1 what=$2 t0 t1; shift 2
  t0=$EPOCHREALTIME
  until "$@"; do
    t1=$EPOCHREALTIME
    if (( ${t1%.*} - ${t0%.*} > limit )); then
      echo "timed out after ${limit}s waiting for: $what" >&2
      return 1
    fi
    sleep "${POLL:-0.3}"
  done
  el "$t0" "$EPOCHREALTIME"
}

# Conditions for wait_until.
weights_are() { local w; w=$(weights "$1"); [ "$w" = "$2 $3" ]; }
both_weights_are() { weights_are lb1 "$1" "$2" && weights_are lb2 "$1" "$2"; }
table_is() { [ "$(table_via "$1")" = "$2" ] || { sleep 1.5; return 1; }; }   # slow poll: two execs per look
vip_on() { has_vip "$1" && ! has_vip "$2"; }
leader_is() { is_leader "$1"; }

# etcd_ctl <lab/etcd.sh args>: with the lab's member count and timing (a restarted member gets the same flags).
etcd_ctl() { ETCD_MEMBERS=$ETCD_N ETCD_HEARTBEAT_MS=${ETCD_HEARTBEAT_MS:-300} ETCD_ELECTION_MS=${ETCD_ELECTION_MS:-3000} "$LAB_REPO/lab/etcd.sh" "$@"; }

# The sandwich without seed real servers, etcd, the LB watchers and the controllers; lb1 first so
# that it leads. <watch log prefix> as for watch_start.
lab_up() {
  local s
  rm -rf "$SW_DIR"; mkdir -p "$SW_DIR" "$LAB_LOGS"
  write_config
  say "building the sandwich (namespaces, bridges, firewalls, egress router, server; no real servers in IPVS) and copying the controller to tmpfs"
  stage_app &
  local stage=$!
  "$LAB_REPO/lab/topo.sh" up
  wait "$stage" || return 1
  # etcd's default 100/1000 ms heartbeat/election flaps leadership in the starved VM
  # ("leader failed to send out heartbeat on time"); the lease TTL (30 s) stays above 1.5 x election.
  # Three members by default (etcd-kill-failover needs them); LAB_ETCD_MEMBERS=1 on a loaded host:
  # three idle members alone took 33-100 % of a vCPU in TCG (lab/README.md).
  say "starting etcd ($ETCD_N member(s), heartbeat ${ETCD_HEARTBEAT_MS:-300} ms, election ${ETCD_ELECTION_MS:-3000} ms)"
  etcd_ctl start
  watch_start "$1"
  say "starting sandwich run for er1 and lb1 (a node process takes a minute or more to start in this VM)"
  node_start er1; node_start lb1
  s=$(POLL=1 wait_until "${LAB_START_TIMEOUT_S:-900}" "lb1 is ingress leader" is_leader lb1) || return 1
  say "lb1 is ingress leader (${s}s); starting sandwich run for lb2"
  node_start lb2
  s=$(wait_until 300 "lb1 holds the VIP group" vip_on lb1 lb2) || return 1
  say "lb1 holds the VIP group"
  s=$(wait_until 300 "both LBs list fw1 and fw2 at weight 100" both_weights_are 100 100) || return 1
  say "IPVS on both LBs lists both firewalls at weight 100 (${s}s more)"
  s=$(wait_until 120 "er1 tables 101/102 via fw1/fw2" eval 'table_is 101 10.2.0.11 && table_is 102 10.2.0.12') || return 1
  say "er1: table 101 via fw1 (10.2.0.11), table 102 via fw2 (10.2.0.12)"
}

lab_down() {
  watch_stop
  nodes_stop_all
  "$LAB_REPO/lab/etcd.sh" stop || true
  "$LAB_REPO/lab/topo.sh" down || true
}

# loadgen_start <out.jsonl> <duration_s> [args]: the load generator in the client namespace.
loadgen_start() {
  local out=$1 dur=$2; shift 2
  rm -f "$LAB_RUN/loadgen.stop"
  ip netns exec client /usr/bin/python3 "$LAB_REPO/lab/loadgen.py" --out "$out" --duration "$dur" \
    --stop-file "$LAB_RUN/loadgen.stop" "$@" > "$LAB_LOGS/loadgen.out" 2>&1 < /dev/null &
  echo $! > "$LAB_RUN/loadgen.pid"
}
loadgen_stop() {
  touch "$LAB_RUN/loadgen.stop"
  local p; p=$(cat "$LAB_RUN/loadgen.pid" 2>/dev/null) || return 0
  local i; for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.2; done
  kill "$p" 2>/dev/null || true
}
# loadgen_ok_since <file> <unix_t> <n>: the last n requests started after t all succeeded.
# loadgen_long_up <requests.jsonl> <n>: n long-lived connections have answered at least once.
loadgen_long_up() {
  grep -F '"k":"long"' "$1" 2>/dev/null | grep -F '"ok":true' | grep -o '"src":"[^"]*"' | sort -u | wc -l | awk -v n="$2" '{ exit ($1 >= n) ? 0 : 1 }'
}

loadgen_ok_since() {
  tail -n 400 "$1" | awk -v t="$2" -v n="$3" -F'[:,]' '/"k":"req"/ { tt = $4 + 0; if (tt >= t) { c++; ok[c] = ($8 == "true") } }
    END { if (c < n) exit 1; for (i = c - n + 1; i <= c; i++) if (!ok[i]) exit 1; exit 0 }'
}

# Faults on fw1 (or another firewall namespace).
fw_blackhole() { ip netns exec "$1" iptables -I FORWARD 1 -j DROP -m comment --comment lab-blackhole; }
fw_unblackhole() { ip netns exec "$1" iptables -D FORWARD -j DROP -m comment --comment lab-blackhole; }
