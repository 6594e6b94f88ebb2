/* eslint-disable @typescript-eslint/no-require-imports -- a plain CommonJS script run by node in the VM */
// Prints the files `bin/sandwich` needs at run time, relative to the repo root: bin/, dist/,
// package.json and the production dependency closure (no *.ts, maps or docs). The lab copies
// them to tmpfs in the VM: loading the CLI from the 9p share costs ~40 s per process there
// (a 9p round trip per stat and read), from tmpfs a fraction of it.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const pkgDirs = new Set();
function resolveDep(name, fromDir) {
  for (let d = fromDir; ; d = path.dirname(d)) {
    const cand = path.join(d, 'node_modules', name);
    if (fs.existsSync(path.join(cand, 'package.json'))) return cand;
    if (d === root || d === path.dirname(d)) return null;
  }
}
function walk(dir) {
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const deps = { ...pkg.dependencies, ...pkg.optionalDependencies };
  for (const name of Object.keys(deps)) {
    const d = resolveDep(name, dir);
    if (!d || pkgDirs.has(d)) continue;   // optional and absent, or seen
    pkgDirs.add(d);
    walk(d);
  }
}
walk(root);
const SKIP = /(\.d\.ts|\.d\.mts|\.d\.cts|\.ts|\.map|\.md|\.markdown)$|^(LICENSE|CHANGELOG|README)/i;
const out = [];
function files(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name === 'node_modules') continue;   // nested packages are in pkgDirs themselves
      files(p);
    } else if ((e.isFile() || e.isSymbolicLink()) && !SKIP.test(e.name)) out.push(path.relative(root, p));
  }
}
for (const d of pkgDirs) files(d);
for (const d of ['bin', 'dist']) if (fs.existsSync(path.join(root, d))) files(path.join(root, d));
out.push('package.json');
// The packet-socket addon (gratuitous ARP from the controller itself); without it the controller uses arping.
const addon = 'failover/packet/build/Release/packet.node';
if (fs.existsSync(path.join(root, addon))) out.push(addon);
process.stdout.write(out.join('\n') + '\n');
