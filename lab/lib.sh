# shellcheck shell=bash
# Helpers sourced by the lab scripts (bash). Sets LAB_REPO, LAB_OUT, LAB_RUN, LAB_LOGS.
LAB_REPO=${LAB_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
LAB_OUT=${LAB_OUT:-$LAB_REPO/lab/out}
LAB_RUN=${LAB_RUN:-/run/sandwich-lab}      # pids, generated scripts, etcd data (tmpfs in the VM)
LAB_LOGS=${LAB_LOGS:-$LAB_OUT/logs}        # kept after the VM stops
export LAB_REPO LAB_OUT LAB_RUN LAB_LOGS

x() { ip netns exec "$@"; }
# now: seconds since boot (monotonic, no fork); el <t0> <t1>: difference, 2 decimals.
now() { local u _; read -r u _ < /proc/uptime; echo "$u"; }
el() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
log() { echo "[$(now)] $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# wait_file <file> <timeout_s>: poll for a file (10 polls/s).
wait_file() {
  local i=0 n=$(( $2 * 10 ))
  while [ ! -e "$1" ]; do
    i=$((i + 1)); [ "$i" -le "$n" ] || return 1
    sleep 0.1
  done
}

# clients <first> <last> [max_time_s]: one request from each client address, one python process
# (lab/clients.py); prints "ok=N fail=M (failed: ...)"; status 1 if any failed.
clients() {
  x client /usr/bin/python3 "$LAB_REPO/lab/clients.py" --first "$1" --last "$2" --timeout "${3:-3}" "${@:4}"
}

# curl_clients <first> <last> [max_time_s] [path]: one request from each client address
# 203.0.113.<first..last> to the server; prints "ok=N fail=M (failed: .a .b)"; status 1 if any failed.
curl_clients() {
  local first=$1 last=$2 tmo=${3:-3} path=${4:-/} i r ok=0 bad=0 badlist=
  for ((i = first; i <= last; i++)); do
    if r=$(x client curl -sS --max-time "$tmo" --interface "203.0.113.$i" "http://198.51.100.10$path" 2>&1) \
      && [ "$r" = "hello from srv" ]; then ok=$((ok + 1)); else bad=$((bad + 1)); badlist="$badlist .$i"; fi
  done
  echo "ok=$ok fail=$bad${badlist:+ (failed:$badlist)}"
  [ "$bad" -eq 0 ]
}
