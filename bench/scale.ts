// Many sandwiches on one 3-member etcd (issue 16 part 7): N clusters of three in-process controllers
// (lb1, lb2, er1; real EtcdStore each, hand-driven probes, recording actuators: bench/inproc.ts), all on
// one etcd on loopback. Reports, in steady state, etcd writes/s (raft proposals committed) in all and per
// controller, etcd's CPU, and sandwich 0's firewall failover (probe verdict → applied on all three nodes,
// bench/pipeline.ts's stages) alone and again with the crowd running.
//
//   npx tsc -p tsconfig.json && node dist/bench/scale.js [--sandwiches 250] [--observe-s 60] [--runs 10] [--json out.json]
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { EtcdCluster } from '../test/integration/etcd-cluster';
import { arg, strArg } from './args';
import { NODES, pct, sandwichConfig, sleep, StageRecorder, startNode, stopNodes, until, type InprocNode, type StageSamples } from './inproc';

const TICK_MS = 10; // getconf CLK_TCK = 100 on Debian

/** CPU time (ms) of a process from /proc/<pid>/stat (utime + stime). */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * TICK_MS;
}

/** Raft proposals committed (every write: puts, txns, deletes, lease grants and revokes), from the member most advanced. */
async function proposals(cluster: EtcdCluster): Promise<number> {
  const counts = await Promise.all(cluster.endpoints.map(async (u) => {
    const text = await (await fetch(`${u}/metrics`)).text();
    const m = /^etcd_server_proposals_committed_total (\S+)$/m.exec(text);
    return m ? Number(m[1]) : 0;
  }));
  return Math.max(...counts);
}

const summary = (s: StageSamples) => {
  const all = (st: 'down' | 'up') => s[st]['applied lb1'].map((_, i) => Math.max(...NODES.map((n) => s[st][`applied ${n}`][i]!)));
  const xs = [...all('down'), ...all('up')];
  return { p50: pct(xs, 0.5), p99: pct(xs, 0.99), max: Math.max(...xs) };
};

async function main(): Promise<void> {
  const sandwiches = arg('sandwiches', 250);
  const observeS = arg('observe-s', 60);
  const runs = arg('runs', 10);
  const load = [loadavg()[0]!];
  const cluster = await EtcdCluster.start({ size: 3 });
  const pids = cluster.members.map((m) => m.process!.pid!);
  const all: InprocNode[] = [];
  try {
    // Sandwich 0, measured alone first.
    const recorder = new StageRecorder();
    const first: InprocNode[] = [];
    const config0 = sandwichConfig('scale-0', cluster.endpoints);
    for (const name of NODES) {
      const n = await startNode(config0, name, (s) => recorder.wrap(s));
      first.push(n);
      if (name === 'lb1') await until('lb1 leads', () => (n.node.isLeader ? true : null));
    }
    all.push(...first);
    const alone = await recorder.measure(first, runs);
    process.stderr.write(`alone: ${JSON.stringify(summary(alone))}\n`);
    // The crowd: sandwiches 1..N-1, started a few at a time.
    for (let i = 1; i < sandwiches; i++) {
      const config = sandwichConfig(`scale-${i}`, cluster.endpoints);
      const three = await Promise.all(NODES.map((name) => startNode(config, name)));
      for (const n of three) if (n.name !== 'er1') for (const fw of ['fw1', 'fw2']) n.prober.report(fw, 'path-icmp', 'up');
      all.push(...three);
      if (i % 25 === 0) process.stderr.write(`${i} sandwiches started (${all.length} controllers, RSS ${Math.round(process.memoryUsage().rss / 2 ** 20)} MB)\n`);
    }
    await sleep(10_000);
    const p0 = await proposals(cluster);
    const c0 = pids.map(cpuMs);
    const t0 = performance.now();
    await sleep(observeS * 1000);
    const seconds = (performance.now() - t0) / 1000;
    const writesPerS = ((await proposals(cluster)) - p0) / seconds;
    const etcdCorePct = (pids.map(cpuMs).reduce((s, c, i) => s + c - c0[i]!, 0) / 1000 / seconds) * 100;
    const crowd = await recorder.measure(first, runs);
    load.push(loadavg()[0]!);
    const a = summary(alone);
    const b = summary(crowd);
    const controllers = all.length;
    console.log([
      `Scale (bench/scale.ts): ${sandwiches} sandwiches, ${controllers} in-process controllers (lease profile, TTL 2 s) on one 3-member etcd on loopback; steady state observed ${observeS} s; load average ${load.map((l) => l.toFixed(1)).join('→')}; bench process RSS ${Math.round(process.memoryUsage().rss / 2 ** 20)} MB`,
      '',
      '| measure | value |',
      '|---|---|',
      `| etcd writes/s (raft proposals committed) | ${writesPerS.toFixed(1)} |`,
      `| etcd writes/s per controller | ${(writesPerS / controllers).toFixed(3)} |`,
      `| etcd CPU, 3 members together | ${etcdCorePct.toFixed(0)} % of one core |`,
      `| sandwich 0 firewall failover alone (verdict → applied on all 3), p50 / p99 / max | ${a.p50.toFixed(1)} / ${a.p99.toFixed(1)} / ${a.max.toFixed(1)} ms |`,
      `| the same with the crowd running | ${b.p50.toFixed(1)} / ${b.p99.toFixed(1)} / ${b.max.toFixed(1)} ms |`,
    ].join('\n'));
    const out = strArg('json');
    if (out) writeFileSync(out, JSON.stringify({ sandwiches, controllers, observeS, load, writesPerS, etcdCorePct, alone, crowd }, null, 2) + '\n');
  } finally {
    await stopNodes(all);
    await cluster.destroy();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/scale: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
