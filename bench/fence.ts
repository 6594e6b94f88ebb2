// ARP fence refresh latency (issue 9): how late the kernel applies a refreshed element after its timeout was
// computed (the δ the fast profile's margin must cover), one nft process per refresh vs one long-lived
// `nft -e -i`, alternating in the same run. Time = refresh() call to return (nft exited / generation line),
// an upper bound of δ. Runs in a scratch network namespace it creates and deletes.
//   npx tsc -p tsconfig.json && node dist/bench/fence.js [--refreshes 300] [--json out.json]
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { ArpFence } from '../failover/fence';
import { ExecRunner, ExecSpawner, NetnsRunner, NetnsSpawner } from '../failover/runner';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
}

async function main(): Promise<void> {
  const n = Number(arg('refreshes', '300'));
  const jsonOut = arg('json', '');
  if (!Number.isInteger(n) || n < 10 || n > 100_000) throw new Error(`--refreshes: want an integer 10..100000, got "${arg('refreshes', '')}"`);
  const sh = new ExecRunner(5000);
  const ns = `fb${process.pid % 100000}`;
  await sh.run('ip', ['netns', 'add', ns]);
  const cleanup = () => sh.run('ip', ['netns', 'del', ns]).catch(() => undefined);
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    const inNs = new NetnsRunner(sh, ns);
    const until = () => performance.now() + 60_000;
    const vips = ['192.0.2.254/24', '10.1.0.254/24'];
    const oneShot = new ArpFence(inNs, vips, until, { table: 'fb_run' });
    const session = new ArpFence(inNs, vips, until, { table: 'fb_session', spawner: new NetnsSpawner(new ExecSpawner(), ns) });
    await oneShot.hold();
    await session.hold();
    await session.refresh(); // starts the long-lived nft (not counted)
    const times: Record<'run' | 'session', number[]> = { run: [], session: [] };
    const load0 = loadavg()[0]!;
    for (let i = 0; i < n; i++) {
      for (const [name, f] of [['run', oneShot], ['session', session]] as const) {
        const t = performance.now();
        if (!(await f.refresh())) throw new Error(`${name}: refresh skipped`);
        times[name].push(performance.now() - t);
      }
    }
    const load1 = loadavg()[0]!;
    await oneShot.release();
    await session.release();
    await session.close(); // the long-lived nft
    const row = (name: 'run' | 'session') => ({ p50: pct(times[name], 50), p99: pct(times[name], 99), max: Math.max(...times[name]) });
    const result = { refreshes: n, cpus: cpus().length, cpu: cpus()[0]?.model, load: [load0, load1], run: row('run'), session: row('session') };
    const f = (x: number) => `${x.toFixed(2)} ms`;
    console.log(`ARP fence refresh, ${n} each, alternating; load ${load0.toFixed(1)} → ${load1.toFixed(1)} on ${result.cpus} CPUs`);
    console.log('| nft | p50 | p99 | max |\n| --- | --- | --- | --- |');
    for (const k of ['run', 'session'] as const) console.log(`| ${k === 'run' ? 'one process per refresh' : 'long-lived nft -e -i'} | ${f(result[k].p50)} | ${f(result[k].p99)} | ${f(result[k].max)} |`);
    console.log(`ratio one process ÷ long-lived: p50 ${(result.run.p50 / result.session.p50).toFixed(1)}×, p99 ${(result.run.p99 / result.session.p99).toFixed(1)}×`);
    if (jsonOut) writeFileSync(jsonOut, JSON.stringify(result, null, 2) + '\n');
  } finally {
    await cleanup();
  }
}

main().catch((e: unknown) => {
  console.error(`bench/fence: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
