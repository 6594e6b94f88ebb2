import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig, type Config } from '../../controller/config';
import { MemoryEventLog } from '../../controller/events';
import { MemoryStore } from '../../controller/memory-store';
import { NodeController, type ActResult, type NodeActuator } from '../../controller/node';
import type { Leadership } from '../../controller/store';
import { requestSwitchover } from '../../controller/switchover';
import type { Desired } from '../../controller/types';
import { FakeProber, until, wait } from './fixtures/node-fakes';

const yaml = readFileSync(join(__dirname, '../../deploy/config.example.yaml'), 'utf8')
  .replace(/store:\n  kind: etcd\n(  .*\n)+/, 'store: { kind: memory }\n')
  .replace('holdDownMs: 10000', 'holdDownMs: 0\n  decideIntervalMs: 50\n  reconcileIntervalMs: 200');

function config(): Config {
  return parseConfig(yaml);
}

class FakeActuator implements NodeActuator {
  calls: { desired: Desired | null; holdsVips: boolean }[] = [];
  releases = 0;
  /** Commands the next reconcile reports as applied (to simulate drift). */
  nextCommands: string[] = [];
  async reconcile(desired: Desired | null, opts: { holdsVips: boolean }): Promise<ActResult> {
    this.calls.push({ desired, holdsVips: opts.holdsVips });
    const commands = this.nextCommands;
    this.nextCommands = [];
    // Like the Actuator: commands with an unchanged want are drift.
    const drift = commands.length > 0 && this.calls.length > 1;
    return { results: [{ driver: 'routes', differences: commands.map((c) => `missing: ${c}`), commands, durationMs: 1, drift }], applied: { ok: true } };
  }
  async releaseVips(): Promise<void> {
    this.releases++;
  }
  last(): { desired: Desired | null; holdsVips: boolean } | undefined {
    return this.calls[this.calls.length - 1];
  }
}

function makeNode(store: MemoryStore, name: string, overrides: Partial<{ config: Config }> = {}) {
  const cfg = overrides.config ?? config();
  const events = new MemoryEventLog();
  const actuator = new FakeActuator();
  let prober!: FakeProber;
  const role = cfg.nodes.find((n) => n.name === name)!.role;
  const node = new NodeController({
    config: cfg, node: name, store, events, actuator, statusFile: false,
    prober: (cb) => (prober = new FakeProber(name, role, cb)),
  });
  return { node, events, actuator, prober: () => prober };
}

/** A store whose leaderships stay valid until expire() (then their validity is in the past). */
function expiringStore() {
  const store = new MemoryStore();
  let validUntil = Number.POSITIVE_INFINITY;
  const campaign = store.campaign.bind(store);
  store.campaign = async (role, n) => {
    const l = await campaign(role, n);
    return l && ({ ...l, validUntil: () => validUntil } as Leadership);
  };
  return { store, expire: () => void (validUntil = performance.now() - 1) };
}

describe('NodeController (in-memory store)', () => {
  const running: NodeController[] = [];
  afterEach(async () => {
    for (const n of running.splice(0)) await n.stop('test over');
  });

  /** lb1 leading with the VIPs, lb2 running with healthy probes: a switchover target. */
  async function leaderAndTarget(store: MemoryStore, cfg: Config = config()) {
    const a = makeNode(store, 'lb1', { config: cfg });
    const b = makeNode(store, 'lb2', { config: cfg });
    running.push(a.node, b.node);
    await a.node.start();
    await until(() => a.actuator.last()?.holdsVips === true);
    await b.node.start();
    for (const fw of ['fw1', 'fw2']) b.prober().report(fw, 'path-http', 'up');
    return { a, b };
  }

  it('standalone: becomes leader, writes a desired state, holds the VIPs', async () => {
    const store = new MemoryStore();
    const { node, events, actuator } = makeNode(store, 'lb1');
    running.push(node);
    await node.start();
    await until(() => actuator.last()?.holdsVips === true && actuator.last()?.desired !== null);
    const desired = (await store.getDesired())!.value;
    expect(Object.keys(desired.firewalls)).toEqual(['fw1', 'fw2']);
    expect(desired.decidedBy).toBe('lb1');
    expect(events.events.map((e) => e.event)).toEqual(expect.arrayContaining(['lifecycle', 'leader', 'vip']));
    expect((await store.getLeader('ingress'))?.node).toBe('lb1');
  });

  it('a failing path takes the firewall down; the verdict is written before the kernel sees it', async () => {
    const store = new MemoryStore();
    const { node, events, actuator, prober } = makeNode(store, 'lb1');
    running.push(node);
    await node.start();
    for (const fw of ['fw1', 'fw2']) for (const k of ['path-http', 'ingress-leg']) prober().report(fw, k, 'up');
    prober().report('fw1', 'path-http', 'down', 'timeout after 800 ms');
    await until(() => actuator.last()?.desired?.firewalls.fw1?.state === 'down');
    const stored = (await store.getDesired())!.value;
    expect(stored.firewalls.fw1).toMatchObject({ state: 'down', weight: 0, egressVia: 'fw2' });
    const verdict = events.events.find((e) => e.event === 'verdict' && /^fw1 down/.test(e.reason));
    expect(verdict?.reason).toMatch(/path-http/);
    expect(events.events.find((e) => e.event === 'probe' && e.firewall === 'fw1' && e.state === 'down')?.reason).toMatch(/timeout after 800 ms/);
  });

  it('reports kernel changes with an unchanged revision as drift', async () => {
    const store = new MemoryStore();
    const { node, events, actuator } = makeNode(store, 'lb1');
    running.push(node);
    await node.start();
    await until(() => actuator.calls.length >= 2);
    actuator.nextCommands = ['ip route replace default via 10.1.0.11 dev eth1 table 200'];
    await node.requestReconcile();
    const drift = events.events.filter((e) => e.event === 'drift');
    expect(drift).toHaveLength(1);
    expect(drift[0]!.reason).toMatch(/drift corrected \(routes\): missing: ip route replace/);
  });

  it('drops the VIP group as soon as its leadership can no longer be proven', async () => {
    const { store, expire } = expiringStore();
    const { node, actuator, events } = makeNode(store, 'lb1');
    running.push(node);
    await node.start();
    await until(() => actuator.last()?.holdsVips === true);
    expire();
    await until(() => actuator.releases > 0 && events.events.some((e) => e.event === 'leader' && /validity expired/.test(e.reason)), 1000);
    expect(node.canAnnounce()).toBe(false);
  });

  it('an egress leader that loses its leadership logs no "released VIP group" (it has none); an ingress leader does', async () => {
    const { store, expire } = expiringStore();
    const lb = makeNode(store, 'lb1');
    const er = makeNode(store, 'er1');
    running.push(lb.node, er.node);
    await lb.node.start();
    await er.node.start();
    await until(() => lb.node.isLeader && er.node.isLeader && lb.actuator.last()?.holdsVips === true);
    expire();
    const lost = (n: typeof lb) => n.events.events.some((e) => e.event === 'leader' && /validity expired/.test(e.reason));
    await until(() => lost(lb) && lost(er), 1000);
    await until(() => lb.events.events.some((e) => e.event === 'vip' && /^released VIP group/.test(e.reason)), 1000);
    expect(er.events.events.filter((e) => e.event === 'vip')).toEqual([]);
  });

  it('manual switchover moves leadership to a healthy target, and refuses an unhealthy one', async () => {
    const store = new MemoryStore();
    const a = makeNode(store, 'lb1');
    const b = makeNode(store, 'lb2');
    running.push(a.node, b.node);
    await a.node.start();
    await until(() => a.actuator.last()?.holdsVips === true);
    await b.node.start();
    const cfg = config();
    await expect(requestSwitchover(cfg, store, 'ingress', 'lb2', 'test', 500)).rejects.toThrow(/lb2 has no fresh probe results/);
    for (const fw of ['fw1', 'fw2']) b.prober().report(fw, 'path-http', 'up');
    const msg = await requestSwitchover(cfg, store, 'ingress', 'lb2', 'test', 3000);
    expect(msg).toMatch(/ingress leadership moved from lb1 to lb2 in \d+ ms/);
    await until(() => b.actuator.last()?.holdsVips === true);
    expect(a.actuator.releases).toBeGreaterThan(0);
    expect(a.node.canAnnounce()).toBe(false);
    expect(a.events.events.some((e) => e.event === 'leader' && /resigned/.test(e.reason))).toBe(true);
  });

  it('switchover: a leader that resigned but whose target has not taken over yet is reported as such, not as withdrawn', async () => {
    /** lb2's campaigns fail (its etcd calls stall, say): lb1 resigns for it, nobody leads within the wait. */
    class NoTakeoverStore extends MemoryStore {
      override async campaign(role: 'ingress' | 'egress', node: string): Promise<Leadership | null> {
        return node === 'lb2' ? null : super.campaign(role, node);
      }
    }
    const store = new NoTakeoverStore();
    const { a } = await leaderAndTarget(store);
    let seen = false;
    const poll = setInterval(() => void store.listObservations().then((o) => (seen = o.some((x) => x.node === 'lb2'))), 20);
    await until(() => seen).finally(() => clearInterval(poll));
    await expect(requestSwitchover(config(), store, 'ingress', 'lb2', 'test', 1000)).rejects.toThrow(/lb1 released ingress leadership, but no new leader within 1000 ms; the takeover continues/);
    expect(a.node.isLeader).toBe(false);
  });

  it('observation events: passes never overlap, a burst is coalesced (at most one pass per pass time), and the change at its end is decided', async () => {
    /** Each pass's first read takes 20 ms; counts passes and how many run at once. */
    class CountingStore extends MemoryStore {
      passes = 0;
      running = 0;
      maxRunning = 0;
      override async listObservations() {
        this.passes++;
        this.maxRunning = Math.max(this.maxRunning, ++this.running);
        try {
          await wait(20);
          return await super.listObservations();
        } finally {
          this.running--;
        }
      }
    }
    const store = new CountingStore();
    const slowTicks = parseConfig(yaml.replace('decideIntervalMs: 50', 'decideIntervalMs: 10000'));
    const a = makeNode(store, 'lb1', { config: slowTicks });
    running.push(a.node);
    await a.node.start();
    for (const fw of ['fw1', 'fw2']) a.prober().report(fw, 'path-http', 'up');
    await until(() => a.actuator.last()?.desired?.firewalls.fw1?.state === 'up');
    store.passes = 0;
    const t0 = performance.now();
    const o = a.prober().snapshot().find((x) => x.firewall === 'fw2')!;
    for (let i = 1; i <= 100; i++) {
      await store.putObservation({ ...o, node: 'lb2', updatedAt: o.updatedAt + i });
      await wait(2);
    }
    a.prober().report('fw1', 'path-http', 'down');
    await until(() => a.actuator.last()?.desired?.firewalls.fw1?.state === 'down', 2000);
    const ms = performance.now() - t0;
    expect(store.maxRunning).toBe(1);
    // One pass per event would be ~100; a pass (≥ 20 ms) is followed by a pause as long as itself.
    expect(store.passes).toBeGreaterThan(0);
    expect(store.passes).toBeLessThanOrEqual(Math.ceil(ms / 40) + 2);
  });

  it('a leader-key event that arrives while a tick runs is not dropped: the target campaigns again at once', async () => {
    /** The target's failed campaign returns late, so the old leader resigns while the target is still ticking. */
    class SlowCampaignStore extends MemoryStore {
      override async campaign(role: 'ingress' | 'egress', node: string): Promise<Leadership | null> {
        const l = await super.campaign(role, node);
        if (!l) await wait(400);
        return l;
      }
      override async getSwitchover(role: 'ingress' | 'egress') {
        await wait(100);
        return super.getSwitchover(role);
      }
    }
    const slowTicks = parseConfig(yaml.replace('decideIntervalMs: 50', 'decideIntervalMs: 10000'));
    const store = new SlowCampaignStore();
    const a = makeNode(store, 'lb1', { config: slowTicks });
    const b = makeNode(store, 'lb2', { config: slowTicks });
    running.push(a.node, b.node);
    await a.node.start();
    await b.node.start();
    for (const fw of ['fw1', 'fw2']) b.prober().report(fw, 'path-http', 'up');
    const release = a.actuator.releaseVips.bind(a.actuator);
    a.actuator.releaseVips = async () => {
      await wait(200);
      await release();
    };
    const t0 = performance.now();
    // The request's event makes both tick: lb2 campaigns at ~100 ms and fails (lb1 still leads), its answer
    // comes at ~500 ms; lb1 resigns at ~300 ms, while lb2's tick is still running.
    await requestSwitchover(slowTicks, store, 'ingress', 'lb2', 'test', 3000);
    expect(b.node.isLeader).toBe(true);
    expect(performance.now() - t0).toBeLessThan(3000); // the decide tick is 10 s
  });

  it('fast profile: a standby campaigns again when the seen leader revision may be taken over, not at its next decide tick', async () => {
    /** Another node holds the key and stops renewing; it may be taken over from `dueAt` on. */
    class StaleLeaderStore extends MemoryStore {
      dueAt = Number.POSITIVE_INFINITY;
      stale: Leadership | null = null;
      withDue = true;
      override async campaign(role: 'ingress' | 'egress', node: string): Promise<Leadership | null> {
        if (this.stale && performance.now() >= this.dueAt) {
          await this.resign(this.stale);
          this.stale = null;
        }
        return super.campaign(role, node);
      }
      takeoverDueInMs(): number | null {
        return this.withDue ? Math.max(0, this.dueAt - performance.now()) : null;
      }
    }
    const slowTicks = parseConfig(yaml.replace('decideIntervalMs: 50', 'decideIntervalMs: 5000'));
    const timeToLead = async (withDue: boolean): Promise<number | null> => {
      const store = new StaleLeaderStore();
      store.withDue = withDue;
      store.stale = await store.campaign('ingress', 'lb2');
      const { node } = makeNode(store, 'lb1', { config: slowTicks });
      running.push(node);
      const t0 = performance.now();
      store.dueAt = t0 + 150;
      await node.start();
      expect(node.isLeader).toBe(false);
      try {
        await until(() => node.isLeader, 1500);
        return performance.now() - t0;
      } catch {
        return null;
      }
    };
    const ms = await timeToLead(true);
    expect(ms).not.toBeNull();
    expect(ms!).toBeGreaterThanOrEqual(150);
    expect(ms!).toBeLessThan(1500); // the decide tick is 5 s
    expect(await timeToLead(false)).toBeNull(); // without the due time it waits for its tick
  });

  it('a switchover the leader has taken completes even if the request is withdrawn before it resigns', async () => {
    // The CLI withdraws its request when leadership has not moved within its wait; a slow leader may
    // have read it just before. Once it resigns for the switchover, the target must get its turn.
    const store = new MemoryStore();
    const { a, b } = await leaderAndTarget(store);
    const resign = store.resign.bind(store);
    store.resign = async (l) => {
      await store.deleteSwitchover('ingress');   // the CLI's withdrawal, between the leader's read and its resignation
      return resign(l);
    };
    // The target is the slower campaigner (in the lab VM the old leader won the race back).
    const campaign = store.campaign.bind(store);
    store.campaign = async (role, n) => {
      if (n === 'lb2') await wait(300);
      return campaign(role, n);
    };
    await store.putSwitchover({ role: 'ingress', to: 'lb2', from: 'lb1', requestedBy: 'test', at: Date.now() });
    await until(() => a.events.events.some((e) => e.event === 'leader' && /resigned/.test(e.reason)));
    expect(await store.getSwitchover('ingress')).toBeNull();
    await until(() => b.actuator.last()?.holdsVips === true);
    expect((await store.getLeader('ingress'))?.node).toBe('lb2');
    expect(a.events.events.filter((e) => e.event === 'leader' && /lb1 is now ingress leader/.test(e.reason))).toHaveLength(1);
  });

  it('after a completed switchover the former leader takes over at once when the new leader dies (issue 20)', async () => {
    // A long switchoverTimeoutMs: the old code made the former leader wait it out after its resignation.
    const longWait = parseConfig(yaml.replace('decideIntervalMs: 50', 'decideIntervalMs: 50\n  switchoverTimeoutMs: 60000'));
    const store = new MemoryStore();
    const { a, b } = await leaderAndTarget(store, longWait);
    await requestSwitchover(longWait, store, 'ingress', 'lb2', 'test', 3000);
    await until(() => b.node.isLeader);
    await b.node.stop('gone');
    await until(() => a.node.isLeader, 3000);
    expect((await store.getLeader('ingress'))?.node).toBe('lb1');
  });

  it('a node that resigned for a switchover does not campaign while nobody leads yet', async () => {
    // The target's campaigns stall: the hand-back protection holds for switchoverTimeoutMs.
    class NoTakeoverStore extends MemoryStore {
      override async campaign(role: 'ingress' | 'egress', node: string): Promise<Leadership | null> {
        return node === 'lb2' ? null : super.campaign(role, node);
      }
    }
    const store = new NoTakeoverStore();
    const { a } = await leaderAndTarget(store);
    await store.putSwitchover({ role: 'ingress', to: 'lb2', from: 'lb1', requestedBy: 'test', at: Date.now() });
    await until(() => a.events.events.some((e) => e.event === 'leader' && /resigned/.test(e.reason)));
    await store.deleteSwitchover('ingress');
    await wait(500); // ten decide ticks
    expect(await store.getLeader('ingress')).toBeNull();
    expect(a.node.isLeader).toBe(false);
  });

  it('stops cleanly: VIPs released, leadership given up, lifecycle events in order', async () => {
    const store = new MemoryStore();
    const { node, events, actuator } = makeNode(store, 'lb1');
    await node.start();
    await until(() => actuator.last()?.holdsVips === true);
    await node.stop('SIGTERM');
    expect(node.state).toBe('STOPPED');
    expect(actuator.releases).toBeGreaterThan(0);
    expect(await store.getLeader('ingress')).toBeNull();
    const life = events.events.filter((e) => e.event === 'lifecycle').map((e) => e.reason);
    expect(life[0]).toMatch(/starting/);
    expect(life.slice(-2)).toEqual(['lb1 stopping: SIGTERM', 'lb1 stopped; data path left as it is']);
  });
});
