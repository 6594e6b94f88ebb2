/* eslint-disable @typescript-eslint/no-require-imports -- a plain CommonJS loader run by node in the VM */
// Runs the one-file bundle of the CLI (lab/vm/bundle.js) next to this file with V8's code cache:
// in the TCG VM compiling the CLI's JavaScript costs seconds per process. The cache is written
// by `bundle.js` on the host (same node binary); V8 rejects it if node or its flags differ, and
// the bundle then compiles as usual.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');

const file = path.join(__dirname, 'sandwich.js');
const cacheFile = `${file}.cache`;
let cachedData;
try {
  cachedData = fs.readFileSync(cacheFile);
} catch {
  cachedData = undefined;
}
const script = new vm.Script(Module.wrap(fs.readFileSync(file, 'utf8')), { filename: file, cachedData });
const mod = new Module(file, module);
mod.filename = file;
mod.paths = [];
script.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(file), mod, file, __dirname);
if (process.env.SANDWICH_WRITE_CODE_CACHE === '1') {
  // After the run, so functions compiled lazily while it ran are in the cache too.
  process.on('exit', () => fs.writeFileSync(cacheFile, script.createCachedData()));
} else if (process.env.SANDWICH_CODE_CACHE_REPORT === '1') {
  process.stderr.write(`code cache ${cachedData ? (script.cachedDataRejected ? 'rejected' : 'used') : 'absent'}\n`);
}
