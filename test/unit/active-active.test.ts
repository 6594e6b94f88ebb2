// Active-active VIP groups (docs/active-active.md): config, the path verdict, the actuator's path step,
// the node's hold/withdraw, and status.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { pathDrainFile, pathVerdict, readPathDrain, removePathDrain, writePathDrain } from '../../controller/active-active';
import { main } from '../../controller/cli';
import { ConfigError, parseConfig, type Config } from '../../controller/config';
import { MemoryEventLog } from '../../controller/events';
import { MemoryStore } from '../../controller/memory-store';
import { Metrics } from '../../controller/metrics';
import { NodeController, type ActResult, type NodeActuator } from '../../controller/node';
import { formatStatus, type StatusReport } from '../../controller/status';
import type { Desired, Observation } from '../../controller/types';
import { Actuator, isReadCommand, PATH_FENCE_TABLE } from '../../failover/actuator';
import { FakeRunner, type RecordedCall } from '../../failover/runner';
import { ManualTimers } from '../../failover/timers';
import { FakeKernel } from './fixtures/kernel/fake-kernel';
import { FakeProber, until, wait } from './fixtures/node-fakes';
import { previousDesired } from './fixtures/snapshot';

const EXAMPLE = readFileSync(join(__dirname, '../../deploy/config.example.yaml'), 'utf8');
const AA_GROUP = `vipGroups:
  - name: ingress
    role: ingress
    mode: active-active
    paths:
      - { node: lb1, address: 192.0.2.21/24, interface: client }
      - { node: lb1, address: 10.1.0.251/24, interface: firewall }
      - { node: lb2, address: 192.0.2.22/24, interface: client }
      - { node: lb2, address: 10.1.0.252/24, interface: firewall }
`;
const aaYaml = (group = AA_GROUP) => EXAMPLE.replace(/vipGroups:\n(  .*\n|\n)*?(?=egress:)/, `${group}\n`);
const memoryYaml = (group = AA_GROUP) => aaYaml(group)
  .replace(/store:\n  kind: etcd\n(  .*\n)+/, 'store: { kind: memory }\n')
  .replace('holdDownMs: 10000', 'holdDownMs: 0\n  decideIntervalMs: 50\n  reconcileIntervalMs: 200');

function issues(yaml: string): string[] {
  try {
    parseConfig(yaml);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map((i) => `${i.path}: ${i.message}`);
    throw e;
  }
  return [];
}

const writes = (r: FakeRunner) =>
  r.calls.filter((c) => !isReadCommand(c.file, c.args) && c.file !== 'nft').flatMap((c) =>
    c.file === 'ip' && c.args[0] === '-batch' ? (c.input ?? '').trim().split('\n').map((l) => `ip ${l}`) : [[c.file, ...c.args].join(' ')]);

describe('config: vipGroups[].mode active-active', () => {
  it('the example with an active-active group is valid; leader stays the default mode', () => {
    const c = parseConfig(aaYaml());
    expect(c.vipGroups[0]).toMatchObject({ mode: 'active-active', addresses: [], pathFenceMs: 3000 });
    expect(c.vipGroups[0]!.paths).toHaveLength(4);
    expect(parseConfig(EXAMPLE).vipGroups[0]!.mode).toBe('leader');
  });

  it('names the path and the fault', () => {
    expect(issues(aaYaml(AA_GROUP.replace('    paths:\n', '    addresses: [{ address: 192.0.2.254/24, interface: client }]\n    paths:\n')))).toEqual([
      expect.stringMatching(/^vipGroups\.0\.addresses: VIP group "ingress" is active-active: it has no address moving between nodes/),
    ]);
    expect(issues(aaYaml(AA_GROUP.replace(/    paths:\n(      .*\n)+/, '')))).toEqual([
      'vipGroups.0.paths: VIP group "ingress" is active-active and needs paths: one address per ingress node (lb1, lb2)',
    ]);
    expect(issues(aaYaml(AA_GROUP.replace('mode: active-active', 'mode: leader')))).toEqual([
      'vipGroups.0.addresses: VIP group "ingress" (mode leader) needs at least one address',
      'vipGroups.0.paths: paths are for mode active-active; VIP group "ingress" is mode leader (set mode: active-active, or remove paths)',
    ]);
    expect(issues(aaYaml(AA_GROUP.replace('node: lb2, address: 192.0.2.22/24', 'node: er1, address: 192.0.2.22/24')))).toEqual([
      'vipGroups.0.paths.2.node: node "er1" is an egress node; VIP group "ingress" belongs to ingress nodes',
    ]);
    expect(issues(aaYaml(AA_GROUP.replace('node: lb2, address: 192.0.2.22/24', 'node: lb9, address: 192.0.2.22/24')))).toEqual([
      'vipGroups.0.paths.2.node: unknown node "lb9" (known: lb1, lb2, er1)',
    ]);
    expect(issues(aaYaml(AA_GROUP.replace('interface: client }\n      - { node: lb1', 'interface: uplink }\n      - { node: lb1')))).toEqual([
      'vipGroups.0.paths.0.interface: node "lb1" has no interface "uplink" (its interfaces: client, firewall)',
    ]);
    expect(issues(aaYaml(AA_GROUP.replace(/      - \{ node: lb2.*\n/g, '')))).toEqual([
      'vipGroups.0.paths: ingress node "lb2" has no path address in active-active VIP group "ingress" (every ingress node needs one)',
    ]);
    expect(issues(aaYaml(AA_GROUP.replace('192.0.2.22/24', '192.0.2.21/24')))).toEqual([
      'vipGroups: duplicate VIP or path address "192.0.2.21" (also at index 0)',
    ]);
  });
});

describe('pathVerdict', () => {
  const config = parseConfig(memoryYaml());
  const node = config.nodes[0]!;
  const obs = (firewall: string, check: string, state: Observation['state'], nodeName = 'lb1', lastError: string | null = null): Observation =>
    ({ node: nodeName, role: 'ingress', firewall, check, state, since: 0, updatedAt: 0, streak: 3, lastError, rttMs: null });
  const allUp = ['fw1', 'fw2'].flatMap((f) => [obs(f, 'path-http', 'up'), obs(f, 'ingress-leg', 'up')]);
  const base = { config, node, lifecycle: 'RUNNING', stopping: false, hasDesired: true, observations: allUp };

  it('holds while running, with a desired state and a usable firewall', () => {
    expect(pathVerdict(base)).toEqual({ hold: true, reason: 'lb1 holds its path: 2 of 2 firewalls usable from lb1 (fw1, fw2)', usable: ['fw1', 'fw2'] });
    const one = [obs('fw1', 'path-http', 'down', 'lb1', 'timeout after 800 ms'), obs('fw1', 'ingress-leg', 'up'), ...allUp.slice(2)];
    expect(pathVerdict({ ...base, observations: one }).reason).toBe('lb1 holds its path: 1 of 2 firewalls usable from lb1 (fw2)');
  });

  it('withdraws when stopping, before a desired state, or with no firewall usable from this node', () => {
    expect(pathVerdict({ ...base, lifecycle: 'STARTING' })).toMatchObject({ hold: false, reason: 'lb1 withdraws its path: controller STARTING' });
    expect(pathVerdict({ ...base, stopping: true }).reason).toBe('lb1 withdraws its path: controller stopping');
    expect(pathVerdict({ ...base, hasDesired: false }).reason).toMatch(/no desired state read from the store yet/);
    const none = [obs('fw1', 'path-http', 'down', 'lb1', 'timeout after 800 ms'), obs('fw1', 'ingress-leg', 'up'), obs('fw2', 'path-http', 'unknown')];
    expect(pathVerdict({ ...base, observations: none })).toEqual({
      hold: false, usable: [],
      reason: 'lb1 withdraws its path: no firewall usable from lb1 (fw1: path-http down (timeout after 800 ms); fw2: path-http unknown, ingress-leg not run yet)',
    });
  });

  it('withdraws while drained by the operator, whatever the probes say', () => {
    expect(pathVerdict({ ...base, drain: { by: 'alice', reason: 'kernel upgrade', since: 0 } })).toMatchObject({
      hold: false, reason: 'lb1 withdraws its path: drained by alice (kernel upgrade); `sandwich undrain-node --node lb1` returns it',
    });
  });

  it("judges by this node's own probes only: the other LB's view does not count", () => {
    const others = allUp.map((o) => ({ ...o, node: 'lb2' }));
    expect(pathVerdict({ ...base, observations: others }).hold).toBe(false);
  });

  it('service-only checks do not take the whole path away', () => {
    const c = parseConfig(memoryYaml().replace('  - { name: web, fwmark: 1, scheduler: sh }', '  - { name: web, fwmark: 1, scheduler: sh, checks: [path-http] }'));
    const o = [obs('fw1', 'path-http', 'down'), obs('fw1', 'ingress-leg', 'up'), obs('fw2', 'path-http', 'down'), obs('fw2', 'ingress-leg', 'up')];
    expect(pathVerdict({ ...base, config: c, node: c.nodes[0]!, observations: o }).hold).toBe(true);
  });
});

describe('Actuator: path addresses of an active-active group', () => {
  const config = parseConfig(aaYaml());

  it('adds them last (after IPVS) with a gratuitous ARP, never the leader VIPs; withdraws them first', async () => {
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    const r = new FakeRunner(k.handle);
    const act = new Actuator(config, 'lb1', r, { timers: new ManualTimers() });
    const res = await act.reconcile(null, { holdsVips: true, holdsPaths: true });
    expect(res.errors).toEqual([]);
    const w = writes(r);
    expect(w.slice(-4)).toEqual([
      'ip addr add 192.0.2.21/24 dev eth0',
      'ip addr add 10.1.0.251/24 dev eth1',
      'arping -U -c 3 -I eth0 192.0.2.21',
      'arping -U -c 3 -I eth1 10.1.0.251',
    ]);
    expect(w.findIndex((x) => x.startsWith('ipvsadm -R'))).toBeLessThan(w.indexOf('ip addr add 192.0.2.21/24 dev eth0'));
    expect(w.some((x) => x.includes('192.0.2.254'))).toBe(false);
    expect(res.applied.vips).toEqual([{ group: 'ingress', mode: 'active-active', held: true, addresses: ['192.0.2.21/24 dev eth0', '10.1.0.251/24 dev eth1'] }]);
    r.calls.length = 0;
    expect(writes(r)).toEqual([]);
    await act.reconcile(null, { holdsVips: true, holdsPaths: true });
    expect(writes(r)).toEqual([]);
    const off = await act.reconcile(null, { holdsVips: false, holdsPaths: false });
    expect(writes(r)).toEqual(['ip addr del 192.0.2.21/24 dev eth0', 'ip addr del 10.1.0.251/24 dev eth1']);
    expect(off.results[0]!.driver).toBe('path:ingress');
    act.close();
  });

  it('both LBs end with the same IPVS table for the same desired state, even after a hand-made re-add on one', async () => {
    const ka = new FakeKernel(['eth0', 'eth1', 'lo']);
    const kb = new FakeKernel(['eth0', 'eth1', 'lo']);
    const a = new Actuator(config, 'lb1', new FakeRunner(ka.handle), { timers: new ManualTimers() });
    const b = new Actuator(config, 'lb2', new FakeRunner(kb.handle), { timers: new ManualTimers() });
    const up = previousDesired(config, { fw1: 'up', fw2: 'up' }, 3);
    await a.reconcile(up, { holdsVips: false, holdsPaths: true });
    await b.reconcile(up, { holdsVips: false, holdsPaths: true });
    // Someone deletes and re-adds fw1 by hand on lb2: the kernel puts it at the end of lb2's list.
    await new FakeRunner(kb.handle).run('ipvsadm', ['-R'], { input: '-d -f 1 -r 10.1.0.11:0\n-a -f 1 -r 10.1.0.11:0 -g -w 100\n' });
    expect(kb.ipvs.order(1)).toEqual(['10.1.0.12', '10.1.0.11']);
    const down = previousDesired(config, { fw1: 'down', fw2: 'up' }, 4);
    const ra = await a.reconcile(down, { holdsVips: false, holdsPaths: true });
    const rb = await b.reconcile(down, { holdsVips: false, holdsPaths: true });
    expect([...ra.errors, ...rb.errors]).toEqual([]);
    // Same real servers, same order, same weights: sh hashes every client to the same firewall on both.
    expect(kb.ipvs.order(1)).toEqual(ka.ipvs.order(1));
    expect(ka.ipvs.order(1)).toEqual(['10.1.0.11', '10.1.0.12']);
    expect(kb.ipvs.services.get('-f 1')).toEqual(ka.ipvs.services.get('-f 1'));
    expect(rb.applied.ipvs).toEqual(ra.applied.ipvs);
    a.close();
    b.close();
  });

  it('a removed path address is drift and comes back with an announcement', async () => {
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    const r = new FakeRunner(k.handle);
    const act = new Actuator(config, 'lb2', r, { timers: new ManualTimers() });
    await act.reconcile(null, { holdsVips: false, holdsPaths: true });
    k.addrs.set('eth0', (k.addrs.get('eth0') ?? []).filter((a) => !a.startsWith('192.0.2.22')));
    r.calls.length = 0;
    const res = await act.reconcile(null, { holdsVips: false, holdsPaths: true });
    // Like the leader's VIPs: a re-add announces the whole group again.
    expect(writes(r)).toEqual(['ip addr add 192.0.2.22/24 dev eth0', 'arping -U -c 3 -I eth0 192.0.2.22', 'arping -U -c 3 -I eth1 10.1.0.252']);
    expect(res.results.find((x) => x.driver === 'path:ingress')).toMatchObject({ drift: true });
    act.close();
  });

  it('not held while IPVS failed this pass (its table may differ from the other LB\'s)', async () => {
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    k.ipvsAvailable = false;
    const r = new FakeRunner(k.handle);
    const act = new Actuator(config, 'lb1', r, { timers: new ManualTimers() });
    const res = await act.reconcile(null, { holdsVips: false, holdsPaths: true });
    expect(res.errors.map((e) => e.driver)).toEqual(['ipvs', 'path:ingress']);
    expect(res.errors[1]!.error.message).toBe("path:ingress: path not taken: the IPVS step failed this pass (this node's table may differ from the other nodes')");
    expect(writes(r).some((x) => x.includes('192.0.2.21'))).toBe(false);
    act.close();
  });

  it('wantPaths is asked again at the path step; canAnnouncePaths before each ARP', async () => {
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    const r = new FakeRunner(k.handle);
    const act = new Actuator(config, 'lb1', r, { timers: new ManualTimers(), canAnnouncePaths: () => false });
    await act.reconcile(null, { holdsVips: false, holdsPaths: true, wantPaths: () => false });
    expect(writes(r).some((x) => x.includes('192.0.2.21'))).toBe(false);
    await act.reconcile(null, { holdsVips: false, holdsPaths: true, wantPaths: () => true });
    expect(writes(r).filter((x) => x.includes('192.0.2.21'))).toEqual(['ip addr add 192.0.2.21/24 dev eth0']);
    act.close();
  });

  it('with pathFenceUntil: the path fence table goes in before the addresses and out after them', async () => {
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    const order: string[] = [];
    const r = new FakeRunner((c: RecordedCall) => {
      if (c.file === 'nft') {
        const script = c.args[0] ?? '';
        expect(script).toContain(`arp ${PATH_FENCE_TABLE}`);
        order.push(`nft ${script.includes('chain output') ? 'install' : script.includes('delete element') ? 'refresh' : 'remove'}`);
        return '';
      }
      if (c.file === 'ip' && c.args[1] === 'add' && c.args[2] === '192.0.2.21/24') order.push('addr add');
      if (c.file === 'ip' && c.args[1] === 'del' && c.args[2] === '192.0.2.21/24') order.push('addr del');
      return k.handle(c);
    });
    let until = performance.now() + 3000;
    const act = new Actuator(config, 'lb1', r, { timers: new ManualTimers(), pathFenceUntil: () => until, fenceUntil: () => 0 });
    expect(act.fence).toBeNull(); // no leader-mode group on this node
    expect(act.pathFence).not.toBeNull();
    await act.reconcile(null, { holdsVips: false, holdsPaths: true });
    const install = r.calls.find((c) => c.file === 'nft')!;
    expect(install.args[0]).toContain('arp saddr ip { 192.0.2.21, 10.1.0.251 } drop');
    until += 2000;
    expect(await act.refreshPathFence()).toBe(true);
    await act.releasePaths();
    expect(order).toEqual(['nft install', 'addr add', 'nft refresh', 'addr del', 'nft remove']);
    act.close();
  });
});

class FakeActuator implements NodeActuator {
  calls: { holdsVips: boolean; holdsPaths?: boolean }[] = [];
  pathReleases = 0;
  fenceRefreshes = 0;
  /** Set: every pass that wants the path fails it (as when IPVS failed). */
  pathError: string | null = null;
  /** Set: the next passes wait for it (a slow reconcile). */
  gate: Promise<void> | null = null;
  async reconcile(_d: Desired | null, opts: { holdsVips: boolean; holdsPaths?: boolean }): Promise<ActResult> {
    this.calls.push({ holdsVips: opts.holdsVips, ...(opts.holdsPaths !== undefined ? { holdsPaths: opts.holdsPaths } : {}) });
    if (this.gate) await this.gate;
    const errors = opts.holdsPaths && this.pathError ? [{ driver: 'path:ingress', error: new Error(this.pathError) }] : [];
    return { results: [], errors, applied: {} };
  }
  async releaseVips(): Promise<void> {}
  async releasePaths(): Promise<void> {
    this.pathReleases++;
  }
  async refreshPathFence(): Promise<boolean> {
    this.fenceRefreshes++;
    return true;
  }
  last() {
    return this.calls[this.calls.length - 1];
  }
}

describe('NodeController with an active-active group', () => {
  function make(store: MemoryStore, name: string, config: Config) {
    const events = new MemoryEventLog();
    const actuator = new FakeActuator();
    let prober!: FakeProber;
    const node = new NodeController({ config, node: name, store, events, actuator, statusFile: false, prober: (cb) => (prober = new FakeProber(name, 'ingress', cb)) });
    return { node, events, actuator, prober: () => prober };
  }

  it('holds its path once a desired state is known and its own probes see a firewall; withdraws when none or drained; releases on stop', async () => {
    const runDir = mkdtempSync(join(tmpdir(), 'sw-aa-node-'));
    const config = parseConfig(memoryYaml().replace('cluster: seed', `cluster: seed\nruntimeDir: ${runDir}`));
    const store = new MemoryStore();
    const { node, events, actuator, prober } = make(store, 'lb1', config);
    await node.start();
    try {
      await until(() => actuator.calls.length > 1);
      expect(actuator.last()!.holdsPaths).toBe(false); // probes not up yet
      for (const fw of ['fw1', 'fw2']) for (const k of ['path-http', 'ingress-leg']) prober().report(fw, k, 'up');
      await until(() => node.holdsPaths);
      expect(actuator.last()!.holdsPaths).toBe(true);
      // The first verdict may have seen fw1 only (the observations arrive one by one); no leader-VIP event.
      expect(events.events.filter((e) => e.event === 'vip').map((e) => e.reason)).toEqual([expect.stringMatching(/^lb1 holds its path: [12] of 2 firewalls usable from lb1 \(fw1(, fw2)?\); path addresses of ingress \(192\.0\.2\.21\/24, 10\.1\.0\.251\/24\) added, gratuitous ARP sent$/)]);
      expect(events.events.some((e) => e.event === 'vip' && /lb1 holds its path: [12] of 2 firewalls usable from lb1 \(fw1(, fw2)?\); path addresses of ingress \(192\.0\.2\.21\/24, 10\.1\.0\.251\/24\) added/.test(e.reason))).toBe(true);
      await until(() => actuator.fenceRefreshes > 0);
      prober().report('fw1', 'path-http', 'down');
      await wait(100);
      expect(node.holdsPaths).toBe(true);
      prober().report('fw2', 'path-http', 'down');
      await until(() => !node.holdsPaths);
      // Straight to the path addresses, not behind a reconcile.
      expect(actuator.pathReleases).toBe(1);
      expect(events.events.some((e) => e.event === 'vip' && e.level === 'warn' && /lb1 withdraws its path: no firewall usable from lb1/.test(e.reason))).toBe(true);
      // The VIP leader logic is unchanged: lb1 leads (it decides), but no leader group exists to hold.
      expect(node.isLeader).toBe(true);
      prober().report('fw2', 'path-http', 'up');
      await until(() => node.holdsPaths);
      // drain-node on this host: withdrawn at the next 100 ms check, back after undrain.
      writePathDrain(pathDrainFile(config, 'lb1'), { by: 'test', reason: 'maintenance', since: 0 });
      await until(() => !node.holdsPaths);
      expect(events.events.some((e) => e.reason.startsWith('lb1 withdraws its path: drained by test (maintenance)'))).toBe(true);
      removePathDrain(pathDrainFile(config, 'lb1'));
      await until(() => node.holdsPaths);
      await wait(300); // a reconcile pass publishes the node's status
      expect((await store.listNodeStatus()).find((x) => x.node === 'lb1')?.paths).toEqual({ held: true, reason: 'lb1 holds its path: 1 of 2 firewalls usable from lb1 (fw2)' }); // fw1's path-http is still down
    } finally {
      await node.stop('test over');
    }
    rmSync(runDir, { recursive: true, force: true });
    expect(actuator.pathReleases).toBe(3);
    expect(events.events.some((e) => /lb1 withdraws its path: controller stopping \(test over\)/.test(e.reason))).toBe(true);
  });

  it('a pass that fails to take the path leaves it not held, reports it once, retries about once a second', async () => {
    const config = parseConfig(memoryYaml());
    const { node, events, actuator, prober } = make(new MemoryStore(), 'lb1', config);
    actuator.pathError = 'path:ingress: path not taken: the IPVS step failed this pass';
    await node.start();
    try {
      for (const fw of ['fw1', 'fw2']) for (const k of ['path-http', 'ingress-leg']) prober().report(fw, k, 'up');
      await until(() => actuator.calls.some((c) => c.holdsPaths === true));
      const first = actuator.calls.length;
      await wait(1500);
      expect(node.holdsPaths).toBe(false);
      // Retries: about one per second (and the periodic reconcile every 200 ms here), not one per 100 ms check.
      expect(actuator.calls.length - first).toBeLessThan(15);
      expect(events.events.filter((e) => e.event === 'error' && /path not taken/.test(e.reason))).toHaveLength(1);
      actuator.pathError = null;
      await until(() => node.holdsPaths);
    } finally {
      await node.stop('test over');
    }
  });

  it('on stop the path goes first, without waiting for a reconcile pass still under way', async () => {
    const config = parseConfig(memoryYaml());
    const { node, events, actuator, prober } = make(new MemoryStore(), 'lb1', config);
    await node.start();
    for (const fw of ['fw1', 'fw2']) for (const k of ['path-http', 'ingress-leg']) prober().report(fw, k, 'up');
    await until(() => node.holdsPaths);
    let open!: () => void;
    actuator.gate = new Promise((r) => (open = r));
    const passes = actuator.calls.length;
    await until(() => actuator.calls.length > passes);   // a pass is now stuck in the actuator
    const stopped = node.stop('SIGTERM');
    await until(() => actuator.pathReleases === 1);
    expect(node.holdsPaths).toBe(false);
    expect(events.events.some((e) => /lb1 withdraws its path: controller stopping \(SIGTERM\)/.test(e.reason))).toBe(true);
    expect(events.events.some((e) => /lb1 stopped/.test(e.reason))).toBe(false);   // still waiting for the pass
    open();
    await stopped;
    expect(events.events.some((e) => /lb1 stopped/.test(e.reason))).toBe(true);
  });

  it('a node without path groups never asks for paths', async () => {
    const config = parseConfig(EXAMPLE.replace(/store:\n  kind: etcd\n(  .*\n)+/, 'store: { kind: memory }\n'));
    const { node, actuator } = make(new MemoryStore(), 'lb1', config);
    await node.start();
    await node.stop('test over');
    expect(actuator.calls.every((c) => c.holdsPaths === undefined)).toBe(true);
    expect(actuator.pathReleases).toBe(0);
  });
});

describe('status', () => {
  it('shows the mode, which nodes hold their paths, and each node\'s verdict', () => {
    const node = (name: string, held: boolean, reason: string) => ({
      node: name, role: 'ingress' as const, lifecycle: 'RUNNING', updatedAt: 0, appliedRevision: 3, holdsVips: false, applied: null, drift: [], stale: false, paths: { held, reason },
    });
    const s: StatusReport = {
      cluster: 'seed', source: 'store', now: '2026-11-25T00:00:00.000Z', leaders: { ingress: { role: 'ingress', node: 'lb1', since: 0 } },
      desired: null, drains: [], observations: [],
      nodes: [node('lb1', true, 'lb1 holds its path: 2 of 2 firewalls usable from lb1 (fw1, fw2)'), node('lb2', false, 'lb2 withdraws its path: no firewall usable from lb2 (fw1: path-http down)')],
      vipGroups: [{ name: 'ingress', role: 'ingress', mode: 'active-active', nodes: ['lb1', 'lb2'] }],
    };
    const out = formatStatus(s);
    expect(out).toContain('ingress leader: lb1 since 00:00:00.000\n');
    expect(out).toContain('ingress VIP group ingress: active-active, paths held by lb1 (of lb1, lb2)');
    expect(out).toContain('path held: lb1 holds its path: 2 of 2 firewalls usable from lb1 (fw1, fw2)');
    expect(out).toContain('path WITHDRAWN: lb2 withdraws its path: no firewall usable from lb2 (fw1: path-http down)');
  });
});

describe('metrics', () => {
  it('sandwich_path_held{group}: 1 while held, 0 withdrawn; no series on a node without a path', async () => {
    const value = async (m: Metrics) => (await m.registry.getSingleMetric('sandwich_path_held')!.get()).values.map((v) => [v.labels.group, v.value]);
    const m = new Metrics(parseConfig(aaYaml()), 'lb1');
    let held = true;
    m.attach({ isLeader: () => false, holdsPaths: () => held });
    expect(await value(m)).toEqual([['ingress', 1]]);
    held = false;
    expect(await value(m)).toEqual([['ingress', 0]]);
    const er1 = new Metrics(parseConfig(aaYaml()), 'er1');
    er1.attach({ isLeader: () => false, holdsPaths: () => false });
    expect(await value(er1)).toEqual([]);
  });
});

describe('sandwich drain-node / undrain-node', () => {
  async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await main(['node', 'sandwich', ...args], { out: (x) => (out += `${x}\n`), err: (x) => (err += `${x}\n`) });
    return { code, out, err };
  }

  it('writes and removes the drain file the node reads; refuses a node without a path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sw-aa-'));
    try {
      const file = join(dir, 'config.yaml');
      writeFileSync(file, memoryYaml().replace('cluster: seed', `cluster: seed\nruntimeDir: ${dir}/run`));
      const config = parseConfig(memoryYaml().replace('cluster: seed', `cluster: seed\nruntimeDir: ${dir}/run`));
      const r = await run('drain-node', '--node', 'lb1', '--reason', 'kernel upgrade', '--config', file);
      expect(r).toMatchObject({ code: 0, err: '' });
      expect(r.out).toMatch(/^lb1: path drain requested .*; its controller withdraws the path within 0\.1 s/);
      expect(readPathDrain(pathDrainFile(config, 'lb1'))).toMatchObject({ reason: 'kernel upgrade' });
      expect((await run('undrain-node', '--node', 'lb1', '--config', file)).out).toBe('lb1: undrained; it holds its path again once healthy\n');
      expect(readPathDrain(pathDrainFile(config, 'lb1'))).toBeNull();
      expect((await run('undrain-node', '--node', 'lb1', '--config', file)).out).toBe('lb1: was not drained\n');
      const bad = await run('drain-node', '--node', 'er1', '--config', file);
      expect(bad.code).not.toBe(0);
      expect(bad.err).toMatch(/node "er1" has no path address in an active-active VIP group/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
