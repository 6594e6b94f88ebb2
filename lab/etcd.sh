#!/usr/bin/env bash
# etcd in the lab's etcd namespace on the management net: members e1 e2 e3 at
# http://10.9.0.{1,2,3}:2379 (config.lab.yaml's store.endpoints), or e1 alone (ETCD_MEMBERS=1). Data in $LAB_RUN/etcd
# (tmpfs), logs in $LAB_LOGS/etcd-eN.log.
#
#   lab/etcd.sh start        start every member that is not running, wait until all are healthy
#   lab/etcd.sh start --no-wait, later lab/etcd.sh wait   (start, do other work, then wait)
#   lab/etcd.sh stop         stop all members (SIGTERM)
#   lab/etcd.sh kill <eN>    SIGKILL one member (a crash; SIGTERM would hand leadership over)
#   lab/etcd.sh health       etcdctl endpoint health for all members
#   lab/etcd.sh leader       prints the raft leader's name (eN); status 1 if no member says it leads
# Env: ETCD_HEARTBEAT_MS (100), ETCD_ELECTION_MS (1000): etcd's defaults; lease TTL >= ~1.5 x election.
# ETCD_GOMAXPROCS (1). ETCD_MEMBERS (3): 1 runs e1 alone.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab/lib.sh
. "$HERE/lib.sh"
export ETCDCTL_API=3
D=$LAB_RUN/etcd
N=${ETCD_MEMBERS:-3}   # 1 or 3: e1 alone, or e1 e2 e3
[[ $N =~ ^[13]$ ]] || { echo "etcd.sh: ETCD_MEMBERS must be 1 or 3, got \"$N\"" >&2; exit 2; }
ENDPOINTS='' CLUSTER=''
for ((i = 1; i <= N; i++)); do
  ENDPOINTS=$ENDPOINTS${ENDPOINTS:+,}http://10.9.0.$i:2379; CLUSTER=$CLUSTER${CLUSTER:+,}e$i=http://10.9.0.$i:2380
done
die() { echo "etcd.sh: $*" >&2; exit 2; }
running() { [ -f "$D/$1.pid" ] && kill -0 "$(cat "$D/$1.pid")" 2>/dev/null; }
ctl() { etcdctl "$@"; }   # from the root namespace: 10.9.0.254 on bridge brm

start() {
  [ -e /run/netns/etcd ] || die "no etcd namespace (lab/topo.sh up first)"
  command -v etcd > /dev/null || die "etcd missing (apt-get install etcd-server)"
  mkdir -p "$D" "$LAB_LOGS"
  local i
  now > "$D/started"
  for ((i = 1; i <= N; i++)); do
    running "e$i" && continue
    # GOMAXPROCS=1: idle Go schedulers spinning on two emulated CPUs cost the TCG VM a lot (lab/README.md).
    ip netns exec etcd setsid env GOMAXPROCS="${ETCD_GOMAXPROCS:-1}" etcd --name "e$i" --data-dir "$D/e$i" \
      --listen-client-urls "http://10.9.0.$i:2379" --advertise-client-urls "http://10.9.0.$i:2379" \
      --listen-peer-urls "http://10.9.0.$i:2380" --initial-advertise-peer-urls "http://10.9.0.$i:2380" \
      --initial-cluster "$CLUSTER" --initial-cluster-token sandwich-lab --initial-cluster-state new \
      --heartbeat-interval "${ETCD_HEARTBEAT_MS:-100}" --election-timeout "${ETCD_ELECTION_MS:-1000}" \
      --log-level warn --logger zap >> "$LAB_LOGS/etcd-e$i.log" 2>&1 < /dev/null &
    echo $! > "$D/e$i.pid"
  done
  [ "${1:-}" = --no-wait ] || wait_healthy
}
wait_healthy() {
  local t0 limit=${ETCD_START_TIMEOUT_S:-120}
  t0=$(cat "$D/started" 2>/dev/null || now)
  until ctl --endpoints "$ENDPOINTS" --command-timeout 2s endpoint health > /dev/null 2>&1; do
    [ "$(el "$t0" "$(now)" | cut -d. -f1)" -lt "$limit" ] || die "etcd not healthy after $limit s; see $LAB_LOGS/etcd-e*.log"
    sleep 0.5
  done
  log "etcd: $N member(s) healthy in $(el "$t0" "$(now)")s ($ENDPOINTS)"
}
stop() {
  local i
  for i in 1 2 3; do running "e$i" && kill "$(cat "$D/e$i.pid")"; rm -f "$D/e$i.pid"; done
  return 0
}
case ${1:-} in
  start) start "${2:-}" ;;
  wait) wait_healthy ;;
  stop) stop ;;
  kill) [[ ${2:-} =~ ^e[123]$ ]] || die "kill needs a member: e1, e2 or e3"
        running "$2" || die "$2 is not running"; kill -9 "$(cat "$D/$2.pid")"; rm -f "$D/$2.pid" ;;
  health) ctl --endpoints "$ENDPOINTS" --command-timeout 2s endpoint health ;;
  # `endpoint status -w simple`: endpoint, ID, version, db size, is leader, ... (one line per member)
  leader) { ctl --endpoints "$ENDPOINTS" --command-timeout 5s endpoint status -w simple 2>/dev/null || true; } \
            | awk -F', ' '$5 == "true" { if (match($1, /10\.9\.0\.[123]:/)) { print "e" substr($1, RSTART + 7, 1); found = 1; exit } } END { exit !found }' ;;
  *) die "usage: lab/etcd.sh start [--no-wait]|wait|stop|kill <eN>|health|leader" ;;
esac
