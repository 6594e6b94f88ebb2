#!/usr/bin/env bash
# Validates a sandwich config (default lab/config.lab.yaml) with the controller's own parser:
# compiles controller/config.ts alone into lab/out/dist and runs loadConfig on the file.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cfg=$(realpath "${1:-$REPO/lab/config.lab.yaml}")
cd "$REPO"
npx tsc controller/config.ts --outDir lab/out/dist --module nodenext --moduleResolution nodenext \
  --target es2022 --strict --skipLibCheck --types node
node -e '
const { loadConfig } = require(process.argv[1]);
try {
  const c = loadConfig(process.argv[2]);
  console.log(`${process.argv[2]}: ok (cluster ${c.cluster}; nodes ${c.nodes.map((n) => n.name).join(", ")}; firewalls ${c.firewalls.map((f) => f.name).join(", ")})`);
} catch (e) { console.error(e.message); process.exit(1); }' "$REPO/lab/out/dist/config.js" "$cfg"
