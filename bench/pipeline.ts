// The decision pipeline, stage by stage (issue 16 part 4): from a probe's failing verdict to the desired
// state applied on both LBs and the egress router. Three in-process NodeControllers (lb1, lb2, er1) on a
// real 3-member etcd on loopback (fast raft flags), each with its own EtcdStore, a hand-driven prober and
// a recording actuator (no kernel: this measures the pipeline, not the drivers). Per transition:
//   observation written  lb1's putObservation of the verdict resolved
//   decided              the leader's putDesired carrying it started (decide() done)
//   desired written      that putDesired resolved
//   applied <node>       <node>'s actuator was asked to apply a desired state with the new fw1 state
// all from the moment the probes of lb1 and lb2 report fw1 down (or up again), alternating.
//
//   npx tsc -p tsconfig.json && node dist/bench/pipeline.js [--runs 50] [--members 3] [--json out.json]
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseConfig } from '../controller/config';
import { EtcdStore } from '../controller/etcd-store';
import { MemoryEventLog } from '../controller/events';
import { NodeController, type ActResult, type NodeActuator } from '../controller/node';
import type { Desired } from '../controller/types';
import { EtcdCluster } from '../test/integration/etcd-cluster';
import { FakeProber } from '../test/unit/fixtures/node-fakes';
import { arg, strArg } from './args';

const NODES = ['lb1', 'lb2', 'er1'] as const;
type Stage = 'observation written' | 'decided' | 'desired written' | `applied ${(typeof NODES)[number]}`;
const STAGES: Stage[] = ['observation written', 'decided', 'desired written', ...NODES.map((n) => `applied ${n}` as Stage)];

function configFor(endpoints: string[]): string {
  return `
cluster: pipeline-bench
store: { kind: etcd, endpoints: [${endpoints.join(', ')}], callTimeoutMs: 1000, leaseTtlS: 2 }
timing: { decideIntervalMs: 500, reconcileIntervalMs: 60000, holdDownMs: 0, observationStaleMs: 60000 }
nodes:
  - { name: lb1, role: ingress, interfaces: { client: eth0, firewall: eth1 }, probe: { interface: firewall, sources: { fw1: 10.1.0.21, fw2: 10.1.0.22 } } }
  - { name: lb2, role: ingress, interfaces: { client: eth0, firewall: eth1 }, probe: { interface: firewall, sources: { fw1: 10.1.0.31, fw2: 10.1.0.32 } } }
  - { name: er1, role: egress, interfaces: { firewall: eth1, server: eth2 }, probe: { interface: firewall, sources: { fw1: 10.2.0.21, fw2: 10.2.0.22 } } }
firewalls:
  - { name: fw1, ingressAddress: 10.1.0.11, egressAddress: 10.2.0.11, egressMac: "02:00:00:00:f1:0e", mark: 1, table: 101 }
  - { name: fw2, ingressAddress: 10.1.0.12, egressAddress: 10.2.0.12, egressMac: "02:00:00:00:f2:0e", mark: 2, table: 102 }
checks:
  - { name: path-icmp, kind: icmp, scope: path, from: ingress, target: 198.51.100.10, intervalMs: 50, timeoutMs: 40, rise: 1, fall: 1 }
services:
  - { name: web, fwmark: 1, scheduler: sh }
vipGroups:
  - { name: ingress, role: ingress, addresses: [{ address: 192.0.2.254/24, interface: client }] }
egress: { routes: [default] }
`;
}

/** Records when it was asked to apply which fw1 state. */
class RecordingActuator implements NodeActuator {
  seen: { at: number; state: string | undefined }[] = [];
  async reconcile(desired: Desired | null): Promise<ActResult> {
    this.seen.push({ at: performance.now(), state: desired?.firewalls.fw1?.state });
    return { results: [], applied: null };
  }
  async releaseVips(): Promise<void> {}
  firstWith(state: string, since: number): number | null {
    return this.seen.find((s) => s.at >= since && s.state === state)?.at ?? null;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, f: () => T | null, ms = 10_000): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const v = f();
    if (v !== null) return v;
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(1);
  }
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] ?? NaN;
};

async function main(): Promise<void> {
  const runs = arg('runs', 50);
  const members = arg('members', 3);
  const load = [loadavg()[0]!];
  const cluster = await EtcdCluster.start({ size: members });
  const config = parseConfig(configFor(cluster.endpoints));
  const stores: EtcdStore[] = [];
  const nodes: { name: string; node: NodeController; prober: FakeProber; actuator: RecordingActuator }[] = [];
  /** Stage marks of the transition under way. */
  let marks: Partial<Record<Stage, number>> = {};
  let want = 'down';
  try {
    for (const name of NODES) {
      const store = EtcdStore.fromConfig(config);
      stores.push(store);
      const put = store.putObservation.bind(store);
      store.putObservation = async (o) => {
        await put(o);
        if (o.node === 'lb1' && o.firewall === 'fw1' && o.state === want) marks['observation written'] ??= performance.now();
      };
      const putDesired = store.putDesired.bind(store);
      store.putDesired = async (d, v, l) => {
        const carries = d.firewalls.fw1?.state === want;
        if (carries) marks.decided ??= performance.now();
        const ok = await putDesired(d, v, l);
        if (carries && ok) marks['desired written'] ??= performance.now();
        return ok;
      };
      const actuator = new RecordingActuator();
      let prober!: FakeProber;
      const role = name === 'er1' ? 'egress' : 'ingress';
      const node = new NodeController({
        config, node: name, store, events: new MemoryEventLog(), actuator, statusFile: false,
        prober: (cb) => (prober = new FakeProber(name, role, cb)),
      });
      await node.start();
      nodes.push({ name, node, prober, actuator });
      if (name === 'lb1') await until('lb1 leads', () => (node.isLeader ? true : null));
    }
    const report = (state: 'up' | 'down') => {
      for (const n of nodes) if (n.name !== 'er1') for (const fw of ['fw1', 'fw2']) n.prober.report(fw, 'path-icmp', fw === 'fw1' ? state : 'up');
    };
    report('up');
    await until('fw1 up everywhere', () => (nodes.every((n) => n.actuator.firstWith('up', 0) !== null) ? true : null));
    await sleep(500);
    const samples: Record<'down' | 'up', Record<Stage, number[]>> = {
      down: Object.fromEntries(STAGES.map((s) => [s, []])) as unknown as Record<Stage, number[]>,
      up: Object.fromEntries(STAGES.map((s) => [s, []])) as unknown as Record<Stage, number[]>,
    };
    for (let i = 0; i < 2 * runs; i++) {
      const state = i % 2 === 0 ? 'down' : 'up';
      want = state;
      marks = {};
      const t0 = performance.now();
      report(state);
      for (const n of nodes) marks[`applied ${n.name}` as Stage] = await until(`${n.name} applies fw1 ${state}`, () => n.actuator.firstWith(state, t0));
      await until('every stage seen', () => (STAGES.every((s) => marks[s] !== undefined) ? true : null), 2000);
      for (const s of STAGES) samples[state][s].push(marks[s]! - t0);
      await sleep(100 + Math.random() * 100);
    }
    load.push(loadavg()[0]!);
    const lines = [
      `Pipeline (bench/pipeline.ts): ${runs} transitions each way, ${members}-member etcd on loopback, 3 in-process controllers, load average ${load.map((l) => l.toFixed(1)).join('→')}`,
      '',
      '| transition | stage | p50 | p99 | max |',
      '|---|---|---|---|---|',
    ];
    for (const state of ['down', 'up'] as const) {
      for (const s of STAGES) {
        const xs = samples[state][s];
        lines.push(`| fw1 ${state} | ${s} | ${pct(xs, 0.5).toFixed(1)} ms | ${pct(xs, 0.99).toFixed(1)} ms | ${Math.max(...xs).toFixed(1)} ms |`);
      }
    }
    console.log(lines.join('\n'));
    const out = strArg('json');
    if (out) writeFileSync(out, JSON.stringify({ runs, members, load, samples }, null, 2) + '\n');
  } finally {
    for (const n of nodes) await n.node.stop('bench over').catch(() => undefined);
    for (const s of stores) await s.close().catch(() => undefined);
    await cluster.destroy();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/pipeline: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
