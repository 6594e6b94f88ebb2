#!/usr/bin/env bash
# Copies the kernel-output fixtures captured by the last lab/smoke.sh run ($LAB_OUT/fixtures)
# into test/unit/fixtures/kernel/ipvs/ (run on the host after lab/vm/run.sh lab/smoke.sh).
# Counters, ports and MACs differ from run to run, so existing files are kept unless --force:
# tests may depend on their exact values.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=${LAB_OUT:-$REPO/lab/out}/fixtures
dst=$REPO/test/unit/fixtures/kernel/ipvs
force=; [ "${1:-}" = --force ] && force=1
[ -f "$src/ipvsadm-Sn-fallback.txt" ] || { echo "update-fixtures: no fixtures in $src (run lab/vm/run.sh lab/smoke.sh first)" >&2; exit 2; }
mkdir -p "$dst"
new=0 kept=0 replaced=0
for f in "$src"/*; do
  b=${f##*/}
  if [ ! -e "$dst/$b" ]; then cp "$f" "$dst/$b"; new=$((new + 1))
  elif cmp -s "$f" "$dst/$b"; then :
  elif [ -n "$force" ]; then cp "$f" "$dst/$b"; replaced=$((replaced + 1))
  else kept=$((kept + 1)); fi
done
echo "update-fixtures: $dst: $new new, $replaced replaced, $kept differing kept (--force replaces them)"
