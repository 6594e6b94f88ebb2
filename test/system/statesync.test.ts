// conntrackd between two stateful firewalls, with real packets in network namespaces on the host
// (test/system/statesync-topo.sh; no IPVS here, so the "lb" namespace's route plays the LB pair's
// part: after the fault it sends the flows' next packets to fw2, as IPVS does with downAction remove
// and sloppy_tcp). conntrackd runs in fw1 and fw2 with lab/conntrackd's config (FT-FW over UDP on a
// sync link, states injected straight into the other firewall's kernel table); the egress router's
// tables and rules are the controller's (the Actuator, as `sandwich run --node er1` drives it).
//
// Each round: 20 keep-alive connections through fw1, one request each; then fw1 black-holed
// (`iptables -I FORWARD 1 -j DROP`) and the flows moved to fw2; then one more request per connection.
//   sync + re-point        → every connection answers (fw2 knows the flows; replies leave er1 via fw2)
//   sync, no re-point      → none: er1 still sends the replies (mark 1, table 101) to the dead fw1
//   no sync, re-point      → none: fw2 drops the mid-stream packets (not a SYN, no state)
// And a flow in which the server speaks first after the move (test/system/pushserver.py), with sync:
//   re-point + conntrack flush (egress.flushConntrack, the default) → the server's packets find no
//     entry on er1, get no mark and are dropped until the client sends (then they pass)
//   re-point, flushConntrack: false → they pass at once (mark 1, table 101 via fw2)
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Actuator } from '../../failover/actuator';
import { parseConfig } from '../../controller/config';
import type { Desired } from '../../controller/types';
import { ExecRunner, NetnsRunner } from '../../failover/runner';

const ROOT = join(__dirname, '..', '..');
const TOPO = join(__dirname, 'statesync-topo.sh');
const P = `ctd${process.pid % 100000}`;
const ns = (n: string) => `${P}-${n}`;
const sh = new ExecRunner(15_000);
const inNs = (n: string) => new NetnsRunner(sh, ns(n));
const COUNT = 20;

const CONFIG = `
cluster: ctdtest
nodes:
  - name: er1
    role: egress
    interfaces: { firewall: eth0, server: eth1 }
    probe: { interface: firewall, sources: { fw1: 10.2.0.21, fw2: 10.2.0.22 } }
firewalls:
  - { name: fw1, ingressAddress: 10.1.0.11, egressAddress: 10.2.0.11, egressMac: "02:00:00:00:f1:0e", mark: 1, table: 101 }
  - { name: fw2, ingressAddress: 10.1.0.12, egressAddress: 10.2.0.12, egressMac: "02:00:00:00:f2:0e", mark: 2, table: 102 }
checks:
  - { name: egress-leg, kind: icmp, scope: leg, from: egress }
egress: { routes: [default] }
`;
const config = parseConfig(CONFIG);
const configNoFlush = parseConfig(CONFIG.replace('egress: { routes: [default] }', 'egress: { routes: [default], flushConntrack: false }'));

function desired(fw1: 'up' | 'down', revision: number): Desired {
  const f = (state: 'up' | 'down', weight: number, egressVia: string) => ({ state, weight, egressVia, reason: 'test', since: 0, healthySince: null, failOpen: false });
  return { revision, decidedBy: 'er1', decidedAt: 0, firewalls: { fw1: fw1 === 'up' ? f('up', 100, 'fw1') : f('down', 0, 'fw2'), fw2: f('up', 100, 'fw2') } };
}

async function run(n: string, line: string): Promise<string> {
  const [file, ...args] = line.split(' ');
  return (await inNs(n).run(file!, args)).stdout;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor<T>(what: string, probe: () => Promise<T | false | null>, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(50);
  }
}

let dir = '';
let PUSH_GO = '';
const procs: ChildProcess[] = [];
const daemons = new Map<string, ChildProcess>();
let revision = 0;
const er1 = new Actuator(config, 'er1', inNs('er1'), { log: () => undefined });
const er1NoFlush = new Actuator(configNoFlush, 'er1', inNs('er1'), { log: () => undefined });

function background(n: string, args: string[], out: string): ChildProcess {
  const p = spawn('ip', ['netns', 'exec', ns(n), ...args], { stdio: ['ignore', 'ignore', 'ignore'], detached: false });
  procs.push(p);
  p.on('error', (e) => writeFileSync(out, String(e)));
  return p;
}

function startConntrackd(fw: 'fw1' | 'fw2'): void {
  const i = fw === 'fw1' ? 1 : 2;
  const run = join(dir, fw);
  mkdirSync(run, { recursive: true });
  const conf = join(run, 'conntrackd.conf');
  const rendered = execFileSync(join(ROOT, 'lab', 'conntrackd', 'render.sh'), ['--local', `10.8.0.1${i}`, '--peer', `10.8.0.1${3 - i}`,
    '--iface', 'eth2', '--run', run, '--log', join(run, 'conntrackd.log'), '--ignore', `10.1.0.1${i} 10.2.0.1${i}`], { encoding: 'utf8', timeout: 10_000 });
  writeFileSync(conf, rendered);
  daemons.set(fw, background(fw, ['conntrackd', '-C', conf], join(run, 'spawn-error')));
}

async function stopConntrackd(): Promise<void> {
  for (const [fw, p] of daemons) {
    p.kill('SIGTERM');
    await waitFor(`conntrackd in ${fw} exits`, async () => p.exitCode !== null || p.signalCode !== null, 10_000);
  }
  daemons.clear();
}

/** How many of these local ports fw2 holds as ESTABLISHED connections from lb (to either server). */
async function fw2Established(ports: number[]): Promise<number> {
  const out = await run('fw2', 'conntrack -L -p tcp --dport 80 --state ESTABLISHED').catch(() => '');
  const seen = new Set([...out.matchAll(/src=10\.1\.0\.1 dst=198\.51\.100\.1[01] sport=(\d+) dport=80/g)].map((m) => Number(m[1])));
  return ports.filter((p) => seen.has(p)).length;
}

async function fw2Dropped(): Promise<number> {
  const out = await run('fw2', 'iptables -vnxL FORWARD');
  const last = out.trim().split('\n').at(-1)!.trim().split(/\s+/);
  return Number(last[0]);
}

interface Round { synced: number; kept: number; lost: number; droppedByFw2: number; afterPing: number }

async function round(name: string, opts: { repoint: boolean; flush?: boolean; serverFirst?: boolean }): Promise<Round> {
  const out = join(dir, `${name}.json`);
  const act = opts.flush === false ? er1NoFlush : er1;
  const client = background('lb', ['/usr/bin/python3', join(__dirname, 'keepalive.py'), '--dst', opts.serverFirst ? '198.51.100.11' : '198.51.100.10',
    '--src', '10.1.0.1', '--count', String(COUNT), '--out', out, '--timeout', '3', '--max-wait', '60', ...(opts.serverFirst ? ['--server-first'] : [])], `${out}.err`);
  const ready = await waitFor('the connections are open',
    async () => (existsSync(`${out}.ready`) ? JSON.parse(readFileSync(`${out}.ready`, 'utf8')) as { open: number; ports: number[] } : null), 20_000);
  expect(ready.open).toBe(COUNT);
  // With sync: give the link a moment (events go out as they come); the count is checked by the caller.
  if (daemons.size > 0) await waitFor('fw2 holds the states', async () => (await fw2Established(ready.ports)) === COUNT, 5000).catch(() => undefined);
  const synced = await fw2Established(ready.ports);
  const dropped0 = await fw2Dropped();
  // The fault, and what the LB pair does about it (IPVS in the VM: the real server removed, the next packet rescheduled).
  await run('fw1', 'iptables -I FORWARD 1 -j DROP -m comment --comment blackhole');
  await run('lb', 'ip route replace 198.51.100.0/24 via 10.1.0.12');
  if (opts.repoint) {
    const r = await act.reconcile(desired('down', ++revision), { holdsVips: false });
    expect(r.errors).toEqual([]);
    expect(r.results.find((x) => x.driver === 'conntrack') !== undefined).toBe(opts.flush !== false);
    expect(await run('er1', 'ip route show table 101')).toContain('via 10.2.0.12');
  }
  writeFileSync(`${out}.go`, '');
  if (opts.serverFirst) writeFileSync(PUSH_GO, '');
  await waitFor('the client finishes', async () => client.exitCode !== null, 30_000);
  rmSync(PUSH_GO, { force: true });
  const res = JSON.parse(readFileSync(out, 'utf8')) as { kept: number; lost: Record<string, string>; afterPing: number };
  const droppedByFw2 = (await fw2Dropped()) - dropped0;
  // Repair: fw1 back, flows and table 101 back to it.
  await run('fw1', 'iptables -D FORWARD -j DROP -m comment --comment blackhole');
  await run('lb', 'ip route replace 198.51.100.0/24 via 10.1.0.11');
  expect((await er1.reconcile(desired('up', ++revision), { holdsVips: false })).errors).toEqual([]);
  console.log(`${name}: ${synced}/${COUNT} states on fw2 before the fault; ${res.kept}/${COUNT} connections kept${opts.serverFirst ? ` (${res.afterPing} more once the client spoke)` : ''}; fw2 dropped ${droppedByFw2} packets`);
  return { synced, kept: res.kept, lost: Object.keys(res.lost).length, droppedByFw2, afterPing: res.afterPing };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sandwich-ctd-'));
  await sh.run(TOPO, ['up', P], { timeoutMs: 60_000 });
  PUSH_GO = join(dir, 'push.go');
  background('srv', ['/usr/bin/python3', join(ROOT, 'lab', 'httpd.py'), '--host', '198.51.100.10', '--port', '80', '--ready', join(dir, 'httpd.ready')], join(dir, 'httpd.err'));
  background('srv', ['/usr/bin/python3', join(__dirname, 'pushserver.py'), '--bind', '198.51.100.11', '--port', '80', '--go', PUSH_GO, '--ready', join(dir, 'push.ready')], join(dir, 'push.err'));
  startConntrackd('fw1');
  startConntrackd('fw2');
  expect((await er1.reconcile(desired('up', ++revision), { holdsVips: false })).errors).toEqual([]);
  await waitFor('the servers', async () => existsSync(join(dir, 'httpd.ready')) && existsSync(join(dir, 'push.ready')), 20_000);
  // Both daemons up: each answers on its UNIX socket.
  for (const fw of ['fw1', 'fw2']) {
    await waitFor(`conntrackd in ${fw}`, async () => (await run(fw, `conntrackd -C ${join(dir, fw, 'conntrackd.conf')} -s`).catch(() => '')).includes('cache'), 10_000);
  }
}, 90_000);

afterAll(async () => {
  er1.close();
  er1NoFlush.close();
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await sh.run(TOPO, ['down', P], { timeoutMs: 60_000 }).catch(() => undefined);
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 90_000);

describe('conntrackd state sync between the firewalls (real packets, namespaces)', () => {
  it('sync + egress re-point: every established connection continues through fw2', async () => {
    const r = await round('sync-repoint', { repoint: true });
    expect(r.synced).toBe(COUNT);
    expect(r.kept).toBe(COUNT);
    expect(r.droppedByFw2).toBe(0);
  }, 60_000);

  it('sync without re-point: the replies still go to the dead fw1, no connection survives', async () => {
    const r = await round('sync-no-repoint', { repoint: false });
    expect(r.synced).toBe(COUNT);
    expect(r.kept).toBe(0);
  }, 60_000);

  it('server speaks first, re-point + conntrack flush: its packets are dropped at er1 until the client sends', async () => {
    const r = await round('push-flush', { repoint: true, serverFirst: true });
    expect(r.synced).toBe(COUNT);
    expect(r.kept).toBe(0);
    expect(r.afterPing).toBe(COUNT);
  }, 60_000);

  it('server speaks first, re-point with flushConntrack: false: its packets pass at once', async () => {
    const r = await round('push-noflush', { repoint: true, flush: false, serverFirst: true });
    expect(r.synced).toBe(COUNT);
    expect(r.kept).toBe(COUNT);
  }, 60_000);

  it('re-point without sync: fw2 drops the mid-stream packets, no connection survives', async () => {
    await stopConntrackd();
    await run('fw2', 'conntrack -F');
    const r = await round('nosync-repoint', { repoint: true });
    expect(r.synced).toBe(0);
    expect(r.kept).toBe(0);
    expect(r.droppedByFw2).toBeGreaterThanOrEqual(COUNT);
  }, 60_000);
});
