#!/usr/bin/env bash
# Proves the probe addressing: from each LB's probe source for fwN, an HTTP request to the
# server's /health goes out through fwN and its reply comes back through fwN (egress CONNMARK);
# from each egress probe source, fwN's egress address answers ping. Uses temporary policy routes
# (from <source> lookup 200+i, as the controller would set them) and removes them afterwards.
#   lab/check-paths.sh [--up]     --up: build the topology first (lab/topo.sh up)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab/lib.sh
. "$HERE/lib.sh"
[ "${1:-}" = --up ] && "$HERE/topo.sh" up
wait_file "$LAB_RUN/httpd.ready" 30 || fail "the HTTP server is not running (lab/topo.sh up first)"

# rules <ns> add|del <dev> <source prefix>: from <prefix>1 via fw1 (table 200), <prefix>2 via fw2 (201).
rules() {
  local near=10.1.0; [ "$1" = er1 ] && near=10.2.0
  printf 'rule %s from %s1 lookup 200 pref 1000\nroute %s default via %s.11 dev %s table 200\n' "$2" "$4" "$2" "$near" "$3"
  printf 'rule %s from %s2 lookup 201 pref 1000\nroute %s default via %s.12 dev %s table 201\n' "$2" "$4" "$2" "$near" "$3"
}
bad=0
declare -A reply
for lb in lb1 lb2; do
  pre=10.1.0.$((${lb#lb} + 1))      # lb1: 10.1.0.21/.22, lb2: 10.1.0.31/.32
  rules "$lb" add eth1 "$pre" | ip -n "$lb" -batch -
  # shellcheck disable=SC2016
  out=$(x "$lb" sh -c 'for s in "$@"; do printf "%s " "$s"; curl -sS --max-time 5 --interface "$s" http://198.51.100.10/health 2>&1 | head -1; done' \
    sh "${pre}1" "${pre}2") || true
  rules "$lb" del eth1 "$pre" | ip -n "$lb" -batch -
  while read -r s r; do reply[$s]=$r; done <<< "$out"
done
# Which firewall saw each probe connection (sources of tcp/80 conntrack entries).
declare -A seen
for i in 1 2; do
  for s in $(x "fw$i" conntrack -L -p tcp --dport 80 2>/dev/null | grep -o 'src=10\.1\.0\.[23][12] ' | sort -u | cut -d= -f2); do
    seen[$s]="${seen[$s]:-}fw$i "
  done
done
for lb in lb1 lb2; do
  for i in 1 2; do
    s=10.1.0.$((${lb#lb} + 1))$i
    if [ "${reply[$s]:-}" = ok ] && [ "${seen[$s]:-}" = "fw$i " ]; then log "path $lb ($s) -> fw$i -> srv /health: ok"
    else log "path $lb ($s) -> fw$i -> srv /health: FAILED (reply \"${reply[$s]:-}\", seen by: ${seen[$s]:-none})"; bad=$((bad + 1)); fi
  done
done
rules er1 add eth0 10.2.0.2 | ip -n er1 -batch -
for i in 1 2; do
  if x er1 ping -c 1 -W 2 -I "10.2.0.2$i" "10.2.0.1$i" > /dev/null; then log "leg er1 (10.2.0.2$i) -> fw$i egress 10.2.0.1$i: ok"
  else log "leg er1 (10.2.0.2$i) -> fw$i egress 10.2.0.1$i: FAILED"; bad=$((bad + 1)); fi
done
rules er1 del eth0 10.2.0.2 | ip -n er1 -batch -
[ "$bad" -eq 0 ] || fail "$bad probe path(s) failed"
log "check-paths: all 6 probe paths ok"
