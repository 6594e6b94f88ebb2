/* eslint-disable @typescript-eslint/no-require-imports -- a plain CommonJS script run by node on the host */
// Packs the CLI for the lab VM into <out>/dist/controller/: one file (esbuild) instead of ~580
// modules, plus V8's code cache for it (lab/vm/boot.js). In the TCG VM node spends tens of seconds
// resolving, reading and compiling modules at each start; measured in lab/README.md.
//   node lab/vm/bundle.js <out dir>      (run by lab/vm/run.sh after `tsc -p tsconfig.build.json`)
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.resolve(__dirname, '../..');
const out = path.resolve(process.argv[2] ?? path.join(root, 'lab/out/vm/app'));
const dir = path.join(out, 'dist/controller');
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(dir, { recursive: true });
require('esbuild').buildSync({
  // bin/sandwich without its shebang line
  stdin: { contents: fs.readFileSync(path.join(root, 'bin/sandwich'), 'utf8').replace(/^#!.*\n/, ''), resolveDir: path.join(root, 'bin'), sourcefile: 'bin/sandwich' },
  bundle: true, platform: 'node', target: 'node20', format: 'cjs',
  // A native addon finds its binary next to its own files: loaded from the repo's node_modules (the
  // bundle lives under the repo, so require() walks up to it).
  external: ['netlink'],
  minifyWhitespace: true, minifySyntax: true, legalComments: 'none', logLevel: 'warning',
  outfile: path.join(dir, 'sandwich.js'),
});
// etcd3 loads its .proto files at run time from <its lib dir>/../proto.
fs.mkdirSync(path.join(out, 'dist/proto'));
const protoDir = path.join(path.dirname(require.resolve('etcd3/package.json', { paths: [root] })), 'proto');
for (const f of fs.readdirSync(protoDir)) fs.copyFileSync(path.join(protoDir, f), path.join(out, 'dist/proto', f));
fs.copyFileSync(path.join(root, 'package.json'), path.join(out, 'package.json'));   // `sandwich --version`
fs.copyFileSync(path.join(__dirname, 'boot.js'), path.join(dir, 'boot.js'));
fs.mkdirSync(path.join(out, 'bin'));
fs.writeFileSync(path.join(out, 'bin/sandwich'), "#!/usr/bin/env node\n'use strict';\nrequire('../dist/controller/boot.js');\n", { mode: 0o755 });
// The code cache, from one run that loads the config (most modules' top levels run then).
execFileSync(process.execPath, [path.join(out, 'bin/sandwich'), 'check-config', path.join(root, 'lab/config.lab.yaml')],
  { env: { ...process.env, SANDWICH_WRITE_CODE_CACHE: '1' }, stdio: ['ignore', 'ignore', 'inherit'], timeout: 60_000 });
process.stdout.write(`${out}\n`);
