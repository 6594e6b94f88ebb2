#!/usr/bin/env bash
# Reconcile latency with real IPVS (issue #6 part 2), inside the VM:
#   flock /tmp/sandwich-heavy.lock lab/vm/run.sh lab/bench-reconcile.sh 1800 [-- <changes> <firewalls>]
# Runs bench/reconcile.ts (built into dist/ by `npx tsc -p tsconfig.json`) twice in the same VM: an
# ingress node (IPVS fwmark service with <firewalls> real servers, weight 0 <-> 100 per change) and an
# egress node (routing tables, conntrack flush), <changes> each (default 40: every exec costs
# 0.2-2 s under TCG). Each run also times one trivial command (the exec floor at that moment), so the
# figures read as multiples of it. Output: $LAB_OUT/bench-reconcile/{ingress,egress}.txt.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
changes=${1:-40}
firewalls=${2:-64}
[ -d /proc/sys/net/ipv4/vs ] || { echo "bench-reconcile: no IPVS here: run me with lab/vm/run.sh lab/bench-reconcile.sh" >&2; exit 2; }
js=$LAB_REPO/dist/bench/reconcile.js
[ -f "$js" ] || { echo "bench-reconcile: $js missing: npx tsc -p tsconfig.json first" >&2; exit 2; }
out=$LAB_OUT/bench-reconcile
mkdir -p "$out"
cd "$HERE/.."
for role in ingress egress; do
  echo "== $role: $changes changes, $firewalls firewalls, kernel $(uname -r), qemu TCG"
  node "$js" --role "$role" --changes "$changes" --firewalls "$firewalls" 2>&1 | tee "$out/$role.txt"
done
