import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig, type Config } from '../../controller/config';
import { MemoryEventLog } from '../../controller/events';
import { MemoryStore } from '../../controller/memory-store';
import { Metrics } from '../../controller/metrics';
import { NodeController, type ActResult, type NodeActuator, type Prober } from '../../controller/node';
import { requestSwitchover } from '../../controller/switchover';
import type { Desired, Observation } from '../../controller/types';

const yaml = readFileSync(join(__dirname, '../../deploy/config.example.yaml'), 'utf8')
  .replace(/store:\n  kind: etcd\n(  .*\n)+/, 'store: { kind: memory }\n')
  .replace('holdDownMs: 10000', 'holdDownMs: 0\n  decideIntervalMs: 50\n  reconcileIntervalMs: 100');
const config = (): Config => parseConfig(yaml);

/** The value of `name` whose labels (besides cluster and node) are exactly `labels`, or undefined. */
async function sample(m: Metrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = m.registry.getSingleMetric(name) ?? m.registry.getSingleMetric(name.replace(/_(bucket|count|sum)$/, ''));
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const same = (l: Record<string, unknown>) => Object.keys(l).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => String(l[k]) === v);
  return values.find((x) => ((x as { metricName?: string }).metricName ?? name) === name && same(x.labels as Record<string, unknown>))?.value;
}

const obs = (firewall: string, check: string, state: Observation['state'], rttMs: number | null, lastError: string | null): Observation => ({
  node: 'lb1', role: 'ingress', firewall, check, state, since: 0, updatedAt: 0, streak: 1, lastError, rttMs,
});

const desired = (revision: number, fw1: 'up' | 'down' | 'draining', fw2: 'up' | 'down' | 'draining' = 'up'): Desired => ({
  revision, decidedBy: 'lb1', decidedAt: 0,
  firewalls: {
    fw1: { state: fw1, weight: fw1 === 'up' ? 100 : 0, egressVia: fw1 === 'up' ? 'fw1' : 'fw2', reason: '', since: 0, healthySince: null },
    fw2: { state: fw2, weight: fw2 === 'up' ? 100 : 0, egressVia: 'fw2', reason: '', since: 0, healthySince: null },
  },
});

describe('Metrics', () => {
  test('probe results: state gauge, outcome counters, RTT histogram', async () => {
    const m = new Metrics(config(), 'lb1');
    m.observation(obs('fw1', 'path-http', 'up', 2.5, null));
    m.observation(obs('fw1', 'path-http', 'up', 4, null));
    m.observation(obs('fw1', 'path-http', 'down', null, 'timeout after 800 ms'));
    m.observation(obs('fw2', 'ingress-leg', 'unknown', null, 'no route'));
    expect(await sample(m, 'sandwich_check_up', { firewall: 'fw1', check: 'path-http' })).toBe(0);
    expect(await sample(m, 'sandwich_check_up', { firewall: 'fw2', check: 'ingress-leg' })).toBe(-1);
    expect(await sample(m, 'sandwich_check_results_total', { firewall: 'fw1', check: 'path-http', result: 'success' })).toBe(2);
    expect(await sample(m, 'sandwich_check_results_total', { firewall: 'fw1', check: 'path-http', result: 'failure' })).toBe(1);
    expect(await sample(m, 'sandwich_check_rtt_seconds_count', { firewall: 'fw1', check: 'path-http' })).toBe(2);
    expect(await sample(m, 'sandwich_check_rtt_seconds_sum', { firewall: 'fw1', check: 'path-http' })).toBeCloseTo(0.0065, 6);
    expect(await sample(m, 'sandwich_check_rtt_seconds_bucket', { firewall: 'fw1', check: 'path-http', le: '0.0025' })).toBe(1);
    const text = await m.text();
    expect(text).toContain('sandwich_check_up{firewall="fw1",check="path-http",cluster="seed",node="lb1"} 0');
  });

  test('reconcile: verdicts, weights, firewall failovers, durations, drift, driver errors', async () => {
    const m = new Metrics(config(), 'lb1');
    const results: ActResult[] = [
      { results: [{ driver: 'ipvs', differences: [], commands: [], durationMs: 1 }], applied: null },
      { results: [{ driver: 'routes', differences: ['x'], commands: ['ip route replace …'], durationMs: 1, drift: true }], errors: [{ driver: 'ipvs', error: new Error('IPVS not available') }], applied: null },
    ];
    let i = 0;
    const inner: NodeActuator & { extra: () => string } = {
      reconcile: async (_d: Desired | null, _o: { holdsVips: boolean }) => results[Math.min(i++, results.length - 1)]!,
      releaseVips: async () => undefined,
      extra: () => 'passed through',
    };
    const a = m.tapActuator(inner);
    expect(a.extra()).toBe('passed through');
    await a.reconcile(desired(1, 'up'), { holdsVips: true });
    await a.reconcile(desired(2, 'down'), { holdsVips: true });
    await a.reconcile(desired(2, 'down'), { holdsVips: true });
    await a.reconcile(desired(3, 'up'), { holdsVips: true });
    await a.reconcile(desired(4, 'draining'), { holdsVips: true });
    expect(await sample(m, 'sandwich_firewall_state', { firewall: 'fw1', state: 'draining' })).toBe(1);
    expect(await sample(m, 'sandwich_firewall_state', { firewall: 'fw1', state: 'up' })).toBe(0);
    expect(await sample(m, 'sandwich_firewall_weight', { firewall: 'fw1' })).toBe(0);
    expect(await sample(m, 'sandwich_firewall_weight', { firewall: 'fw2' })).toBe(100);
    // up → down once, up → draining once; repeated passes with the same state count nothing.
    expect(await sample(m, 'sandwich_firewall_failovers_total', { firewall: 'fw1', to: 'down' })).toBe(1);
    expect(await sample(m, 'sandwich_firewall_failovers_total', { firewall: 'fw1', to: 'draining' })).toBe(1);
    expect(await sample(m, 'sandwich_desired_revision')).toBe(4);
    expect(await sample(m, 'sandwich_reconcile_duration_seconds_count', { outcome: 'ok' })).toBe(1);
    expect(await sample(m, 'sandwich_reconcile_duration_seconds_count', { outcome: 'partial' })).toBe(4);
    expect(await sample(m, 'sandwich_drift_corrections_total', { driver: 'routes' })).toBe(4);
    expect(await sample(m, 'sandwich_driver_errors_total', { driver: 'ipvs' })).toBe(4);

    const broken: NodeActuator = { reconcile: async () => { throw new Error('boom'); }, releaseVips: async () => undefined };
    const failing = m.tapActuator(broken);
    await expect(failing.reconcile(null, { holdsVips: false })).rejects.toThrow('boom');
    expect(await sample(m, 'sandwich_reconcile_duration_seconds_count', { outcome: 'exception' })).toBe(1);
  });

  test('a metrics registry per node: two nodes in one process do not clash', async () => {
    const a = new Metrics(config(), 'lb1');
    const b = new Metrics(config(), 'lb2');
    a.observation(obs('fw1', 'path-http', 'up', 1, null));
    expect(await sample(b, 'sandwich_check_results_total', { firewall: 'fw1', check: 'path-http', result: 'success' })).toBeUndefined();
    expect(() => new Metrics(config(), 'nobody')).toThrow(/node "nobody" is not in the config/);
  });

  test('process and Node.js metrics: resident memory and heap, with the node\'s labels, in each registry', async () => {
    const a = new Metrics(config(), 'lb1');
    const b = new Metrics(config(), 'lb2');
    // Read from the exposition text: prom-client sets the heap gauges together when the registry is collected.
    const value = (text: string, name: string) => Number(new RegExp(`^${name}\\{cluster="seed",node="lb\\d"\\} (\\d+)$`, 'm').exec(text)?.[1]);
    const text = await a.text();
    expect(value(text, 'process_resident_memory_bytes')).toBeGreaterThan(10 * 2 ** 20);
    expect(value(text, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(2 ** 20);
    expect(value(await b.text(), 'nodejs_heap_size_used_bytes')).toBeGreaterThan(2 ** 20);
    expect(text).toMatch(/^nodejs_heap_space_size_used_bytes\{space="old",cluster="seed",node="lb1"\} \d+$/m);
  });
});

class QuietActuator implements NodeActuator {
  async reconcile(): Promise<ActResult> {
    return { results: [], applied: null };
  }
  async releaseVips(): Promise<void> {}
}

class StaticProber implements Prober {
  constructor(readonly node: string, private readonly cb: (o: Observation, changed: boolean) => void) {}
  obs: Observation[] = [];
  start(): void {
    const now = Date.now();
    for (const fw of ['fw1', 'fw2']) for (const check of ['path-http', 'ingress-leg']) {
      const o: Observation = { node: this.node, role: 'ingress', firewall: fw, check, state: 'up', since: now, updatedAt: now, streak: 3, lastError: null, rttMs: 1 };
      this.obs.push(o);
      this.cb(o, true);
    }
  }
  async stop(): Promise<void> {}
  snapshot(): Observation[] {
    return this.obs.map((o) => ({ ...o, updatedAt: Date.now() }));
  }
}

describe('Metrics fed by real NodeControllers (events + actuator)', () => {
  const running: NodeController[] = [];
  afterEach(async () => {
    for (const n of running.splice(0)) await n.stop('test over');
  });

  test('leader gauge, leadership acquired and switchover counts follow the controllers', async () => {
    const store = new MemoryStore();
    const nodes = ['lb1', 'lb2'].map((name) => {
      const metrics = new Metrics(config(), name);
      const node = new NodeController({
        config: config(), node: name, store, events: metrics.tapEvents(new MemoryEventLog()), statusFile: false,
        actuator: metrics.tapActuator(new QuietActuator()),
        prober: (cb) => new StaticProber(name, (o, changed) => {
          metrics.observation(o);
          cb(o, changed);
        }),
      });
      metrics.attach({ isLeader: () => node.isLeader });
      running.push(node);
      return { name, node, metrics };
    });
    await nodes[0]!.node.start();
    await nodes[1]!.node.start();
    const [lb1, lb2] = nodes as [typeof nodes[0] & object, typeof nodes[0] & object];
    expect(await sample(lb1.metrics, 'sandwich_leader', { role: 'ingress' })).toBe(1);
    expect(await sample(lb1.metrics, 'sandwich_leader', { role: 'egress' })).toBe(0);
    expect(await sample(lb2.metrics, 'sandwich_leader', { role: 'ingress' })).toBe(0);
    expect(await sample(lb1.metrics, 'sandwich_leadership_acquired_total', { role: 'ingress' })).toBe(1);

    const sentence = await requestSwitchover(config(), store, 'ingress', 'lb2', 'test', 5000);
    expect(sentence).toMatch(/moved from lb1 to lb2/);
    expect(await sample(lb1.metrics, 'sandwich_switchovers_total', { role: 'ingress' })).toBe(1);
    expect(await sample(lb1.metrics, 'sandwich_leadership_lost_total', { role: 'ingress' })).toBe(0);
    expect(await sample(lb1.metrics, 'sandwich_leader', { role: 'ingress' })).toBe(0);
    expect(await sample(lb2.metrics, 'sandwich_leader', { role: 'ingress' })).toBe(1);
    expect(await sample(lb2.metrics, 'sandwich_leadership_acquired_total', { role: 'ingress' })).toBe(1);
    expect(await sample(lb2.metrics, 'sandwich_switchovers_total', { role: 'ingress' })).toBe(0);
    expect(await sample(lb1.metrics, 'sandwich_reconcile_duration_seconds_count', { outcome: 'ok' })).toBeGreaterThan(0);
    expect(await sample(lb1.metrics, 'sandwich_check_results_total', { firewall: 'fw1', check: 'path-http', result: 'success' })).toBe(1);

  }, 15_000);
});
