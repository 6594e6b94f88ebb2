// In-process sandwiches for the pipeline and scale benches: three NodeControllers (lb1, lb2, er1) per
// cluster, each with its own EtcdStore on a shared etcd, a hand-driven prober and a recording actuator
// (no kernel: these benches measure coordination, not the drivers).
import { parseConfig, type Config } from '../controller/config';
import { EtcdStore } from '../controller/etcd-store';
import { MemoryEventLog } from '../controller/events';
import { NodeController, type ActResult, type NodeActuator } from '../controller/node';
import type { Desired } from '../controller/types';
import { FakeProber } from '../test/unit/fixtures/node-fakes';

export const NODES = ['lb1', 'lb2', 'er1'] as const;
export type NodeName = (typeof NODES)[number];

/** Timing: the defaults (decide 500 ms, reconcile 2 s, observations stale after 15 s) but no hold-down. */
export function sandwichConfig(cluster: string, endpoints: string[], timing = 'holdDownMs: 0'): Config {
  return parseConfig(`
cluster: ${cluster}
store: { kind: etcd, endpoints: [${endpoints.join(', ')}], callTimeoutMs: 2000, leaseTtlS: 2 }
timing: { ${timing} }
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
`);
}

/** Records when it was asked to apply which fw1 state. */
export class RecordingActuator implements NodeActuator {
  seen: { at: number; state: string | undefined }[] = [];
  async reconcile(desired: Desired | null): Promise<ActResult> {
    this.seen.push({ at: performance.now(), state: desired?.firewalls.fw1?.state });
    if (this.seen.length > 1000) this.seen.splice(0, 500);
    return { results: [], applied: null };
  }
  async releaseVips(): Promise<void> {}
  firstWith(state: string, since: number): number | null {
    return this.seen.find((s) => s.at >= since && s.state === state)?.at ?? null;
  }
}

export interface InprocNode {
  readonly name: NodeName;
  readonly node: NodeController;
  readonly store: EtcdStore;
  readonly prober: FakeProber;
  readonly actuator: RecordingActuator;
}

/** A started controller; `wrap` may instrument its store before it starts. */
export async function startNode(config: Config, name: NodeName, wrap: (s: EtcdStore) => void = () => undefined): Promise<InprocNode> {
  const store = EtcdStore.fromConfig(config);
  wrap(store);
  const actuator = new RecordingActuator();
  let prober!: FakeProber;
  const node = new NodeController({
    config, node: name, store, events: new MemoryEventLog(), actuator, statusFile: false,
    prober: (cb) => (prober = new FakeProber(name, name === 'er1' ? 'egress' : 'ingress', cb)),
  });
  await node.start();
  return { name, node, store, prober, actuator };
}

/** The LBs' probes report fw1 in `state` and fw2 up. */
export function reportFw1(nodes: readonly InprocNode[], state: 'up' | 'down'): void {
  for (const n of nodes) if (n.name !== 'er1') for (const fw of ['fw1', 'fw2']) n.prober.report(fw, 'path-icmp', fw === 'fw1' ? state : 'up');
}

export async function stopNodes(nodes: readonly InprocNode[]): Promise<void> {
  for (const n of nodes) await n.node.stop('bench over').catch(() => undefined);
  for (const n of nodes) await n.store.close().catch(() => undefined);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(what: string, f: () => T | null, ms = 10_000): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const v = f();
    if (v !== null) return v;
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(1);
  }
}

export const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] ?? NaN;
};

export type Stage = 'observation written' | 'decided' | 'desired written' | `applied ${NodeName}`;
export const STAGES: Stage[] = ['observation written', 'decided', 'desired written', ...NODES.map((n) => `applied ${n}` as Stage)];
export type StageSamples = Record<'down' | 'up', Record<Stage, number[]>>;

/**
 * Marks when each stage of one fw1 transition happened: lb1's observation written, the leader's putDesired
 * carrying it started (decided) and resolved (desired written), each node asked to apply it.
 */
export class StageRecorder {
  private want = 'down';
  private marks: Partial<Record<Stage, number>> = {};

  /** Instruments a store before its node starts. */
  wrap(store: EtcdStore): void {
    const put = store.putObservation.bind(store);
    store.putObservation = async (o) => {
      await put(o);
      if (o.node === 'lb1' && o.firewall === 'fw1' && o.state === this.want) this.marks['observation written'] ??= performance.now();
    };
    const putDesired = store.putDesired.bind(store);
    store.putDesired = async (d, v, l) => {
      const carries = d.firewalls.fw1?.state === this.want;
      if (carries) this.marks.decided ??= performance.now();
      const ok = await putDesired(d, v, l);
      if (carries && ok) this.marks['desired written'] ??= performance.now();
      return ok;
    };
  }

  /** `runs` transitions each way (down, up, down, …), each from the probes' report to every node applying it. */
  async measure(nodes: readonly InprocNode[], runs: number): Promise<StageSamples> {
    const empty = () => Object.fromEntries(STAGES.map((s) => [s, [] as number[]])) as Record<Stage, number[]>;
    const samples: StageSamples = { down: empty(), up: empty() };
    reportFw1(nodes, 'up');
    await until('fw1 up everywhere', () => (nodes.every((n) => n.actuator.firstWith('up', 0) !== null) ? true : null), 60_000);
    await sleep(500);
    for (let i = 0; i < 2 * runs; i++) {
      const state = i % 2 === 0 ? 'down' : 'up';
      this.want = state;
      this.marks = {};
      const t0 = performance.now();
      reportFw1(nodes, state);
      for (const n of nodes) this.marks[`applied ${n.name}`] = await until(`${n.name} applies fw1 ${state}`, () => n.actuator.firstWith(state, t0), 30_000);
      await until('every stage seen', () => (STAGES.every((s) => this.marks[s] !== undefined) ? true : null), 5000);
      for (const s of STAGES) samples[state][s].push(this.marks[s]! - t0);
      await sleep(100 + Math.random() * 100);
    }
    return samples;
  }
}

/** Markdown rows: transition | stage | p50 | p99 | max (plus `extra` cells first). */
export function stageRows(samples: StageSamples, extra: string[] = []): string[] {
  const rows: string[] = [];
  for (const state of ['down', 'up'] as const) {
    for (const s of STAGES) {
      const xs = samples[state][s];
      rows.push(`| ${[...extra, `fw1 ${state}`, s].join(' | ')} | ${pct(xs, 0.5).toFixed(1)} ms | ${pct(xs, 0.99).toFixed(1)} ms | ${Math.max(...xs).toFixed(1)} ms |`);
    }
  }
  return rows;
}
