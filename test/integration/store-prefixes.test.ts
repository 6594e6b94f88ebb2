// Several sandwiches on one etcd (issue #8): stores under different prefixes against a real 3-member
// cluster never see each other's keys, and the config's prefix rule refuses the nesting that would.
import { Etcd3 } from 'etcd3';
import { storePrefixIssues } from '../../controller/config';
import { StoreDataError, type StoreEvent } from '../../controller/store';
import { EtcdCluster } from './etcd-cluster';
import { desired, observation, sleep, StorePool, uniqueCluster, waitFor } from './store-helpers';

jest.setTimeout(30_000);

let cluster: EtcdCluster;
let raw: Etcd3;
const pool = new StorePool(() => cluster);
// Isolation is under test here, not latency: generous deadlines for a loaded machine.
const slow = { callTimeoutMs: 3000, leaseTtlS: 3 };

beforeAll(async () => {
  cluster = await EtcdCluster.start();
  raw = new Etcd3({ hosts: cluster.endpoints, defaultCallOptions: () => ({ deadline: Date.now() + 2000 }) });
});
afterEach(() => pool.closeAll());
afterAll(async () => {
  raw?.close();
  await cluster?.destroy();
});

test('/…/a and /…/ab: observations, leadership, desired state, drains and watches stay apart', async () => {
  const base = `/${uniqueCluster()}`;
  expect(storePrefixIssues(`${base}/a`)).toEqual([]);
  expect(storePrefixIssues(`${base}/ab`)).toEqual([]);
  const a = pool.make('a', { ...slow, prefix: `${base}/a` }).store;
  const b = pool.make('ab', { ...slow, prefix: `${base}/ab` }).store;
  const seenByA: StoreEvent[] = [];
  const stopWatch = a.watch((e) => seenByA.push(e));

  // Same node, firewall and check names in both sandwiches.
  await a.putObservation(observation('lb1', 'fw1', 'path', 'up'));
  await b.putObservation(observation('lb1', 'fw1', 'path', 'down'));
  await b.putObservation(observation('lb2', 'fw2', 'path', 'down'));
  expect((await a.listObservations()).map((o) => `${o.node}/${o.firewall}/${o.state}`)).toEqual(['lb1/fw1/up']);
  expect((await b.listObservations()).map((o) => `${o.node}/${o.firewall}/${o.state}`).sort()).toEqual(['lb1/fw1/down', 'lb2/fw2/down']);

  // Each elects its own leader: both campaigns win.
  const la = await a.campaign('ingress', 'lb1');
  const lb = await b.campaign('ingress', 'lb2');
  expect(la).not.toBeNull();
  expect(lb).not.toBeNull();
  expect((await a.getLeader('ingress'))?.node).toBe('lb1');
  expect((await b.getLeader('ingress'))?.node).toBe('lb2');

  // Desired state: each CAS sees only its own key (a fresh key in each: expected version null).
  expect(await a.putDesired(desired(1, 'lb1'), null, la!)).toBe(true);
  expect(await b.putDesired(desired(40, 'lb2'), null, lb!)).toBe(true);
  expect((await a.getDesired())?.value.revision).toBe(1);
  expect((await b.getDesired())?.value.revision).toBe(40);
  // A leadership of one sandwich cannot write the other's desired state.
  expect(await b.putDesired(desired(41, 'lb1'), (await b.getDesired())!.version, la!)).toBe(false);

  await a.putDrain({ firewall: 'fw1', by: 'ops-a', reason: 'a only', since: 1 });
  await b.putDrain({ firewall: 'fw2', by: 'ops-b', reason: 'ab only', since: 2 });
  expect((await a.listDrains()).map((d) => d.firewall)).toEqual(['fw1']);
  expect((await b.listDrains()).map((d) => d.firewall)).toEqual(['fw2']);

  // A's watch saw its own changes only.
  await waitFor('a sees its own drain', () => seenByA.includes('drains'), 5000);
  const before = seenByA.length;
  await b.putDrain({ firewall: 'fw3', by: 'ops-b', reason: '', since: 3 });
  await b.putObservation(observation('lb3', 'fw1', 'path', 'up'));
  await sleep(500);
  expect(seenByA.slice(before)).toEqual([]);
  stopWatch();

  // Why it holds: the store appends "/". A raw prefix read without it would have mixed the two.
  const withoutSlash = await raw.getAll().prefix(`${base}/a`).keys();
  expect(withoutSlash.some((k) => k.startsWith(`${base}/ab/`))).toBe(true);
  const withSlash = await raw.getAll().prefix(`${base}/a/`).keys();
  expect(withSlash.length).toBeGreaterThan(0);
  expect(withSlash.every((k) => k.startsWith(`${base}/a/`))).toBe(true);
});

test('nesting: a prefix under another\'s key kind breaks the outer sandwich (config refuses it); under any other segment it does not', async () => {
  const base = `/${uniqueCluster()}`;
  const outer = pool.make('outer', { ...slow, prefix: `${base}/o` }).store;
  await outer.putDrain({ firewall: 'fw1', by: 'ops', reason: '', since: 1 });

  // Accepted by the config rule: nested under a segment that is no key kind. The outer one's lists are unaffected.
  expect(storePrefixIssues(`${base}/o/tenant2`)).toEqual([]);
  const sibling = pool.make('t2', { ...slow, prefix: `${base}/o/tenant2` }).store;
  await sibling.putDrain({ firewall: 'fw9', by: 'ops', reason: '', since: 1 });
  await sibling.putObservation(observation('lb9', 'fw9', 'path'));
  const ls = await sibling.campaign('ingress', 'lb9');
  expect(await sibling.putDesired(desired(9, 'lb9'), null, ls!)).toBe(true);
  expect((await outer.listDrains()).map((d) => d.firewall)).toEqual(['fw1']);
  expect(await outer.listObservations()).toEqual([]);
  expect(await outer.getDesired()).toBeNull();
  expect(await outer.getLeader('ingress')).toBeNull();

  // Refused by the config rule: nested under the outer one's drain/ — its drain is read by the outer one as a bad drain.
  const bad = `${base}/o/drain/x`;
  expect(storePrefixIssues(bad)).toEqual([expect.stringContaining('has a segment "drain"')]);
  const nested = pool.make('x', { ...slow, prefix: bad }).store;
  await nested.putDrain({ firewall: 'fw7', by: 'ops', reason: '', since: 1 });
  await expect(outer.listDrains()).rejects.toThrow(StoreDataError);
});
