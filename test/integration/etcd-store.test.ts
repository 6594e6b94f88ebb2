// EtcdStore against a real 3-member etcd: sessions, election, fencing CAS, validation, watch, latency.
import { Etcd3 } from 'etcd3';
import { StoreDataError, type Leadership, type StoreEvent } from '../../controller/store';
import { EtcdCluster } from './etcd-cluster';
import { desired, observation, percentile, sleep, StorePool, uniqueCluster, waitFor } from './store-helpers';

jest.setTimeout(20_000);

let cluster: EtcdCluster;
let raw: Etcd3;
const pool = new StorePool(() => cluster);

beforeAll(async () => {
  cluster = await EtcdCluster.start();
  raw = new Etcd3({ hosts: cluster.endpoints, defaultCallOptions: () => ({ deadline: Date.now() + 2000 }) });
});
afterEach(() => pool.closeAll());
afterAll(async () => {
  raw?.close();
  await cluster?.destroy();
});

describe('observations', () => {
  test('put/list round-trip; one range returns every node\'s observations', async () => {
    const name = uniqueCluster();
    const a = pool.make(name).store;
    const b = pool.make(name).store;
    await a.putObservation(observation('lb1', 'fw1', 'path'));
    await a.putObservation(observation('lb1', 'fw2', 'path', 'down'));
    await b.putObservation(observation('lb2', 'fw1', 'path'));
    const list = await b.listObservations();
    expect(list.map((o) => `${o.node}/${o.firewall}/${o.state}`).sort()).toEqual(['lb1/fw1/up', 'lb1/fw2/down', 'lb2/fw1/up']);
    expect(list.find((o) => o.node === 'lb1' && o.firewall === 'fw1')).toEqual(observation('lb1', 'fw1', 'path'));
  });

  test('vanish when the owner stops renewing its lease (≈ TTL), and at once when it closes', async () => {
    const name = uniqueCluster();
    const a = pool.make(name).store;
    const c = pool.make(name).store;
    const b = pool.make(name).store;
    await a.putObservation(observation('lb1', 'fw1', 'path'));
    await c.putObservation(observation('lb3', 'fw1', 'path'));
    await b.putObservation(observation('lb2', 'fw1', 'path'));
    a.suspendKeepalive();
    const gone = await waitFor('lb1 observation expires', async () => !(await b.listObservations()).some((o) => o.node === 'lb1'), 3000);
    console.log(`observation expiry after suspending keepalives: ${gone.toFixed(0)} ms (TTL 1000 ms)`);
    expect(gone).toBeGreaterThan(300); // it was renewed until the suspension, so not immediately
    expect((await b.listObservations()).map((o) => o.node).sort()).toEqual(['lb2', 'lb3']);
    await c.close(); // revokes
    expect((await b.listObservations()).map((o) => o.node)).toEqual(['lb2']);
  });
});

describe('election', () => {
  test('exactly one of two concurrent campaigns wins; the record names it', async () => {
    const name = uniqueCluster();
    const a = pool.make(name).store;
    const b = pool.make(name).store;
    const [la, lb] = await Promise.all([a.campaign('ingress', 'lb1'), b.campaign('ingress', 'lb2')]);
    expect([la, lb].filter((x) => x !== null)).toHaveLength(1);
    const winner = (la ?? lb)!;
    expect(await a.getLeader('ingress')).toEqual({ role: 'ingress', node: winner.node, since: winner.since });
    expect(winner.validUntil()).toBeGreaterThan(performance.now());
    expect(await (la ? b : a).campaign('ingress', 'x')).toBeNull();
    // The other role is independent.
    expect(await (la ? b : a).campaign('egress', 'er1')).not.toBeNull();
  });

  test('campaigning again on the same session adopts the key bound to our own lease', async () => {
    const a = pool.make(uniqueCluster()).store;
    const l1 = await a.campaign('ingress', 'lb1');
    const l2 = await a.campaign('ingress', 'lb1');
    expect(l2?.token).toBe(l1?.token);
    expect(l2?.since).toBe(l1?.since);
  });

  test('the loser wins after the winner resigns (latency measured); the resigned leadership is lost', async () => {
    const name = uniqueCluster();
    const a = pool.make(name).store;
    const b = pool.make(name).store;
    const latencies: number[] = [];
    for (let i = 0; i < 10; i++) {
      const la = (await a.campaign('ingress', 'lb1'))!;
      expect(la).not.toBeNull();
      await b.putObservation(observation('lb2', 'fw1', 'path')); // b's session exists before the race
      let t0 = 0;
      const won = new Promise<Leadership>((resolve) => {
        let busy = false;
        const unsubscribe = b.watch((e) => {
          if (e !== 'leader' || busy) return;
          busy = true;
          void b.campaign('ingress', 'lb2').then((l) => {
            busy = false;
            if (l) {
              unsubscribe();
              resolve(l);
            }
          });
        });
      });
      await sleep(50); // watcher connected
      t0 = performance.now();
      await a.resign(la);
      const lb = await won;
      latencies.push(performance.now() - t0);
      expect(lb.node).toBe('lb2');
      await expect(la.lost).resolves.toBeUndefined();
      expect(la.validUntil()).toBeLessThanOrEqual(performance.now());
      await b.resign(lb);
    }
    latencies.sort((x, y) => x - y);
    console.log(`resign → other node's campaign (watch-triggered): p50 ${percentile(latencies, 50).toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms`);
    // Resign keeps the lease: the resigner's observations survive.
    expect((await b.listObservations()).length).toBe(1);
  });

  test('lease expiry: validity lapses before anyone else can win; takeover ≈ TTL; the old leader cannot write', async () => {
    const name = uniqueCluster();
    const a = pool.make(name).store;
    const b = pool.make(name).store;
    const la = (await a.campaign('ingress', 'lb1'))!;
    expect(await a.putDesired(desired(1), null, la)).toBe(true);
    await sleep(400); // a few keepalives acknowledged
    a.suspendKeepalive();
    const t0 = performance.now();
    let lb: Leadership | null = null;
    let attempts = 0;
    while (!lb && performance.now() - t0 < 4000) {
      lb = await b.campaign('ingress', 'lb2');
      attempts++;
      if (!lb) await sleep(10);
    }
    const won = performance.now();
    expect(lb).not.toBeNull();
    console.log(`lease-expiry takeover: ${(won - t0).toFixed(0)} ms after suspending keepalives (TTL 1000 ms, ${attempts} attempts); old leader's validUntil passed ${(won - la.validUntil()).toFixed(0)} ms before`);
    // The safety property: the old leader stopped trusting its leadership before the new one had it.
    expect(la.validUntil()).toBeLessThan(won);
    await expect(la.lost).resolves.toBeUndefined();
    const cur = await b.getDesired();
    expect(await a.putDesired(desired(9), cur!.version, la)).toBe(false);
    expect(await b.putDesired(desired(2, 'lb2'), cur!.version, lb!)).toBe(true);
    // a's next campaign gets a fresh lease but cannot take b's key.
    expect(await a.campaign('ingress', 'lb1')).toBeNull();
  });
});

describe('desired CAS', () => {
  test('stale version fails; absent-only create; the current leader succeeds', async () => {
    const a = pool.make(uniqueCluster()).store;
    const la = (await a.campaign('ingress', 'lb1'))!;
    expect(await a.getDesired()).toBeNull();
    expect(await a.putDesired(desired(1), null, la)).toBe(true);
    const v1 = (await a.getDesired())!;
    expect(v1.value).toEqual(desired(1));
    expect(await a.putDesired(desired(2), null, la)).toBe(false); // not absent any more
    expect(await a.putDesired(desired(2), v1.version, la)).toBe(true);
    expect(await a.putDesired(desired(3), v1.version, la)).toBe(false); // stale
    const v2 = (await a.getDesired())!;
    expect(v2.value.revision).toBe(2);
    expect(v2.version).toBeGreaterThan(v1.version);
  });

  test('a former leader fails after another took over; the leader-key check is done by etcd, not only locally', async () => {
    const name = uniqueCluster();
    const a = pool.make(name).store;
    const b = pool.make(name).store;
    const la = (await a.campaign('ingress', 'lb1'))!;
    await a.resign(la);
    const lb = (await b.campaign('ingress', 'lb2'))!;
    expect(await a.putDesired(desired(1), null, la)).toBe(false);
    expect(await b.putDesired(desired(1), null, lb)).toBe(true);
    // An operator deletes the leader key: b's lease and local validity are fine, etcd still refuses.
    await raw.delete().key(`/sandwich/${name}/leader/ingress`);
    expect(lb.validUntil()).toBeGreaterThan(performance.now());
    const v = (await b.getDesired())!;
    expect(await b.putDesired(desired(2), v.version, lb)).toBe(false);
    // Same node re-campaigning writes a new value (new since): the old leadership stays invalid.
    const lb2 = (await b.campaign('ingress', 'lb2'))!;
    await sleep(2);
    expect(await b.putDesired(desired(2), v.version, lb2)).toBe(true);
  });
});

describe('validation of values written by others', () => {
  test('single-key reads throw StoreDataError naming the key', async () => {
    const name = uniqueCluster();
    const s = pool.make(name).store;
    const p = `/sandwich/${name}/`;
    await raw.put(`${p}desired`).value('{not json');
    await raw.put(`${p}leader/ingress`).value(JSON.stringify({ node: 'lb1' }));
    await raw.put(`${p}switchover/egress`).value(JSON.stringify({ role: 'ingress', to: null, from: 'er1', requestedBy: 'op', at: 1 }));
    await expect(s.getDesired()).rejects.toThrow(StoreDataError);
    await expect(s.getDesired()).rejects.toThrow(`${p}desired: not JSON`);
    await expect(s.getLeader('ingress')).rejects.toThrow(`${p}leader/ingress: invalid value: since:`);
    await expect(s.getSwitchover('egress')).rejects.toThrow(`${p}switchover/egress: role is "ingress"`);
  });

  test('drains and maintenance throw; observations and status skip the bad entry and report it', async () => {
    const name = uniqueCluster();
    const { store: s, events } = pool.make(name);
    const p = `/sandwich/${name}/`;
    await s.putDrain({ firewall: 'fw1', by: 'op', reason: 'patching', since: 5 });
    expect(await s.listDrains()).toEqual([{ firewall: 'fw1', by: 'op', reason: 'patching', since: 5 }]);
    await raw.put(`${p}drain/fw2`).value(JSON.stringify({ firewall: 'fw2', by: 'op', reason: 'x', since: 'yesterday' }));
    await expect(s.listDrains()).rejects.toThrow(`${p}drain/fw2: invalid value: since:`);
    await raw.put(`${p}maintenance/m1`).value(JSON.stringify({ name: 'other', firewall: 'fw1', until: 9 }));
    await expect(s.listMaintenance()).rejects.toThrow(`${p}maintenance/m1: value belongs under ${p}maintenance/other`);

    await s.putObservation(observation('lb1', 'fw1', 'path'));
    await raw.put(`${p}observations/lb9/fw1/path`).value('"garbage"');
    expect((await s.listObservations()).map((o) => o.node)).toEqual(['lb1']);
    const bad = events.filter((e) => e.type === 'bad-value');
    expect(bad).toHaveLength(1);
    expect(bad[0]!.type === 'bad-value' && bad[0]!.error.key).toBe(`${p}observations/lb9/fw1/path`);
  });
});

describe('watch', () => {
  test('maps keys to events; unsubscribe stops delivery', async () => {
    const name = uniqueCluster();
    const s = pool.make(name).store;
    const seen: StoreEvent[] = [];
    const off = s.watch((e) => seen.push(e));
    await sleep(100);
    await s.putDrain({ firewall: 'fw1', by: 'op', reason: 'r', since: 1 });
    const l = (await s.campaign('ingress', 'lb1'))!;
    await s.putDesired(desired(1), null, l);
    await s.putObservation(observation('lb1', 'fw1', 'path'));
    await s.putNodeStatus({ node: 'lb1', role: 'ingress', lifecycle: 'running', updatedAt: 1, appliedRevision: null, holdsVips: false, applied: {}, drift: [] });
    await raw.put(`/sandwich/other-${name}/desired`).value('{}'); // another cluster: not ours
    await waitFor('events', () => seen.length >= 5, 2000);
    expect(seen).toEqual(['drains', 'leader', 'desired', 'observations', 'status']);
    off();
    await sleep(50);
    await s.deleteDrain('fw1');
    await sleep(150);
    expect(seen).toHaveLength(5);
  });
});

describe('watch: observation refreshes', () => {
  test('a refresh (only updatedAt, streak, rtt moved) is no event; a new state, a new since or a delete is', async () => {
    const name = uniqueCluster();
    const s = pool.make(name).store;
    const seen: StoreEvent[] = [];
    const off = s.watch((e) => seen.push(e));
    await sleep(100);
    const o = observation('lb1', 'fw1', 'path');
    await s.putObservation(o);
    await waitFor('the first put', () => seen.length === 1, 2000);
    for (let i = 1; i <= 5; i++) await s.putObservation({ ...o, updatedAt: o.updatedAt + i, streak: o.streak + i, rttMs: i });
    await s.putObservation({ ...o, state: 'down', since: 10, updatedAt: 20, lastError: 'timeout' });
    await waitFor('the state change', () => seen.length === 2, 2000);
    await s.putObservation({ ...o, state: 'down', since: 30, updatedAt: 30 }); // down again, a new episode
    await waitFor('the new since', () => seen.length === 3, 2000);
    await raw.delete().key(`/sandwich/${name}/observations/lb1/fw1/path`);
    await waitFor('the delete', () => seen.length === 4, 2000);
    await s.putObservation({ ...o, state: 'down', since: 30, updatedAt: 40 }); // back after the delete: new again
    await waitFor('the put after the delete', () => seen.length === 5, 2000);
    await sleep(150);
    expect(seen).toEqual(['observations', 'observations', 'observations', 'observations', 'observations']);
    off();
  });
});

describe('latency', () => {
  test('500 lease-bound puts: p50/p99 (measured, loosely bounded)', async () => {
    const s = pool.make(uniqueCluster()).store;
    await s.putObservation(observation('lb1', 'fw0', 'path'));
    const ms: number[] = [];
    for (let i = 0; i < 500; i++) {
      const t0 = performance.now();
      await s.putObservation(observation('lb1', `fw${i % 8}`, 'path'));
      ms.push(performance.now() - t0);
    }
    ms.sort((x, y) => x - y);
    console.log(`put latency over 500 puts: p50 ${percentile(ms, 50).toFixed(2)} ms, p99 ${percentile(ms, 99).toFixed(2)} ms, max ${ms.at(-1)!.toFixed(2)} ms`);
    expect(percentile(ms, 50)).toBeLessThan(50);
  });
});

describe('fast leadership profile (compare-and-swap renewals, no lease)', () => {
  const fastLeadership = { renewIntervalMs: 50, takeoverAfterMs: 400, marginMs: 100 };
  const fast = (name: string) => pool.make(name, { fastLeadership }).store;

  /** Campaigns every 10 ms until it wins or `ms` passes. */
  async function campaignUntil(s: ReturnType<typeof fast>, node: string, ms: number): Promise<{ l: Leadership | null; at: number }> {
    const t0 = performance.now();
    for (;;) {
      const l = await s.campaign('ingress', node);
      if (l || performance.now() - t0 > ms) return { l, at: performance.now() };
      await sleep(10);
    }
  }

  test('the leader renews its key; a standby never takes it over while renewals continue', async () => {
    const name = uniqueCluster();
    const a = fast(name);
    const b = fast(name);
    const la = (await a.campaign('ingress', 'lb1'))!;
    expect(la).not.toBeNull();
    const rev0 = Number(la.token);
    const { l } = await campaignUntil(b, 'lb2', 3 * fastLeadership.takeoverAfterMs);
    expect(l).toBeNull();
    // ~24 renewals in 1.2 s; at least a few got through whatever the load.
    expect(Number(la.token)).toBeGreaterThan(rev0 + 3);
    expect(la.validUntil()).toBeGreaterThan(performance.now());
    expect(await a.getLeader('ingress')).toMatchObject({ node: 'lb1' });
  });

  test('a stalled leader: its validity ends before the standby takes over; it cannot write desired any more', async () => {
    const name = uniqueCluster();
    const a = fast(name);
    const b = fast(name);
    const la = (await a.campaign('ingress', 'lb1'))!;
    expect(await a.putDesired(desired(1), null, la)).toBe(true);
    await sleep(300);
    const lbIdle = await b.campaign('ingress', 'lb2'); // b starts watching the key's revision
    expect(lbIdle).toBeNull();
    a.suspendKeepalive();
    const stalled = performance.now();
    const lastAckSend = la.validUntil() - (fastLeadership.takeoverAfterMs - fastLeadership.marginMs);
    const { l: lb, at: won } = await campaignUntil(b, 'lb2', 4000);
    expect(lb).not.toBeNull();
    console.log(`fast takeover: ${(won - stalled).toFixed(0)} ms after the leader stalled; old validity ended ${(won - la.validUntil()).toFixed(0)} ms before (takeoverAfterMs ${fastLeadership.takeoverAfterMs}, margin ${fastLeadership.marginMs})`);
    // The safety argument: takeover ≥ last acknowledged renewal's send time + takeoverAfterMs; validity ended marginMs earlier.
    expect(won).toBeGreaterThanOrEqual(lastAckSend + fastLeadership.takeoverAfterMs);
    expect(la.validUntil()).toBeLessThanOrEqual(won - fastLeadership.marginMs);
    await expect(la.lost).resolves.toBeUndefined();
    const cur = await b.getDesired();
    expect(await a.putDesired(desired(9), cur!.version, la)).toBe(false);
    expect(await b.putDesired(desired(2, 'lb2'), cur!.version, lb!)).toBe(true);
    expect(await b.getLeader('ingress')).toMatchObject({ node: 'lb2' });
  });

  test('a watching standby starts its takeover clock from the watch: due time re-armed by renewals, counts down after a stall', async () => {
    const name = uniqueCluster();
    const a = fast(name);
    const b = fast(name);
    const unwatch = b.watch(() => undefined);
    try {
      const la = (await a.campaign('ingress', 'lb1'))!;
      await sleep(200); // the watcher is up and has seen renewals
      const dues: number[] = [];
      for (let i = 0; i < 20; i++) {
        dues.push(b.takeoverDueInMs('ingress')!);
        await sleep(25);
      }
      // Renewals every 50 ms keep moving the revision: never close to due, without b campaigning once.
      expect(Math.min(...dues)).toBeGreaterThan(fastLeadership.takeoverAfterMs - 200);
      a.suspendKeepalive();
      const lastAckSend = la.validUntil() - (fastLeadership.takeoverAfterMs - fastLeadership.marginMs);
      await sleep(100);
      const due = b.takeoverDueInMs('ingress')!;
      expect(due).toBeLessThan(fastLeadership.takeoverAfterMs - 50);
      expect(await b.campaign('ingress', 'lb2')).toBeNull(); // not yet
      await sleep(due + 5);
      const lb = await b.campaign('ingress', 'lb2');
      expect(lb).not.toBeNull();
      expect(performance.now()).toBeGreaterThanOrEqual(lastAckSend + fastLeadership.takeoverAfterMs);
      await a.resign(la).catch(() => undefined);
      await b.resign(lb!);
      await sleep(100);
      expect(b.takeoverDueInMs('ingress')).toBeNull(); // a deleted key is forgotten: campaign at once
    } finally {
      unwatch();
    }
  });

  test('a resigned key is taken at once; the resigned leadership is lost', async () => {
    const name = uniqueCluster();
    const a = fast(name);
    const b = fast(name);
    const la = (await a.campaign('ingress', 'lb1'))!;
    expect(await b.campaign('ingress', 'lb2')).toBeNull();
    await a.resign(la);
    await expect(la.lost).resolves.toBeUndefined();
    expect(la.validUntil()).toBeLessThanOrEqual(performance.now());
    const t0 = performance.now();
    const lb = await b.campaign('ingress', 'lb2');
    expect(lb).not.toBeNull();
    expect(performance.now() - t0).toBeLessThan(fastLeadership.takeoverAfterMs);
  });

  test('a renewal that finds the key taken over ends the leadership', async () => {
    const name = uniqueCluster();
    const a = fast(name);
    const la = (await a.campaign('ingress', 'lb1'))!;
    // Someone (an operator with etcdctl, or a node that saw no renewal) overwrites the key.
    await raw.put(`/sandwich/${name}/leader/ingress`).value(JSON.stringify({ node: 'lb2', since: 1 }));
    await la.lost;
    expect(la.validUntil()).toBeLessThanOrEqual(performance.now());
  });

  test('mixed profiles are refused with a message naming the key and the setting', async () => {
    const name = uniqueCluster();
    const leaseNode = pool.make(name).store;
    expect(await leaseNode.campaign('ingress', 'lb1')).not.toBeNull();
    await expect(fast(name).campaign('ingress', 'lb2')).rejects.toThrow(new RegExp(`/sandwich/${name}/leader/ingress is bound to a lease .*same store.leadership.mode`));
    const other = uniqueCluster();
    expect(await fast(other).campaign('ingress', 'lb1')).not.toBeNull();
    await expect(pool.make(other).store.campaign('ingress', 'lb2')).rejects.toThrow(/not bound to a lease/);
  });
});
