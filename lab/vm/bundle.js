/* eslint-disable @typescript-eslint/no-require-imports -- a plain CommonJS script run by node on the host */
// Packs the CLI for the lab VM into <out>/dist/controller/: one file (esbuild, the host bundle's options from
// scripts/bundle.js) instead of ~580 modules, plus V8's code cache for it (lab/vm/boot.js). In the TCG VM
// node spends tens of seconds resolving, reading and compiling modules at each start; measured in
// lab/README.md. One CommonJS file rather than the host's split ES modules: the code cache needs a classic
// script, and in the VM compiling costs more than parsing. The packages the bundle leaves out
// (scripts/bundle.js EXTERNAL: netlink's native addon) are copied into <out>/node_modules.
//   node lab/vm/bundle.js <out dir>      (run by lab/vm/run.sh)
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { commonOptions, copyProtos, EXTERNAL } = require('../../scripts/bundle.js');

const root = path.resolve(__dirname, '../..');
const out = path.resolve(process.argv[2] ?? path.join(root, 'lab/out/vm/app'));
const dir = path.join(out, 'dist/controller');

/** A package's run-time files (no sources, types, maps, docs, nested node_modules). */
const SKIP = /(\.d\.ts|\.d\.mts|\.d\.cts|\.ts|\.map|\.md|\.markdown|\.gyp|\.cc|\.h)$|^(LICENSE|CHANGELOG|README)/i;
function copyTree(src, dst) {
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    if (e.name === 'node_modules' || SKIP.test(e.name)) continue;
    const s = path.join(src, e.name);
    const d = path.join(dst, e.name);
    if (e.isDirectory()) copyTree(s, d);
    else {
      fs.mkdirSync(dst, { recursive: true });
      fs.copyFileSync(s, d);
    }
  }
}

/** The packages and their run-time dependencies (not @types) into <nodeModules>/. */
function copyPackages(names, nodeModules, from = root, seen = new Set()) {
  for (const name of names) {
    if (name.startsWith('@types/') || seen.has(name)) continue;
    seen.add(name);
    const pkgDir = path.dirname(require.resolve(`${name}/package.json`, { paths: [from] }));
    copyTree(pkgDir, path.join(nodeModules, name));
    const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
    copyPackages(Object.keys(pkg.dependencies ?? {}), nodeModules, pkgDir, seen);
  }
}

async function main() {
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const entry = "require('./controller/cli.ts').main(process.argv).then((code) => { process.exitCode = code; }, "
    + "(err) => { process.stderr.write(`sandwich: ${err && err.message ? err.message : err}\\n`); process.exitCode = 70; });";
  const { entryPoints: _entryPoints, ...options } = commonOptions();
  await require('esbuild').build({
    ...options,
    stdin: { contents: entry, resolveDir: root, sourcefile: 'sandwich-vm.js' },
    format: 'cjs', outfile: path.join(dir, 'sandwich.js'),
  });
  copyProtos(dir);
  copyPackages(EXTERNAL, path.join(out, 'node_modules'));
  // The packet-socket addon (gratuitous ARP from the controller itself), found by walking up from the bundle.
  const addon = 'failover/packet/build/Release/packet.node';
  if (fs.existsSync(path.join(root, addon))) {
    fs.mkdirSync(path.join(out, path.dirname(addon)), { recursive: true });
    fs.copyFileSync(path.join(root, addon), path.join(out, addon));
  }
  fs.copyFileSync(path.join(root, 'package.json'), path.join(out, 'package.json'));   // `sandwich --version`
  fs.copyFileSync(path.join(__dirname, 'boot.js'), path.join(dir, 'boot.js'));
  fs.mkdirSync(path.join(out, 'bin'));
  fs.writeFileSync(path.join(out, 'bin/sandwich'), "#!/usr/bin/env node\n'use strict';\nrequire('../dist/controller/boot.js');\n", { mode: 0o755 });
  // The code cache, from one run that loads the config (most modules' top levels run then).
  execFileSync(process.execPath, [path.join(out, 'bin/sandwich'), 'check-config', path.join(root, 'lab/config.lab.yaml')],
    { env: { ...process.env, SANDWICH_WRITE_CODE_CACHE: '1' }, stdio: ['ignore', 'ignore', 'inherit'], timeout: 60_000 });
  process.stdout.write(`${out}\n`);
}

main().catch((e) => {
  process.stderr.write(`lab/vm/bundle.js: ${e.message}\n`);
  process.exitCode = 1;
});
