// The controller core with real packets: network namespaces, stateful firewalls, the seed's
// CONNMARK/MAC marks, real etcd and `sandwich run` processes for lb1, lb2 and er1 (no IPVS on the host).
import { readFileSync } from 'node:fs';
import { readEvents, type SandwichEvent } from '../../controller/events';
import { NetnsSandwich, sh, sleep, trySh, waitFor } from './harness';

const CONFIG = `
cluster: systest
store: { kind: etcd, endpoints: [http://10.9.0.1:2379], callTimeoutMs: 1000, leaseTtlS: 3 }
timing: { decideIntervalMs: 100, reconcileIntervalMs: 500, holdDownMs: 1000, observationStaleMs: 3000 }
nodes:
  - name: lb1
    role: ingress
    interfaces: { client: cli, firewall: fwn }
    probe: { interface: firewall, sources: { fw1: 10.1.0.21, fw2: 10.1.0.22 } }
  - name: lb2
    role: ingress
    interfaces: { client: cli, firewall: fwn }
    probe: { interface: firewall, sources: { fw1: 10.1.0.31, fw2: 10.1.0.32 } }
  - name: er1
    role: egress
    interfaces: { firewall: fwn, server: srv }
    probe: { interface: firewall, sources: { fw1: 10.2.0.21, fw2: 10.2.0.22 } }
firewalls:
  - { name: fw1, ingressAddress: 10.1.0.11, egressAddress: 10.2.0.11, egressMac: "02:00:00:00:f1:0e", mark: 1, table: 101 }
  - { name: fw2, ingressAddress: 10.1.0.12, egressAddress: 10.2.0.12, egressMac: "02:00:00:00:f2:0e", mark: 2, table: 102 }
checks:
  - { name: path-http, kind: http, scope: path, from: ingress, url: "http://198.51.100.10/health", intervalMs: 400, timeoutMs: 300, rise: 2, fall: 2 }
  - { name: ingress-leg, kind: icmp, scope: leg, from: ingress, intervalMs: 400, timeoutMs: 300, rise: 2, fall: 2 }
  - { name: egress-leg, kind: icmp, scope: leg, from: egress, intervalMs: 400, timeoutMs: 300, rise: 2, fall: 2 }
vipGroups:
  - name: ingress
    role: ingress
    addresses:
      - { address: 192.0.2.254/24, interface: client }
      - { address: 10.1.0.254/24, interface: firewall }
    garp: { count: 2, repeatAfterMs: 1000, refreshIntervalMs: 10000 }
egress: { routes: [default] }
events: { file: "@DIR@/{node}/events.log" }
runtimeDir: "@DIR@/run"
api: { listen: "127.0.0.1:9455" }
`;

const lab = new NetnsSandwich('swst');
const er1 = () => lab.ns('er1');

/** The next hop of an egress table on er1, or null. */
function tableVia(table: number): string | null {
  const r = trySh(er1(), ['ip', '-j', 'route', 'show', 'table', String(table)]);
  if (!r.ok) return null;
  const routes = JSON.parse(r.out || '[]') as { dst: string; gateway?: string }[];
  return routes.find((x) => x.dst === 'default')?.gateway ?? null;
}

function counter(fw: string, source: string): number {
  const out = sh(lab.ns(fw), ['iptables', '-L', 'COUNT', '-v', '-x', '-n']);
  const line = out.split('\n').find((l) => l.includes(` ${source} `));
  return line ? Number(line.trim().split(/\s+/)[0]) : 0;
}

/** The newest desired state any node has seen, from the daemons' status files (cheaper than `sandwich status`). */
function desiredState(fw: string): string | undefined {
  type D = { revision: number; firewalls: Record<string, { state: string }> };
  let best: D | null = null;
  for (const n of ['lb1', 'lb2', 'er1']) {
    try {
      const d = (JSON.parse(readFileSync(`${lab.dir}/run/${n}.status.json`, 'utf8')) as { desired: D | null }).desired;
      if (d && (!best || d.revision > best.revision)) best = d;
    } catch {
      // not written yet, or being replaced
    }
  }
  return best?.firewalls[fw]?.state;
}

function vipHolder(): string | null {
  for (const n of ['lb1', 'lb2']) {
    if (sh(lab.ns(n), ['ip', '-o', 'addr', 'show', 'dev', 'cli']).includes('192.0.2.254/24')) return n;
  }
  return null;
}

function mac(ns: string, dev: string): string {
  return (JSON.parse(sh(lab.ns(ns), ['ip', '-j', 'link', 'show', 'dev', dev])) as { address: string }[])[0]!.address;
}

function clientNeighbour(): string | null {
  const n = JSON.parse(sh(lab.ns('c'), ['ip', '-j', 'neigh', 'show', '192.0.2.254'])) as { lladdr?: string }[];
  return n[0]?.lladdr ?? null;
}

function events(node: string): SandwichEvent[] {
  return readEvents(`${lab.dir}/${node}/events.log`);
}

jest.setTimeout(120_000);

let plan = { ok: false, out: '' };
let rulesBeforePlan = '';

beforeAll(async () => {
  await lab.up(CONFIG);
  rulesBeforePlan = sh(er1(), ['ip', 'rule', 'show']);
  plan = lab.cli(['plan', '--node', 'er1'], 'er1');
  lab.start('er1');
  lab.start('lb1');
  await waitFor('lb1 holds the VIP', () => vipHolder() === 'lb1', 20_000);
  lab.start('lb2');
  await waitFor('fw1 and fw2 up and tables in place', () => tableVia(101) === '10.2.0.11' && tableVia(102) === '10.2.0.12', 20_000);
});

afterAll(async () => {
  await lab.down();
});

/** Processes a node's controller has started so far, by program (its /metrics, read inside its namespace). */
function processStarts(node: string): Record<string, number> {
  const text = sh(lab.ns(node), ['curl', '-sf', '--max-time', '5', 'http://127.0.0.1:9455/metrics']);
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^sandwich_process_starts_total\{([^}]*)\} (\d+)$/gm)) {
    const program = /program="([^"]+)"/.exec(m[1]!)?.[1];
    if (program) out[program] = Number(m[2]);
  }
  return out;
}

describe('system: controller core in network namespaces', () => {
  it('steady state: no controller starts a process for two minutes (kernel access through netlink and packet sockets)', async () => {
    await waitFor('lb1 and lb2 see both firewalls up', () => desiredState('fw1') === 'up' && desiredState('fw2') === 'up', 20_000);
    await sleep(3000);
    const before = Object.fromEntries(['lb1', 'lb2', 'er1'].map((n) => [n, processStarts(n)]));
    // The long-lived ones started: the ARP fence's nft on the leader, a ping per ICMP stream.
    expect(before.lb1!.nft ?? 0).toBeGreaterThanOrEqual(1);
    expect(before.er1!.ping ?? 0).toBeGreaterThanOrEqual(1);
    await sleep(120_000);
    const after = Object.fromEntries(['lb1', 'lb2', 'er1'].map((n) => [n, processStarts(n)]));
    console.log(`process starts before / after the two minutes: ${JSON.stringify(before)} / ${JSON.stringify(after)}`);
    expect(after).toEqual(before);
  }, 180_000);


  it('sandwich plan printed the egress node\'s commands without running them', () => {
    expect(plan.ok).toBe(true);
    // Routes and rules are read through rtnetlink; each change is printed as the `ip` command it equals.
    expect(plan.out).toContain('ip route replace 0.0.0.0/0 via 10.2.0.11 dev fwn table 101\n');
    expect(plan.out).toContain('\nip rule add priority 500 fwmark 1 iif srv lookup 101\n');
    expect(plan.out).toContain('ip addr add 10.2.0.21/32 dev fwn');
    expect(rulesBeforePlan).not.toMatch(/lookup 101/);
  });

  it('probes reach the server through the firewall they name', async () => {
    // Let a few probe rounds pass, then compare each firewall's counters per probe source.
    await sleep(1500);
    const c = (fw: string, s: string) => counter(fw, s);
    expect(c('fw1', '10.1.0.21')).toBeGreaterThan(0);
    expect(c('fw2', '10.1.0.22')).toBeGreaterThan(0);
    expect(c('fw2', '10.1.0.21')).toBe(0);
    expect(c('fw1', '10.1.0.22')).toBe(0);
    const r = lab.cli(['status', '--json']);
    expect(r.ok).toBe(true);
    const s = JSON.parse(r.out) as { observations: { node: string; firewall: string; check: string; state: string }[] };
    const up = (node: string, fw: string, check: string) => s.observations.some((o) => o.node === node && o.firewall === fw && o.check === check && o.state === 'up');
    for (const fw of ['fw1', 'fw2']) {
      expect(up('lb1', fw, 'path-http')).toBe(true);
      expect(up('lb1', fw, 'ingress-leg')).toBe(true);
      expect(up('er1', fw, 'egress-leg')).toBe(true);
    }
  });

  it('a firewall that stops forwarding fails its path check only; er1 re-points its table, and points it back before the hold-down ends', async () => {
    sh(lab.ns('fw1'), ['iptables', '-I', 'FORWARD', '1', '-j', 'DROP']);
    const t0 = performance.now();
    const { ms: repointMs } = await waitFor('table 101 via fw2', () => tableVia(101) === '10.2.0.12', 10_000, 10);
    console.log(`fw1 forwarding stopped → er1 table 101 re-pointed to fw2 in ${Math.round(repointMs)} ms`);
    await waitFor('fw1 down in the desired state', () => desiredState('fw1') === 'down', 3000);
    expect(desiredState('fw2')).toBe('up');
    expect(tableVia(102)).toBe('10.2.0.12');
    const verdict = events('lb1').find((e) => e.event === 'verdict' && /^fw1 down/.test(e.reason));
    expect(verdict?.reason).toMatch(/path-http/);
    expect(verdict?.reason).not.toMatch(/ingress-leg failing/);

    sh(lab.ns('fw1'), ['iptables', '-D', 'FORWARD', '1']);
    const t1 = performance.now();
    await waitFor('table 101 back via fw1', () => tableVia(101) === '10.2.0.11', 15_000, 20);
    // Egress first: the table points back at fw1 as soon as it is healthy, while it is still in its
    // hold-down (down, weight 0), so replies follow before the LBs send it new flows.
    expect(desiredState('fw1')).toBe('down');
    await waitFor('fw1 back in service after the hold-down', () => desiredState('fw1') === 'up', 5000, 20);
    expect(performance.now() - t1).toBeGreaterThanOrEqual(1000);
    expect(performance.now() - t0).toBeGreaterThan(repointMs);
  });

  it.each([
    ['ingress', 'ing', 'ingress-leg'],
    ['egress', 'egr', 'egress-leg'],
  ])('a broken %s leg alone takes the firewall down, and the verdict names that leg', async (_side, dev, check) => {
    // From service: the previous case leaves fw2 in its hold-down (down) after its table points back.
    await waitFor('fw2 up before the leg breaks', () => desiredState('fw2') === 'up', 15_000, 50);
    sh(lab.ns('fw2'), ['iptables', '-I', 'INPUT', '1', '-i', dev, '-p', 'icmp', '-j', 'DROP']);
    try {
      await waitFor('fw2 down', () => desiredState('fw2') === 'down', 10_000, 50);
      await waitFor('table 102 via fw1', () => tableVia(102) === '10.2.0.11', 5000);
      const verdicts = events('lb1').filter((e) => e.event === 'verdict' && /^fw2 down/.test(e.reason));
      expect(verdicts[verdicts.length - 1]?.reason).toMatch(new RegExp(`${check} failing`));
    } finally {
      sh(lab.ns('fw2'), ['iptables', '-D', 'INPUT', '1']);
    }
    await waitFor('fw2 back', () => tableVia(102) === '10.2.0.12', 15_000);
  });

  it('puts back a hand-deleted route and logs it as drift', async () => {
    sh(er1(), ['ip', 'route', 'del', 'default', 'table', '101']);
    const { ms } = await waitFor('route restored', () => tableVia(101) === '10.2.0.11', 5000, 5);
    console.log(`hand-deleted route in table 101 restored after ${Math.round(ms)} ms (reconcileIntervalMs 500)`);
    await waitFor('drift event', () => events('er1').some((e) => e.event === 'drift'), 3000);
    // The daemon heard of it from the kernel (rtnetlink notification), not only from its periodic pass.
    expect(events('er1').some((e) => e.event === 'kernel' && e.reason === 'kernel notification: route deleted in table 101 (IPv4); reconciling')).toBe(true);
    expect(events('er1').some((e) => /rtnetlink unavailable/.test(e.reason))).toBe(false);
  });

  it('the VIP group is on the leader; the client neighbour entry follows the GARP on manual failover', async () => {
    expect(vipHolder()).toBe('lb1');
    trySh(lab.ns('c'), ['ping', '-c', '1', '-W', '1', '192.0.2.254']);
    expect(clientNeighbour()).toBe(mac('lb1', 'cli'));
    const r = lab.cli(['failover', '--to', 'lb2']);
    expect(r.out).toMatch(/moved from lb1 to lb2/);
    await waitFor('lb2 holds the VIP', () => vipHolder() === 'lb2', 5000);
    await waitFor('client neighbour entry on lb2', () => clientNeighbour() === mac('lb2', 'cli'), 5000);
    expect(sh(lab.ns('lb1'), ['ip', '-o', 'addr', 'show']).includes('192.0.2.254')).toBe(false);
    // Sent by the controller itself (failover/packet), not by arping.
    await waitFor('announcement event', () => events('lb2').some((e) => /^announced 192\.0\.2\.254 on \S+ \(takeover, 2 gratuitous ARPs\)$/.test(e.reason)), 3000);
    expect(events('lb2').filter((e) => /through arping/.test(e.reason))).toEqual([]);
  });

  it('refuses a failover to an unknown node with a clear message and no stack trace', () => {
    const r = lab.cli(['failover', '--to', 'lb9']);
    expect(r.ok).toBe(false);
    expect(r.out).toMatch(/unknown node "lb9"/);
    expect(r.out).not.toMatch(/\n\s+at /);
  });

  it('SIGTERM releases the VIP group and flushes the event log', async () => {
    const code = await lab.stop('lb2', 'SIGTERM');
    expect(code).toBe(0);
    expect(sh(lab.ns('lb2'), ['ip', '-o', 'addr', 'show']).includes('192.0.2.254')).toBe(false);
    const life = events('lb2').filter((e) => e.event === 'lifecycle').map((e) => e.reason);
    expect(life.slice(-2)).toEqual(['lb2 stopping: SIGTERM', 'lb2 stopped; data path left as it is']);
    await waitFor('lb1 takes over', () => vipHolder() === 'lb1', 10_000);
  });
});
