// Start time and memory of one-shot `sandwich` commands (issue 16: `--version` and `status` in ≤ 150 ms): wall
// time from spawn to exit, CPU time (user + system: less sensitive than wall time to other work on a shared host)
// and peak RSS (`/usr/bin/time`), median and min of --runs runs, next to a bare `node -e ''`. `status` reads a memory-store config's status files; with --etcd URL also an etcd config's store.
//   npx tsc -p tsconfig.json && node dist/bench/cli-start.js [--runs 15] [--etcd http://127.0.0.1:2379]
//     [--bin another/bin/sandwich]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { arg, strArg } from './args';

const ROOT = join(__dirname, '..', '..');

interface Row { readonly name: string; readonly wallMs: number[]; readonly cpuMs: number[]; readonly rssKb: number[] }

function runOnce(args: string[]): { wallMs: number; cpuMs: number; rssKb: number } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', ...args], { encoding: 'utf8' });
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${args.join(' ')}: exit ${r.status}: ${r.stderr.trim()}`);
  const [rssKb, user, sys] = (r.stderr.trim().split('\n').pop() ?? '').split(' ').map(Number);
  return { wallMs, cpuMs: ((user ?? NaN) + (sys ?? NaN)) * 1000, rssKb: rssKb ?? NaN };
}

function measure(name: string, args: string[], runs: number): Row {
  runOnce(args);   // warm the page cache
  const row: Row = { name, wallMs: [], cpuMs: [], rssKb: [] };
  for (let i = 0; i < runs; i++) {
    const r = runOnce(args);
    row.wallMs.push(r.wallMs);
    row.cpuMs.push(r.cpuMs);
    row.rssKb.push(r.rssKb);
  }
  return row;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

function configs(dir: string, etcd: string | null): { memory: string; etcd: string | null } {
  const base = parse(readFileSync(join(ROOT, 'deploy', 'config.example.yaml'), 'utf8')) as Record<string, unknown>;
  const events = { ...(base.events as object), file: join(dir, 'events.jsonl') };
  const memory = join(dir, 'memory.yaml');
  writeFileSync(memory, stringify({ ...base, store: { kind: 'memory' }, runtimeDir: dir, events }));
  if (!etcd) return { memory, etcd: null };
  const etcdFile = join(dir, 'etcd.yaml');
  writeFileSync(etcdFile, stringify({ ...base, store: { ...(base.store as object), endpoints: [etcd] }, runtimeDir: dir, events }));
  return { memory, etcd: etcdFile };
}

function main(): void {
  const runs = arg('runs', 15);
  const etcd = strArg('etcd');
  const BIN = strArg('bin') ?? join(ROOT, 'bin', 'sandwich');
  const dir = mkdtempSync(join(tmpdir(), 'sandwich-cli-start-'));
  try {
    const c = configs(dir, etcd);
    const node = process.execPath;
    const rows = [
      measure("node -e ''", [node, '-e', ''], runs),
      measure('sandwich --version', [node, BIN, '--version'], runs),
      measure('sandwich --help', [node, BIN, '--help'], runs),
      measure('sandwich check-config', [node, BIN, 'check-config', c.memory], runs),
      measure('sandwich status (memory store: status files)', [node, BIN, 'status', '-c', c.memory], runs),
      ...(c.etcd ? [measure('sandwich status (etcd store)', [node, BIN, 'status', '-c', c.etcd], runs)] : []),
    ];
    console.log(`node ${process.version}, ${runs} runs each, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}, ${new Date().toISOString()}`);
    console.log('| command | wall p50 | wall min | CPU p50 | peak RSS p50 |');
    console.log('| --- | ---: | ---: | ---: | ---: |');
    for (const r of rows) {
      console.log(`| ${r.name} | ${median(r.wallMs).toFixed(0)} ms | ${Math.min(...r.wallMs).toFixed(0)} ms | ${median(r.cpuMs).toFixed(0)} ms | ${(median(r.rssKb) / 1024).toFixed(1)} MB |`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
