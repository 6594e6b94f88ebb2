// Active-active LB pair behind an upstream router's ECMP route, in network namespaces on the host (no IPVS
// needed: the LBs here are the flows' end points). Namespaces prefixed "aa-":
//
//   c 203.0.113.100-107 ──brc── r 203.0.113.1 | 192.0.2.1 ──brl── l1 192.0.2.11 (+ path 192.0.2.21)
//                                                                  l2 192.0.2.12 (+ path 192.0.2.22)
//   r: 198.51.100.0/24 nexthop via 192.0.2.21 nexthop via 192.0.2.22, fib_multipath_use_neigh=1,
//      fib_multipath_hash_policy=1 (L4), ARP timers shortened (base_reachable 1000 ms, delay_probe 200 ms,
//      retrans 200 ms, ucast_probes 2); l1 and l2 both hold 198.51.100.10/32 on lo (a UDP counter each).
//
// The path addresses are added, withdrawn and fenced by the real Actuator (failover/actuator.ts) of each LB,
// with the active-active group of the config below. 64 UDP flows (8 sources × 8 ports, one datagram per flow
// every 10 ms, test/system/flows.py) prove with per-flow counters:
//  - the flows spread over both LBs, each flow on one LB;
//  - withdrawing lb1's path moves only lb1's flows (lb2's flows: no packet on lb1, none lost) and how long
//    the router keeps using the withdrawn path (lb1 still forwards meanwhile: nothing lost);
//  - re-adding it (gratuitous ARP) brings lb1's flows back, and how fast;
//  - a frozen controller: the path fence expires, the kernel stops answering ARP, the router drops the path;
//  - lb1's link down (host down): only lb1's flows lose packets, for how long.
// The figures are printed (console.log) and quoted in docs/active-active.md.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../controller/config';
import { Actuator } from '../../failover/actuator';
import { ExecRunner, NetnsRunner, type CommandResult, type CommandRunner, type RunOptions } from '../../failover/runner';
import { sh, sleep, trySh, waitFor } from './harness';

jest.setTimeout(180_000);

const P = 'aa';
const ns = (n: string) => `${P}-${n}`;
const NS = ['hub', 'c', 'r', 'l1', 'l2'];
const x = (n: string, ...args: string[]) => sh(ns(n), args);
const FLOWS = join(__dirname, 'flows.py');
const SOURCES = Array.from({ length: 8 }, (_, i) => `203.0.113.${100 + i}`);
const INTERVAL_MS = 10;
/** pathFenceMs below: the window each refresh of lb1's path fence opens. */
const FENCE_MS = 3000;

const CONFIG = `
cluster: aa
store: { kind: memory }
nodes:
  - { name: lb1, role: ingress, interfaces: { client: eth0 } }
  - { name: lb2, role: ingress, interfaces: { client: eth0 } }
  - { name: er1, role: egress, interfaces: { firewall: eth0, server: eth1 }, probe: { interface: firewall, sources: { fw1: 10.2.0.21 } } }
firewalls:
  - { name: fw1, ingressAddress: 10.1.0.11, egressAddress: 10.2.0.11, egressMac: "02:00:00:00:f1:0e", mark: 1, table: 101 }
checks:
  - { name: egress-leg, kind: icmp, scope: leg, from: egress }
vipGroups:
  - name: ingress
    role: ingress
    mode: active-active
    paths:
      - { node: lb1, address: 192.0.2.21/24, interface: client }
      - { node: lb2, address: 192.0.2.22/24, interface: client }
    pathFenceMs: 3000
    garp: { count: 1, repeatAfterMs: 0, refreshIntervalMs: 1000 }
`;

/** The host has no IPVS: this LB's (empty) IPVS table is answered here; everything else runs in the namespace. */
class NoIpvsRunner implements CommandRunner {
  constructor(private readonly inner: CommandRunner) {}
  run(file: string, args: readonly string[], opts?: RunOptions): Promise<CommandResult> {
    if (file === 'ipvsadm' || (file === 'cat' && args[0] === '/proc/net/ip_vs')) return Promise.resolve({ stdout: '', stderr: '', durationMs: 0 });
    if (file === 'sysctl' && args.some((a) => a.startsWith('net.ipv4.vs.'))) return Promise.resolve({ stdout: args[0] === '-n' ? args.slice(1).map(() => '1').join('\n') + '\n' : '', stderr: '', durationMs: 0 });
    return this.inner.run(file, args, opts);
  }
}

function down(): void {
  for (const n of NS) {
    const pids = trySh(null, ['ip', 'netns', 'pids', ns(n)]).out.trim();
    if (pids) trySh(null, ['kill', '-9', ...pids.split(/\s+/)]);
    trySh(null, ['ip', 'netns', 'del', ns(n)]);
  }
}

function port(n: string, dev: string, bridge: string): void {
  sh(null, ['ip', 'link', 'add', dev, 'netns', ns(n), 'type', 'veth', 'peer', 'name', `${n}-${dev}`, 'netns', ns('hub')]);
  x('hub', 'ip', 'link', 'set', `${n}-${dev}`, 'master', bridge, 'up');
  x(n, 'ip', 'link', 'set', dev, 'up');
}

function up(): void {
  down();
  for (const n of NS) {
    sh(null, ['ip', 'netns', 'add', ns(n)]);
    x(n, 'ip', 'link', 'set', 'lo', 'up');
    x(n, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0');
  }
  for (const b of ['brc', 'brl']) {
    x('hub', 'ip', 'link', 'add', b, 'type', 'bridge');
    x('hub', 'ip', 'link', 'set', b, 'up');
  }
  port('c', 'eth0', 'brc');
  for (const s of SOURCES) x('c', 'ip', 'addr', 'add', `${s}/24`, 'dev', 'eth0');
  x('c', 'ip', 'route', 'add', 'default', 'via', '203.0.113.1');
  port('r', 'eth0', 'brc');
  port('r', 'eth1', 'brl');
  x('r', 'ip', 'addr', 'add', '203.0.113.1/24', 'dev', 'eth0');
  x('r', 'ip', 'addr', 'add', '192.0.2.1/24', 'dev', 'eth1');
  x('r', 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.fib_multipath_use_neigh=1', 'net.ipv4.fib_multipath_hash_policy=1');
  x('r', 'ip', 'ntable', 'change', 'name', 'arp_cache', 'dev', 'eth1', 'base_reachable', '1000', 'delay_probe', '200', 'retrans', '200', 'ucast_probes', '2');
  for (const i of [1, 2]) {
    port(`l${i}`, 'eth0', 'brl');
    x(`l${i}`, 'ip', 'addr', 'add', `192.0.2.1${i}/24`, 'dev', 'eth0');
    x(`l${i}`, 'ip', 'addr', 'add', '198.51.100.10/32', 'dev', 'lo');
    x(`l${i}`, 'ip', 'route', 'add', 'default', 'via', '192.0.2.1');
    x(`l${i}`, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  }
  x('r', 'ip', 'route', 'add', '198.51.100.0/24', 'nexthop', 'via', '192.0.2.21', 'nexthop', 'via', '192.0.2.22');
}

interface RecvFlow { count: number; first: number; last: number; firstSeq: number; lastSeq: number }
type Recv = Record<string, RecvFlow>;

/** One measured phase: fresh receivers and sender; `act` runs once every flow is seen; returns per-flow records. */
class Phase {
  private procs: ChildProcess[] = [];
  constructor(private readonly dir: string, readonly name: string) {}
  private file(what: string): string {
    return join(this.dir, `${this.name}-${what}.json`);
  }
  read(which: 'r1' | 'r2'): Recv {
    const f = this.file(which);
    if (!existsSync(f)) return {};
    try {
      return (JSON.parse(readFileSync(f, 'utf8')) as { flows: Recv }).flows;
    } catch {
      return {};
    }
  }
  async start(): Promise<void> {
    for (const [n, w] of [['l1', 'r1'], ['l2', 'r2']] as const) {
      this.procs.push(spawn('ip', ['netns', 'exec', ns(n), '/usr/bin/python3', FLOWS, 'recv', '--bind', '198.51.100.10', '--out', this.file(w), '--every-ms', '50'], { stdio: 'ignore' }));
    }
    await waitFor('receivers', () => existsSync(this.file('r1')) && existsSync(this.file('r2')), 10_000);
    this.procs.push(spawn('ip', ['netns', 'exec', ns('c'), '/usr/bin/python3', FLOWS, 'send', '--dst', '198.51.100.10', '--src', SOURCES.join(','), '--per-src', '8', '--interval-ms', String(INTERVAL_MS), '--out', this.file('s')], { stdio: 'ignore' }));
    await waitFor('all 64 flows seen', () => Object.keys(this.read('r1')).length + Object.keys(this.read('r2')).length >= 64, 10_000, 50);
    await sleep(300);
  }
  async stop(): Promise<{ sent: Record<string, number>; r1: Recv; r2: Recv }> {
    const [rx1, rx2, tx] = this.procs;
    tx!.kill('SIGTERM');
    await waitFor('sender counts', () => existsSync(this.file('s')), 10_000);
    await sleep(200);
    const exited = [rx1!, rx2!].map((p) => new Promise((r) => p.once('exit', r)));
    rx1!.kill('SIGTERM');
    rx2!.kill('SIGTERM');
    await Promise.all(exited);
    const sent = (JSON.parse(readFileSync(this.file('s'), 'utf8')) as { flows: Record<string, number> }).flows;
    return { sent, r1: this.read('r1'), r2: this.read('r2') };
  }
  kill(): void {
    for (const p of this.procs) p.kill('SIGKILL');
  }
}

const ms = (sec: number) => Math.round(sec * 1000);
const neigh = (ip: string) => x('r', 'ip', 'neigh', 'show', ip, 'dev', 'eth1').trim();

describe('active-active LB pair behind ECMP (namespaces aa-*)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sandwich-aa-'));
  const config = parseConfig(CONFIG);
  // lb1's controller, as the node does it: a 100 ms timer refreshes the path fence to pathFenceMs from now, until frozen.
  let fenceUntil = Number.POSITIVE_INFINITY;
  let frozen = false;
  let lastFence = 0;
  let refresher: NodeJS.Timeout | null = null;
  const act = {
    lb1: new Actuator(config, 'lb1', new NoIpvsRunner(new NetnsRunner(new ExecRunner(5000), ns('l1'))), { pathFenceUntil: () => fenceUntil }),
    // lb2's fence is installed once with a 10-minute window (never refreshed here).
    lb2: new Actuator(config, 'lb2', new NoIpvsRunner(new NetnsRunner(new ExecRunner(5000), ns('l2'))), { pathFenceUntil: () => performance.now() + 600_000 }),
  };
  const phases: Phase[] = [];
  const figures: string[] = [];
  const hold = async (lb: 'lb1' | 'lb2', on: boolean) => {
    const r = await act[lb].reconcile(null, { holdsVips: false, holdsPaths: on });
    expect(r.errors.filter((e) => e.driver.startsWith('path'))).toEqual([]);
  };
  const phase = (name: string) => {
    for (const q of phases) q.kill(); // a failed phase's processes hold the port
    const p = new Phase(dir, name);
    phases.push(p);
    return p;
  };
  /** lb1's and lb2's flows as the baseline saw them (every flow on exactly one LB). */
  const baseline = (p: Phase) => {
    const r1 = Object.keys(p.read('r1'));
    const r2 = Object.keys(p.read('r2'));
    expect(r1.filter((k) => r2.includes(k))).toEqual([]);
    return { on1: r1, on2: r2 };
  };

  beforeAll(async () => {
    up();
    fenceUntil = performance.now() + FENCE_MS;
    await hold('lb1', true);
    await hold('lb2', true);
    refresher = setInterval(() => {
      if (frozen) return;
      const until = performance.now() + FENCE_MS;
      fenceUntil = until;
      act.lb1.refreshPathFence().then((done) => void (done && (lastFence = until)), () => undefined);
    }, 100);
  });

  afterAll(async () => {
    if (refresher) clearInterval(refresher);
    for (const p of phases) p.kill();
    for (const a of Object.values(act)) {
      a.close();
      await a.settled();
    }
    console.log(`active-active figures (router ARP timers: base_reachable 1000 ms, delay_probe 200 ms, retrans 200 ms, 2 unicast probes):\n  ${figures.join('\n  ')}`);
    down();
    rmSync(dir, { recursive: true, force: true });
  });

  it('spreads flows over both LBs; withdrawing lb1\'s path moves only lb1\'s flows, none lost', async () => {
    const p = phase('withdraw');
    await p.start();
    const { on1, on2 } = baseline(p);
    expect(on1.length).toBeGreaterThan(5);
    expect(on2.length).toBeGreaterThan(5);
    const w = Date.now() / 1000;
    await hold('lb1', false);
    await waitFor('router marks lb1\'s path FAILED', () => /FAILED/.test(neigh('192.0.2.21')), 20_000, 20);
    await sleep(1000);
    const { sent, r1, r2 } = await p.stop();
    // lb2's flows: never on lb1, every datagram arrived.
    expect(on2.filter((k) => r1[k])).toEqual([]);
    expect(on2.map((k) => sent[k]! - r2[k]!.count)).toEqual(on2.map(() => 0));
    // lb1's flows: all on lb2 now; lb1 kept forwarding until the router moved them, so none lost.
    expect(on1.filter((k) => !r2[k])).toEqual([]);
    const lost = on1.reduce((s, k) => s + sent[k]! - r1[k]!.count - r2[k]!.count, 0);
    expect(lost).toBe(0);
    const moved = on1.map((k) => r2[k]!.first - w);
    const lastOn1 = Math.max(...on1.map((k) => r1[k]!.last - w));
    figures.push(`withdraw (address deleted, lb1 up): ${on1.length} flows on lb1 moved to lb2 after ${ms(Math.min(...moved))}–${ms(Math.max(...moved))} ms, last datagram on lb1 at +${ms(lastOn1)} ms, ${lost} lost; ${on2.length} flows on lb2 kept, 0 moved, 0 lost`);
  });

  it('re-adding lb1\'s path (gratuitous ARP) brings its flows back at once; lb2\'s flows stay', async () => {
    const p = phase('readd');
    await p.start();
    expect(Object.keys(p.read('r1'))).toEqual([]);
    const w = Date.now() / 1000;
    await hold('lb1', true);
    await waitFor('lb1 receives again', () => Object.keys(p.read('r1')).length > 0, 10_000, 20);
    await sleep(1000);
    const { sent, r1, r2 } = await p.stop();
    const back = Object.keys(r1);
    const stayed = Object.keys(r2).filter((k) => !r1[k]);
    expect(back.length).toBeGreaterThan(5);
    const lost = Object.keys(sent).reduce((s, k) => s + sent[k]! - (r1[k]?.count ?? 0) - (r2[k]?.count ?? 0), 0);
    expect(lost).toBe(0);
    const t = back.map((k) => r1[k]!.first - w);
    figures.push(`re-add with gratuitous ARP: ${back.length} flows back on lb1 after ${ms(Math.min(...t))}–${ms(Math.max(...t))} ms (FAILED entry → STALE), ${stayed.length} stayed on lb2, ${lost} lost`);
  });

  it('a frozen controller: lb1\'s path fence expires, the router drops the path, lb2\'s flows untouched', async () => {
    const p = phase('fence');
    await p.start();
    const { on1, on2 } = baseline(p);
    expect(on1.length).toBeGreaterThan(5);
    // The controller stops refreshing: the fence element expires pathFenceMs (3 s) after the last refresh.
    frozen = true;
    await sleep(150);
    expect(lastFence).toBeGreaterThan(performance.now());
    const expiry = Date.now() / 1000 + (lastFence - performance.now()) / 1000;
    await waitFor('router marks lb1\'s path FAILED', () => /FAILED/.test(neigh('192.0.2.21')), 20_000, 20);
    await sleep(1000);
    const { sent, r1, r2 } = await p.stop();
    expect(x('l1', 'ip', '-br', 'addr', 'show', 'dev', 'eth0')).toContain('192.0.2.21/24'); // the address is still there
    expect(on2.filter((k) => r1[k])).toEqual([]);
    expect(on2.map((k) => sent[k]! - r2[k]!.count)).toEqual(on2.map(() => 0));
    expect(on1.filter((k) => !r2[k])).toEqual([]);
    const moved = on1.map((k) => r2[k]!.first - expiry);
    const lost = on1.reduce((s, k) => s + sent[k]! - r1[k]!.count - r2[k]!.count, 0);
    expect(lost).toBe(0);
    figures.push(`frozen controller (path fence expiry): ${on1.length} flows moved to lb2 ${ms(Math.min(...moved))}–${ms(Math.max(...moved))} ms after the fence expired (pathFenceMs ${FENCE_MS} after the last refresh), ${lost} lost; ${on2.length} lb2 flows kept, 0 lost`);
    // Thawed: the next refresh revives the element, and the periodic gratuitous ARP (1 s here) brings the path back.
    const t0 = performance.now();
    frozen = false;
    await waitFor('router uses lb1\'s path again', () => /REACHABLE|STALE|DELAY/.test(neigh('192.0.2.21')), 10_000, 20);
    figures.push(`thawed: router's entry for lb1's path valid again ${Math.round(performance.now() - t0)} ms after the fence refresh (periodic gratuitous ARP every 1000 ms)`);
  });

  it('lb1 host down (its link down): only lb1\'s flows lose packets, until the router marks the path failed', async () => {
    const p = phase('linkdown');
    await p.start();
    const { on1, on2 } = baseline(p);
    const w = Date.now() / 1000;
    x('l1', 'ip', 'link', 'set', 'eth0', 'down');
    await waitFor('router marks lb1\'s path FAILED', () => /FAILED/.test(neigh('192.0.2.21')), 20_000, 20);
    await sleep(1000);
    const { sent, r1, r2 } = await p.stop();
    expect(on2.filter((k) => r1[k])).toEqual([]);
    expect(on2.map((k) => sent[k]! - r2[k]!.count)).toEqual(on2.map(() => 0));
    expect(on1.filter((k) => !r2[k])).toEqual([]);
    const lostMs = on1.map((k) => (sent[k]! - r1[k]!.count - r2[k]!.count) * INTERVAL_MS);
    const moved = on1.map((k) => r2[k]!.first - w);
    figures.push(`lb1 link down: ${on1.length} lb1 flows resumed on lb2 ${ms(Math.min(...moved))}–${ms(Math.max(...moved))} ms later (each lost ${Math.min(...lostMs)}–${Math.max(...lostMs)} ms of datagrams); ${on2.length} lb2 flows: 0 lost, 0 moved`);
    x('l1', 'ip', 'link', 'set', 'eth0', 'up');
    const t0 = performance.now();
    await waitFor('router uses lb1\'s path again', () => /REACHABLE|STALE|DELAY/.test(neigh('192.0.2.21')), 10_000, 20);
    figures.push(`link back up: router's entry valid again after ${Math.round(performance.now() - t0)} ms (periodic gratuitous ARP every 1000 ms; nothing else re-announces a failed path)`);
  });

  it('releasePaths (controller stopping) removes the address and the fence table', async () => {
    await act.lb1.releasePaths();
    expect(x('l1', 'ip', '-br', 'addr', 'show', 'dev', 'eth0')).not.toContain('192.0.2.21');
    expect(trySh(ns('l1'), ['nft', 'list', 'table', 'arp', 'sandwich_paths']).ok).toBe(false);
  });
});
