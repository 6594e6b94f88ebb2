#!/usr/bin/env bash
# IPVS through generic netlink against real IPVS, inside the VM (issue 16):
#   npx tsc -p tsconfig.json && flock /tmp/sandwich-heavy.lock lab/vm/run.sh lab/ipvs-netlink.sh 900 [-- <ops>]
# Runs lab/ipvs-netlink.ts (dist/lab/ipvs-netlink.js): fwmark services created, edited and trimmed through
# netlink and compared with `ipvsadm -Sn` + /proc/net/ip_vs after each step, typed kernel refusals, then
# the cost of one weight change and one read, netlink vs ipvsadm (<ops> changes, default 200).
# Output: $LAB_OUT/ipvs-netlink/report.txt.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ops=${1:-200}
[ "${LAB_IN_VM:-}" = 1 ] || { echo "ipvs-netlink: run me in the VM: lab/vm/run.sh lab/ipvs-netlink.sh" >&2; exit 2; }
js=${LAB_REPO:?}/dist/lab/ipvs-netlink.js
[ -f "$js" ] || { echo "ipvs-netlink: $js missing: npx tsc -p tsconfig.json first" >&2; exit 2; }
modprobe ip_vs; modprobe ip_vs_sh; modprobe ip_vs_mh; modprobe ip_vs_wrr; modprobe ip_vs_rr
out=${LAB_OUT:?}/ipvs-netlink
mkdir -p "$out"
cd "$HERE/.."
node "$js" --ops "$ops" --out "$out"
