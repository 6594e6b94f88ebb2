// The drivers against the real kernel, in scratch network namespaces (prefix drv-, removed afterwards).
//
//   ns A (egress node er1)  a0 192.0.2.11/24 ─┐
//   ns C (previous VIP holder) c0 192.0.2.12/24 ─┤ br0 in ns B, 192.0.2.1/24 (the "client" watching ARP)
// A also has a1 (server side, a veth whose peer stays in A). Firewall next hops 192.0.2.21 / .22 are on-link addresses nobody owns.
import { Actuator } from '../../failover/actuator';
import { parseConfig } from '../../controller/config';
import type { Desired } from '../../controller/types';
import { ExecRunner, ExecSpawner, NetnsRunner, NetnsSpawner, type ProcessSpawner } from '../../failover/runner';
import { ArpFence } from '../../failover/fence';
import type { DriverLogEntry } from '../../failover/types';
import { VipGroup } from '../../failover/vip';

const sh = new ExecRunner(5000);
const tag = `drv-${process.pid % 100000}`;
const A = `${tag}-a`;
const B = `${tag}-b`;
const C = `${tag}-c`;
// Notes when each `ip -batch -` (the drivers' route/rule changes) in ns A finished, for the timing report.
const batchDone: number[] = [];
const inA: NetnsRunner = new NetnsRunner({
  run: async (file, args, opts) => {
    const r = await sh.run(file, args, opts);
    if (args.includes('-batch') && !args.includes('-j')) batchDone.push(performance.now());
    return r;
  },
}, A);
const inB = new NetnsRunner(sh, B);
const inC = new NetnsRunner(sh, C);

const CONFIG = `
cluster: drvtest
nodes:
  - name: er1
    role: egress
    interfaces: { firewall: a0, server: a1 }
    probe: { interface: firewall, sources: { fw1: 192.0.2.31, fw2: 192.0.2.32 } }
firewalls:
  - { name: fw1, ingressAddress: 10.1.0.11, egressAddress: 192.0.2.21, egressMac: "02:00:00:00:f1:0e", mark: 1, table: 101 }
  - { name: fw2, ingressAddress: 10.1.0.12, egressAddress: 192.0.2.22, egressMac: "02:00:00:00:f2:0e", mark: 2, table: 102 }
checks:
  - { name: egress-leg, kind: icmp, scope: leg, from: egress }
vipGroups:
  - name: egress
    role: egress
    addresses: [{ address: 192.0.2.254/24, interface: firewall }]
    garp: { count: 1, repeatAfterMs: 0, refreshIntervalMs: 0 }
egress: { routes: [203.0.113.0/24, 198.51.100.0/24] }
`;
const config = parseConfig(CONFIG);

function desired(fw1: 'up' | 'down', revision: number): Desired {
  const f = (state: 'up' | 'down', weight: number, egressVia: string) => ({ state, weight, egressVia, reason: 'test', since: 0, healthySince: null, failOpen: false });
  return { revision, decidedBy: 'er1', decidedAt: 0, firewalls: { fw1: fw1 === 'up' ? f('up', 100, 'fw1') : f('down', 0, 'fw2'), fw2: f('up', 100, 'fw2') } };
}

async function run(r: { run: ExecRunner['run'] }, line: string): Promise<string> {
  const [file, ...args] = line.split(' ');
  return (await r.run(file!, args)).stdout;
}

async function macOf(r: NetnsRunner, dev: string): Promise<string> {
  return (JSON.parse(await run(r, `ip -j link show dev ${dev}`)) as { address: string }[])[0]!.address;
}

async function neighMac(ip: string): Promise<string | null> {
  const n = JSON.parse(await run(inB, `ip -j neigh show ${ip} dev br0`)) as { lladdr?: string }[];
  return n[0]?.lladdr ?? null;
}

async function tableVia(table: number, dst: string): Promise<string | undefined> {
  const routes = JSON.parse(await run(inA, `ip -j route show table ${table}`)) as { dst: string; gateway?: string }[];
  return routes.find((r) => r.dst === dst)?.gateway;
}

async function conntrackCount(mark: number): Promise<number> {
  return (await run(inA, `conntrack -L -m ${mark}`)).split('\n').filter((l) => l.trim()).length;
}

// Leftovers from an earlier run of this same pid are removed first; other engineers' namespaces are not touched.
async function cleanup(): Promise<void> {
  for (const ns of [A, B, C]) await sh.run('ip', ['netns', 'del', ns]).catch(() => undefined);
}

beforeAll(async () => {
  await cleanup();
  for (const ns of [A, B, C]) await run(sh, `ip netns add ${ns}`);
  for (const line of [
    `ip link add br0 type bridge`, `ip link set br0 up`, `ip addr add 192.0.2.1/24 dev br0`,
    `ip link add ba type veth peer name a0 netns ${A}`, `ip link add bc type veth peer name c0 netns ${C}`,
    `ip link set ba master br0`, `ip link set bc master br0`, `ip link set ba up`, `ip link set bc up`,
  ]) await run(inB, line);
  for (const line of [`ip link set lo up`, `ip link set a0 up`, `ip addr add 192.0.2.11/24 dev a0`, `ip link add a1 type veth peer name a1p`, `ip link set a1 up`, `ip link set a1p up`, `ip addr add 10.3.0.1/24 dev a1`]) await run(inA, line);
  for (const line of [`ip link set lo up`, `ip link set c0 up`, `ip addr add 192.0.2.12/24 dev c0`]) await run(inC, line);
}, 30_000);

afterAll(cleanup, 30_000);

describe('drivers on a real kernel (network namespaces)', () => {
  const logs: DriverLogEntry[] = [];
  const act = new Actuator(config, 'er1', inA, { log: (e) => logs.push(e) });
  afterAll(() => act.close());

  it('builds the egress node, then a second pass changes nothing', async () => {
    const first = await act.reconcile(desired('up', 1), { holdsVips: false });
    expect(first.errors).toEqual([]);
    expect(await tableVia(101, '203.0.113.0/24')).toBe('192.0.2.21');
    expect(await tableVia(102, '198.51.100.0/24')).toBe('192.0.2.22');
    expect(await tableVia(200, 'default')).toBe('192.0.2.21');
    const rules = JSON.parse(await run(inA, 'ip -j rule show')) as { priority: number; fwmark?: string; iif?: string; table: string; src: string }[];
    expect(rules.filter((r) => r.priority === 500).map((r) => `${r.fwmark} ${r.iif} ${r.table}`)).toEqual(['0x1 a1 101', '0x2 a1 102']);
    expect(rules.filter((r) => r.priority === 1000).map((r) => `${r.src} ${r.table}`)).toEqual(['192.0.2.31 200', '192.0.2.32 201']);
    const second = await act.reconcile(desired('up', 1), { holdsVips: false });
    expect(second.errors).toEqual([]);
    expect(second.results.flatMap((r) => r.commands)).toEqual([]);
  });

  it('fw1 down: table 101 re-pointed via fw2 and conntrack mark 1 flushed (mark 2 kept); timed', async () => {
    for (const [sport, mark] of [[1001, 1], [1002, 1], [1003, 2]] as const) {
      await run(inA, `conntrack -I -p tcp -s 203.0.113.7 -d 198.51.100.10 --sport ${sport} --dport 80 --state ESTABLISHED -t 120 -m ${mark}`);
    }
    expect(await conntrackCount(1)).toBe(2);
    batchDone.length = 0;
    const t0 = performance.now();
    const res = await act.reconcile(desired('down', 2), { holdsVips: false });
    const totalMs = performance.now() - t0;
    expect(res.errors).toEqual([]);
    expect(await tableVia(101, '203.0.113.0/24')).toBe('192.0.2.22');
    expect(await tableVia(101, '198.51.100.0/24')).toBe('192.0.2.22');
    expect(await conntrackCount(1)).toBe(0);
    expect(await conntrackCount(2)).toBe(1);
    const routes = res.results.find((r) => r.driver === 'routes')!;
    expect(res.results.find((r) => r.driver === 'conntrack')).toMatchObject({ deleted: 2 });
    expect(batchDone).toHaveLength(1);
    console.log(`egress re-point: reconcile call → table 101 re-pointed (ip -batch returned) ${(batchDone[0]! - t0).toFixed(1)} ms; routes driver ${routes.durationMs.toFixed(1)} ms (read, apply, verify); whole pass returned ${totalMs.toFixed(1)} ms (incl. conntrack flush, addresses)`);
    expect(totalMs).toBeLessThan(2000);
    const back = await act.reconcile(desired('up', 3), { holdsVips: false });
    expect(back.results.find((r) => r.driver === 'conntrack')).toBeUndefined();
    expect(await tableVia(101, '203.0.113.0/24')).toBe('192.0.2.21');
  });

  it('a hand-deleted route and rule are reported as differences and put back', async () => {
    await run(inA, 'ip route del 203.0.113.0/24 table 102');
    await run(inA, 'ip rule del priority 500 fwmark 2 iif a1 lookup 102');
    const res = await act.reconcile(desired('up', 3), { holdsVips: false });
    expect(res.errors).toEqual([]);
    expect(res.results.find((r) => r.driver === 'routes')!.differences).toEqual([
      'table 102: 203.0.113.0/24 missing, want via 192.0.2.22 dev a0',
      'rule 500: from all fwmark 2 iif a1 lookup 102 missing',
    ]);
    expect(await tableVia(102, '203.0.113.0/24')).toBe('192.0.2.22');
  });

  it('VIP takeover from another namespace: the client\'s neighbour entry moves to the new MAC', async () => {
    const macA = await macOf(inA, 'a0');
    const macC = await macOf(inC, 'c0');
    const previous = new VipGroup(inC, { name: 'egress', addresses: [{ dev: 'c0', address: '192.0.2.254/24' }], garp: { count: 1, repeatAfterMs: 0, refreshIntervalMs: 0 } });
    await previous.reconcile(true);
    await previous.settled();
    await run(inB, 'ping -c 1 -W 1 192.0.2.254');
    expect(await neighMac('192.0.2.254')).toBe(macC);

    await previous.reconcile(false);
    const t0 = performance.now();
    const res = await act.reconcile(desired('up', 3), { holdsVips: true });
    const returnedMs = performance.now() - t0;
    expect(res.errors).toEqual([]);
    expect(res.results.find((r) => r.driver === 'vip:egress')!.commands).toEqual(['ip addr add 192.0.2.254/24 dev a0', 'arping -U -c 1 -I a0 192.0.2.254']);
    let mac: string | null = null;
    for (let i = 0; i < 40 && mac !== macA; i++) {
      mac = await neighMac('192.0.2.254');
      if (mac !== macA) await new Promise((r) => setTimeout(r, 50));
    }
    const movedMs = performance.now() - t0;
    expect(mac).toBe(macA);
    await act.settled();
    expect(act.vipGroups[0]!.announcements.at(-1)).toMatchObject({ ok: true, reason: 'takeover' });
    console.log(`VIP takeover: reconcile returned after ${returnedMs.toFixed(1)} ms (arping in background); client neighbour entry on the new MAC after ${movedMs.toFixed(1)} ms`);
    // Held and in sync: nothing to do, no new announcement.
    const again = await act.reconcile(desired('up', 3), { holdsVips: true });
    expect(again.results.flatMap((r) => r.commands)).toEqual([]);

    const rel = await act.release();
    expect(rel.results.flatMap((r) => r.commands)).toEqual(['ip addr del 192.0.2.254/24 dev a0']);
    const addrs = JSON.parse(await run(inA, 'ip -j addr show dev a0')) as { addr_info: { local: string }[] }[];
    expect(addrs[0]!.addr_info.map((a) => a.local)).not.toContain('192.0.2.254');
    // Fail-static: the data path stays after release.
    expect(await tableVia(101, '203.0.113.0/24')).toBe('192.0.2.21');
  }, 15_000);

  it('ARP fence through one long-lived nft -i: install, refreshes and removal reach the kernel; an error is reported and a reinstall recovers', async () => {
    const spawned: string[] = [];
    const inner = new NetnsSpawner(new ExecSpawner(), C);
    const spawner: ProcessSpawner = { spawnLines: (file, args, h, o) => (spawned.push([file, ...args].join(' ')), inner.spawnLines(file, args, h, o)) };
    let until = performance.now() + 5000;
    const f = new ArpFence(inC, ['192.0.2.12/24'], () => until, { spawner, table: 'drvfence' });
    const timeoutOf = async () => {
      const j = JSON.parse(await run(inC, 'nft -j list set arp drvfence valid')) as { nftables: { set?: { elem?: { elem: { val: string; timeout: number } }[] } }[] };
      return j.nftables.find((x) => x.set)?.set?.elem?.map((e) => [e.elem.val, e.elem.timeout]);
    };
    try {
      await f.hold();
      for (const ms of [20_000, 30_000, 40_000]) {
        until = performance.now() + ms;
        expect(await f.refresh()).toBe(true);
        const [[val, timeout]] = (await timeoutOf())! as [[string, number]];
        expect(val).toBe('192.0.2.12');
        expect(timeout).toBeGreaterThan(ms / 1000 - 2); // seconds in nft's JSON
        expect(timeout).toBeLessThanOrEqual(ms / 1000);
      }
      expect(spawned).toEqual(['nft -e -i']);
      await run(inC, 'nft delete table arp drvfence'); // behind the fence's back
      until = performance.now() + 50_000;
      await expect(f.refresh()).rejects.toThrow(/refresh ARP fence, \d+ ms failed: nft -i: Error: /);
      expect(f.state).toBe('unknown');
      await f.hold();
      expect(await timeoutOf()).toEqual([['192.0.2.12', expect.any(Number)]]);
      until = performance.now() + 60_000;
      expect(await f.refresh()).toBe(true);
      expect(spawned).toHaveLength(2);
    } finally {
      await f.release();
      await f.close();
    }
    await expect(run(inC, 'nft list table arp drvfence')).rejects.toThrow(/No such file/);
    expect(spawned).toHaveLength(2);
  }, 20_000);
});
