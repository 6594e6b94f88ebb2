/* eslint-disable @typescript-eslint/no-require-imports -- a plain CommonJS script run by node */
// Bundles the CLI and the daemon from the TypeScript sources with esbuild into dist/sandwich/ (run by
// bin/sandwich): sandwich.mjs, the entry, and chunks it imports when a command needs them (the sources'
// lazy `import()`s: config, daemon, etcd store, event log …). Node then reads a few files instead of
// resolving ~580 modules, and `--version` parses ~60 KB instead of all 2 MB (one file costs ~70 ms more).
//   node scripts/bundle.js [out dir]     (npm run build; scripts/setup)
// Also in the out dir: proto/ (etcd3 reads its .proto files at run time). Left out of the bundle and
// required from node_modules at run time: EXTERNAL (netlink finds its native addon relative to its package).
// lab/vm/bundle.js builds the same sources as one CommonJS file with a V8 code cache for the VM.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
/** Packages not bundled: required from node_modules at run time. */
const EXTERNAL = ['netlink'];

/** etcd3 loads `${__dirname}/../proto/rpc.proto`; in the bundle __dirname is the bundle's directory. */
const etcdProtoPath = {
  name: 'etcd3-proto-path',
  setup(build) {
    build.onLoad({ filter: /[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
      const src = fs.readFileSync(args.path, 'utf8');
      const from = '`${__dirname}/../proto/rpc.proto`';
      if (!src.includes(from)) throw new Error(`${args.path}: no ${from} to point at the bundle's proto/ (etcd3 changed?)`);
      return { contents: src.replace(from, '`${__dirname}/proto/rpc.proto`'), loader: 'js' };
    });
  },
};

/** zod's messages in English only: its ~40 other locales are 300 KB of the bundle, parsed by every config load. */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(build) {
    build.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, () => ({ contents: 'export { default as en } from "./en.js";', loader: 'js', resolveDir: path.join(root, 'node_modules/zod/v4/locales') }));
  },
};

/** esbuild options shared by the host's bundle and the lab VM's. */
function commonOptions() {
  return {
    entryPoints: { sandwich: path.join(root, 'controller/cli.ts') },
    bundle: true, platform: 'node', target: 'node20',
    external: EXTERNAL,
    plugins: [etcdProtoPath, zodEnglishOnly],
    minifyWhitespace: true, minifySyntax: true, legalComments: 'none', logLevel: 'warning',
  };
}

/** etcd3's .proto files into <dir>/proto. */
function copyProtos(dir) {
  const src = path.join(path.dirname(require.resolve('etcd3/package.json', { paths: [root] })), 'proto');
  const dst = path.join(dir, 'proto');
  fs.mkdirSync(dst, { recursive: true });
  for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dst, f));
}

// CommonJS dependencies bundled into ES modules still call require() and read __dirname / __filename.
const ESM_BANNER = "import{createRequire as __cr}from'node:module';import{fileURLToPath as __fu}from'node:url';import{dirname as __dn}from'node:path';"
  + 'const require=__cr(import.meta.url),__filename=__fu(import.meta.url),__dirname=__dn(__filename);';

/** The host's bundle: ES modules split at the lazy imports. Returns the entry file. */
async function bundle(outdir = path.join(root, 'dist/sandwich')) {
  fs.rmSync(outdir, { recursive: true, force: true });
  await require('esbuild').build({
    ...commonOptions(),
    format: 'esm', splitting: true, outdir, outExtension: { '.js': '.mjs' }, chunkNames: '[name]-[hash]',
    banner: { js: ESM_BANNER },
  });
  copyProtos(outdir);
  return path.join(outdir, 'sandwich.mjs');
}

module.exports = { bundle, commonOptions, copyProtos, EXTERNAL };

if (require.main === module) {
  bundle(process.argv[2] ? path.resolve(process.argv[2]) : undefined).then(
    (file) => process.stdout.write(`${file}\n`),
    (e) => { process.stderr.write(`bundle: ${e.message}\n`); process.exitCode = 1; },
  );
}
