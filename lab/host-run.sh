#!/usr/bin/env bash
# Runs a lab command on the host (no VM), inside private network and mount namespaces, so the
# lab's namespaces and bridges cannot collide with anything else on the machine. IPVS is skipped
# (LAB_NO_IPVS=1): the host kernel has none. Cleans up with lab/topo.sh down afterwards.
#
#   lab/host-run.sh <command> [args...]      e.g. lab/host-run.sh lab/check-paths.sh --up
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 1 ] || { echo "usage: lab/host-run.sh <command> [args...]" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "host-run: must run as root" >&2; exit 2; }
mkdir -p /run/netns /run/sandwich-lab
# shellcheck disable=SC2016
exec unshare --mount --net --propagation private -- bash -c '
  here=$1; shift
  mount -t tmpfs lab-netns /run/netns && mount -t tmpfs lab-run /run/sandwich-lab || exit 2
  ip link set lo up
  export LAB_NO_IPVS=1 LAB_PRIVATE_NET=1
  rc=0; "$@" || rc=$?
  "$here/topo.sh" down > /dev/null 2>&1 || true
  exit $rc' host-run "$HERE" "$@"
