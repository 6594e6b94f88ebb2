// IPv6 in network namespaces on the host (no IPVS needed), namespaces prefixed "v6-":
//  - VIP takeover: the new holder's kernel sends an unsolicited neighbour advertisement as the address is
//    added; the client's neighbour entry follows it without soliciting (tcpdump and `ip -6 neigh` in the client).
//  - Egress: a real `sandwich run --node er1` (memory store) probes both firewalls over IPv6 (ICMP stream,
//    TCP, HTTP from its sources6), re-points fw1's IPv6 table via fw2 when fw1 stops answering, and back.
//
//   c ::100 ──brc── l1 ::1 / l2 ::2   (VIP 2001:db8:0:1::254/64)
//   f1 2001:db8:2::11, f2 ::12 (HTTP :8080) ──bre── er fwn ::1 ──srv── srv 2001:db8:3::2
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type Config } from '../../controller/config';
import { Actuator } from '../../failover/actuator';
import { ExecRunner, NetnsRunner } from '../../failover/runner';
import { ManualTimers } from '../../failover/timers';
import { sh, sleep, trySh, waitFor } from './harness';

jest.setTimeout(120_000);

const P = 'v6';
const NS = ['hub', 'c', 'l1', 'l2', 'f1', 'f2', 'er', 'srv'].map((n) => `${P}-${n}`);
const ns = (n: string) => `${P}-${n}`;
const BIN = join(__dirname, '..', '..', 'bin', 'sandwich');
const VIP = '2001:db8:0:1::254';
const MAC = { l1: '02:00:00:00:61:01', l2: '02:00:00:00:61:02', f1: '02:00:00:00:f1:0e', f2: '02:00:00:00:f2:0e' };
const x = (n: string, ...args: string[]) => sh(ns(n), args);

function down(): void {
  for (const n of NS) {
    const pids = trySh(null, ['ip', 'netns', 'pids', n]).out.trim();
    if (pids) trySh(null, ['kill', '-9', ...pids.split(/\s+/)]);
    trySh(null, ['ip', 'netns', 'del', n]);
  }
}

/** veth: `dev` in namespace n, its peer enslaved to `bridge` in the hub. */
function port(n: string, dev: string, bridge: string, mac?: string): void {
  sh(null, ['ip', 'link', 'add', dev, 'netns', ns(n), ...(mac ? ['address', mac] : []), 'type', 'veth', 'peer', 'name', `${n}-${dev}`, 'netns', ns('hub')]);
  x('hub', 'ip', 'link', 'set', `${n}-${dev}`, 'master', bridge, 'up');
  x(n, 'ip', 'link', 'set', dev, 'up');
}

function up(dir: string): ChildProcess[] {
  down();
  for (const n of NS) {
    sh(null, ['ip', 'netns', 'add', n]);
    x(n.slice(P.length + 1), 'ip', 'link', 'set', 'lo', 'up');
  }
  for (const b of ['brc', 'bre']) {
    x('hub', 'ip', 'link', 'add', b, 'type', 'bridge');
    x('hub', 'ip', 'link', 'set', b, 'up');
  }
  port('c', 'lan', 'brc');
  x('c', 'ip', 'addr', 'add', '2001:db8:0:1::100/64', 'dev', 'lan', 'nodad');
  for (const l of ['l1', 'l2'] as const) {
    port(l, 'cli', 'brc', MAC[l]);
    x(l, 'ip', 'addr', 'add', `2001:db8:0:1::${l.slice(1)}/64`, 'dev', 'cli', 'nodad');
  }
  const www = join(dir, 'www');
  sh(null, ['mkdir', '-p', www]);
  writeFileSync(join(www, 'health'), 'ok\n');
  const procs: ChildProcess[] = [];
  for (const [f, i] of [['f1', 1], ['f2', 2]] as const) {
    port(f, 'egr', 'bre', MAC[f]);
    x(f, 'ip', 'addr', 'add', `10.2.0.1${i}/24`, 'dev', 'egr');
    x(f, 'ip', 'addr', 'add', `2001:db8:2::1${i}/64`, 'dev', 'egr', 'nodad');
    x(f, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
    // Which firewall the egress router sent the test flow to.
    x(f, 'ip6tables', '-w', '-t', 'mangle', '-A', 'PREROUTING', '-d', '2001:db8:ffff::/48');
    procs.push(spawn('ip', ['netns', 'exec', ns(f), '/usr/bin/python3', '-m', 'http.server', '8080', '--bind', `2001:db8:2::1${i}`, '--directory', www], { stdio: 'ignore' }));
  }
  port('er', 'fwn', 'bre');
  x('er', 'ip', 'addr', 'add', '10.2.0.1/24', 'dev', 'fwn');
  x('er', 'ip', 'addr', 'add', '2001:db8:2::1/64', 'dev', 'fwn', 'nodad');
  sh(null, ['ip', 'link', 'add', 'srv', 'netns', ns('er'), 'type', 'veth', 'peer', 'name', 'er', 'netns', ns('srv')]);
  x('er', 'ip', 'link', 'set', 'srv', 'up');
  x('srv', 'ip', 'link', 'set', 'er', 'up');
  x('er', 'ip', 'addr', 'add', '2001:db8:3::1/64', 'dev', 'srv', 'nodad');
  x('srv', 'ip', 'addr', 'add', '2001:db8:3::2/64', 'dev', 'er', 'nodad');
  x('srv', 'ip', '-6', 'route', 'add', 'default', 'via', '2001:db8:3::1');
  // The seed's return-path marking, reduced to one flow: replies towards the clients as if they came in by fw1.
  x('er', 'ip6tables', '-w', '-t', 'mangle', '-A', 'PREROUTING', '-j', 'CONNMARK', '--restore-mark');
  x('er', 'ip6tables', '-w', '-t', 'mangle', '-A', 'PREROUTING', '-i', 'srv', '-d', '2001:db8:ffff::/48', '-j', 'MARK', '--set-mark', '1');
  return procs;
}

function config(dir: string): string {
  const t = { intervalMs: 400, timeoutMs: 300, rise: 2, fall: 2, jitter: 0 };
  const yaml = {
    cluster: 'v6t',
    store: { kind: 'memory' },
    timing: { holdDownMs: 1500, observationStaleMs: 5000, decideIntervalMs: 200, reconcileIntervalMs: 500 },
    nodes: [
      { name: 'lb1', role: 'ingress', interfaces: { client: 'cli', firewall: 'fwn' } },
      { name: 'lb2', role: 'ingress', interfaces: { client: 'cli', firewall: 'fwn' } },
      {
        name: 'er1', role: 'egress', interfaces: { firewall: 'fwn', server: 'srv' },
        probe: { interface: 'firewall', sources: { fw1: '10.2.0.21', fw2: '10.2.0.22' }, sources6: { fw1: '2001:db8:2::21', fw2: '2001:db8:2::22' } },
      },
    ],
    firewalls: [1, 2].map((i) => ({
      name: `fw${i}`, ingressAddress: `10.1.0.1${i}`, egressAddress: `10.2.0.1${i}`, egressAddress6: `2001:db8:2::1${i}`,
      egressMac: i === 1 ? MAC.f1 : MAC.f2, mark: i, table: 100 + i,
    })),
    checks: [
      { name: 'leg6-icmp', kind: 'icmp', scope: 'leg', from: 'egress', family: 'ipv6', icmpEngine: 'stream', ...t },
      { name: 'leg6-tcp', kind: 'tcp', scope: 'leg', from: 'egress', family: 'ipv6', port: 8080, ...t },
      { name: 'leg6-http', kind: 'http', scope: 'leg', from: 'egress', family: 'ipv6', url: 'http://[::1]:8080/health', bodyMatch: '^ok', ...t },
    ],
    vipGroups: [{ name: 'ingress', role: 'ingress', addresses: [{ address: `${VIP}/64`, interface: 'client' }], garp: { count: 1, repeatAfterMs: 1000, refreshIntervalMs: 0 } }],
    egress: { routes: ['203.0.113.0/24'], routes6: ['2001:db8:ffff::/48'] },
    events: { file: join(dir, '{node}.events.log') },
    runtimeDir: join(dir, 'run'),
  };
  return JSON.stringify(yaml, null, 2); // JSON is YAML
}

function neighMac(): string | null {
  const out = trySh(ns('c'), ['ip', '-6', '-j', 'neigh', 'show', VIP, 'dev', 'lan']).out.trim();
  const list = out ? (JSON.parse(out) as { lladdr?: string }[]) : [];
  return list[0]?.lladdr ?? null;
}

/** tcpdump -tt -e lines of neighbour solicitations/advertisements seen by the client. */
interface Nd { at: number; srcMac: string; kind: 'NS' | 'NA'; target: string }
function parseNd(text: string): Nd[] {
  return text.split('\n').flatMap((l) => {
    const m = /^(\d+\.\d+) ([0-9a-f:]{17}) > .*neighbor (solicitation|advertisement), (?:who has|tgt is) ([0-9a-f:]+)/.exec(l);
    return m ? [{ at: Number(m[1]) * 1000, srcMac: m[2]!, kind: m[3] === 'solicitation' ? 'NS' as const : 'NA' as const, target: m[4]! }] : [];
  });
}

function counter(f: string): number {
  const out = x(f, 'ip6tables', '-w', '-t', 'mangle', '-L', 'PREROUTING', '-v', '-x', '-n');
  const line = out.split('\n').find((l) => l.includes('2001:db8:ffff::/48'));
  return Number(line?.trim().split(/\s+/)[0] ?? NaN);
}

function table101(): string {
  return trySh(ns('er'), ['ip', '-6', 'route', 'show', 'table', '101']).out.trim();
}

let dir: string;
let procs: ChildProcess[] = [];
let cfg: Config;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sandwich-v6-'));
  procs = up(dir);
  writeFileSync(join(dir, 'config.yaml'), config(dir));
  cfg = parseConfig(readFileSync(join(dir, 'config.yaml'), 'utf8'), 'v6 system test');
});

afterAll(() => {
  for (const p of procs) p.kill('SIGKILL');
  down();
  if (!process.env.SANDWICH_KEEP) rmSync(dir, { recursive: true, force: true });
});

test('IPv6 VIP takeover: the client learns the new holder from its unsolicited neighbour advertisement', async () => {
  const exec = new ExecRunner(10_000);
  const timers1 = new ManualTimers();
  const timers2 = new ManualTimers();
  const lb1 = new Actuator(cfg, 'lb1', new NetnsRunner(exec, ns('l1')), { timers: timers1 });
  const lb2 = new Actuator(cfg, 'lb2', new NetnsRunner(exec, ns('l2')), { timers: timers2 });
  const vipResult = (r: Awaited<ReturnType<Actuator['reconcile']>>) => {
    // No IPVS on the host: the ipvs driver and the IPVS sysctls fail; the VIP group must not.
    expect(r.errors.filter((e) => e.driver !== 'ipvs' && e.driver !== 'sysctl')).toEqual([]);
    return r.results.find((x) => x.driver === 'vip:ingress')!;
  };
  try {
    expect(vipResult(await lb1.reconcile(null, { holdsVips: true })).commands).toContain(`ip addr add ${VIP}/64 dev cli`);
    expect(x('l1', 'sysctl', '-n', 'net.ipv6.conf.cli.accept_dad', 'net.ipv6.conf.cli.ndisc_notify').split('\n').slice(0, 2)).toEqual(['0', '1']);
    // The address is usable at once (not tentative): the client reaches it and learns lb1's MAC.
    expect(x('l1', 'ip', '-6', 'addr', 'show', 'dev', 'cli')).toMatch(new RegExp(`inet6 ${VIP}/64 scope global \\n`));
    await waitFor('client pings the VIP', () => trySh(ns('c'), ['ping', '-6', '-c', '1', '-W', '1', VIP]).ok, 10_000, 200);
    expect(neighMac()).toBe(MAC.l1);

    const capture = join(dir, 'nd.txt');
    const dump = spawn('ip', ['netns', 'exec', ns('c'), 'tcpdump', '-l', '-n', '-e', '-tt', '-i', 'lan', 'icmp6 and (ip6[40] == 135 or ip6[40] == 136)'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    let err = '';
    dump.stdout!.on('data', (d: Buffer) => (text += d.toString()));
    dump.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    try {
      await waitFor('tcpdump listening', () => err.includes('listening on'), 10_000);
      vipResult(await lb1.reconcile(null, { holdsVips: false }));
      const took = vipResult(await lb2.reconcile(null, { holdsVips: true }));
      const tEnd = Date.now();
      const vipStart = tEnd - took.durationMs; // the VIP group's step: sysctls, read, add
      expect(took.commands).toEqual(['sysctl -w net.ipv6.conf.cli.accept_dad=0 net.ipv6.conf.cli.ndisc_notify=1', `ip addr add ${VIP}/64 dev cli`]);
      await waitFor('client neighbour entry on lb2', () => neighMac() === MAC.l2, 5000, 5);
      const switchedAt = Date.now();
      // The repeat (repeatAfterMs) re-adds the address: a second advertisement.
      const tRepeat = Date.now();
      timers2.advance(1000);
      await lb2.settled();
      await waitFor('second advertisement', () => parseNd(text).filter((n) => n.kind === 'NA' && n.srcMac === MAC.l2).length >= 2, 5000);
      await sleep(200);
      const nd = parseNd(text);
      writeFileSync(capture, text);
      if (process.env.SANDWICH_KEEP) console.log(`vip step ${vipStart}..${tEnd}, repeat ${tRepeat}\n${text}`);
      const na = nd.filter((n) => n.kind === 'NA' && n.srcMac === MAC.l2 && n.target === VIP);
      const clientNs = nd.filter((n) => n.kind === 'NS' && n.srcMac !== MAC.l2 && n.target === VIP && n.at <= switchedAt);
      console.log(`IPv6 VIP takeover: unsolicited NA at the client ${(na[0]!.at - vipStart).toFixed(0)} ms after lb2's VIP step began (sysctl read+write, ip addr read+add, each an exec); client entry on lb2 at most ${(switchedAt - na[0]!.at).toFixed(0)} ms after the NA (polled every 5 ms); re-add NA ${(na[1]!.at - tRepeat).toFixed(0)} ms after the repeat timer fired`);
      // Sent by the kernel while the step ran (on the add), not later; the repeat's after its timer.
      expect(na[0]!.at).toBeGreaterThanOrEqual(vipStart - 5);
      expect(na[0]!.at).toBeLessThanOrEqual(tEnd + 5);
      expect(na[1]!.at).toBeGreaterThanOrEqual(tRepeat - 5);
      expect(na.length).toBeGreaterThanOrEqual(2);
      // The client learnt it from the advertisement, not by asking.
      expect(clientNs).toEqual([]);
      expect(neighMac()).toBe(MAC.l2);
      expect(x('l2', 'ip', '-6', 'addr', 'show', 'dev', 'cli')).toContain(VIP);
      expect(x('l1', 'ip', '-6', 'addr', 'show', 'dev', 'cli')).not.toContain(VIP);
      expect(trySh(ns('c'), ['ping', '-6', '-c', '1', '-W', '1', VIP]).ok).toBe(true);
    } finally {
      const exited = new Promise((r) => dump.once('exit', r));
      dump.kill('SIGINT');
      await Promise.race([exited, sleep(3000)]);
      dump.stdout!.destroy();
      dump.stderr!.destroy();
    }
  } finally {
    lb1.close();
    lb2.close();
  }
});

test('IPv6 egress: probes over IPv6 (ICMP, TCP, HTTP) take fw1 down and its IPv6 table is re-pointed via fw2, then restored', async () => {
  const out: string[] = [];
  const daemon = spawn('ip', ['netns', 'exec', ns('er'), process.execPath, BIN, 'run', '--node', 'er1', '--config', join(dir, 'config.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  daemon.stdout!.on('data', (d: Buffer) => out.push(d.toString()));
  daemon.stderr!.on('data', (d: Buffer) => out.push(d.toString()));
  const status = () => {
    const f = join(dir, 'run', 'er1.status.json');
    return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) as { observations: { firewall: string; check: string; state: string; lastError: string | null }[] } : null;
  };
  const states = (fw: string) => Object.fromEntries((status()?.observations ?? []).filter((o) => o.firewall === fw).map((o) => [o.check, o.state]));
  const flowTo = () => trySh(ns('srv'), ['ping', '-6', '-c', '1', '-W', '1', '2001:db8:ffff::100']);
  try {
    await waitFor('fw1 IPv6 table via fw1', () => table101().includes('via 2001:db8:2::11'), 30_000, 100);
    // All three IPv6 probe kinds succeed through both firewalls (real sockets from the sources6 addresses).
    await waitFor('every IPv6 check up', () => ['fw1', 'fw2'].every((f) => JSON.stringify(states(f)) === JSON.stringify({ 'leg6-icmp': 'up', 'leg6-tcp': 'up', 'leg6-http': 'up' })), 30_000, 100);
    expect(x('er', 'ip', '-6', 'rule', 'show')).toMatch(/500:\s+from all fwmark 0x1 iif srv lookup 101/);
    expect(x('er', 'ip', '-6', 'addr', 'show', 'dev', 'fwn')).toMatch(/2001:db8:2::21\/128 scope global nodad/);
    const before = [counter('f1'), counter('f2')];
    flowTo();
    expect([counter('f1') - before[0]!, counter('f2') - before[1]!]).toEqual([1, 0]);

    // fw1 stops answering on its egress side (echo and TCP :8080 dropped; neighbour discovery still works).
    x('f1', 'ip6tables', '-w', '-I', 'INPUT', '-p', 'ipv6-icmp', '--icmpv6-type', 'echo-request', '-j', 'DROP');
    x('f1', 'ip6tables', '-w', '-I', 'INPUT', '-p', 'tcp', '--dport', '8080', '-j', 'DROP');
    const failed = await waitFor('fw1 IPv6 table via fw2', () => table101().includes('via 2001:db8:2::12'), 20_000, 20);
    expect(table101()).toBe('2001:db8:ffff::/48 via 2001:db8:2::12 dev fwn metric 1024 pref medium');
    const mid = [counter('f1'), counter('f2')];
    flowTo();
    expect([counter('f1') - mid[0]!, counter('f2') - mid[1]!]).toEqual([0, 1]);
    const s = states('fw1');
    expect(s).toEqual({ 'leg6-icmp': 'down', 'leg6-tcp': 'down', 'leg6-http': 'down' });
    const events = readFileSync(join(dir, 'er1.events.log'), 'utf8');
    expect(events).toMatch(/"reason":"fw1 down: [^"]*leg6-(icmp|tcp|http) failing since [^"]*"/);
    for (const k of ['icmp', 'tcp', 'http']) expect(events).toContain(`"reason":"leg6-${k} via fw1 down: timeout after 300 ms"`);
    expect(events).toContain('conntrack -D -f ipv6 -m 1');

    x('f1', 'ip6tables', '-w', '-F', 'INPUT');
    const back = await waitFor('fw1 IPv6 table via fw1 again', () => table101().includes('via 2001:db8:2::11'), 20_000, 20);
    console.log(`IPv6 egress: fw1 blocked → table 101 via fw2 after ${failed.ms.toFixed(0)} ms (checks every 400 ms, fall 2); repaired → via fw1 after ${back.ms.toFixed(0)} ms (rise 2; egress goes back at the start of the 1500 ms hold-down)`);
    // Egress first: back via fw1 once it is healthy (rise 2 × 400 ms), while still in its hold-down.
    const upAfterHoldDown = /"reason":"fw1 up: healthy since [^"]*hold-down of 1500 ms passed/;
    expect(back.ms).toBeGreaterThan(400);
    expect(readFileSync(join(dir, 'er1.events.log'), 'utf8')).not.toMatch(upAfterHoldDown);
    await waitFor('fw1 up after its hold-down', () => upAfterHoldDown.test(readFileSync(join(dir, 'er1.events.log'), 'utf8')), 10_000, 50);
  } catch (e) {
    console.log(out.join('').slice(-4000));
    throw e;
  } finally {
    const exited = new Promise((r) => daemon.once('exit', r));
    daemon.kill('SIGTERM');
    if (await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]) === false) daemon.kill('SIGKILL');
    daemon.stdout!.destroy();
    daemon.stderr!.destroy();
  }
});
