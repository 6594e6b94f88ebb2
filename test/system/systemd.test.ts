// deploy/sandwich.service, checked as far as this machine allows (PID 1 is not systemd here, so the
// unit cannot be started): `systemd-analyze verify` and `security`, then the daemon run the way the
// unit runs it — an unprivileged user with only CAP_NET_ADMIN + CAP_NET_RAW (ambient), notifying
// readiness and watchdog keep-alives through $NOTIFY_SOCKET — inside a network namespace.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemdNotifier, watchdogIntervalMs } from '../../controller/systemd';
import { FakeRunner } from '../../failover/runner';

const ROOT = join(__dirname, '..', '..');
const UNIT = join(ROOT, 'deploy', 'sandwich.service');
const UID = 61234; // no passwd entry needed: setpriv takes numbers
const NS = `sdt7-${process.pid}`;
const FW_NS = `sdt7-${process.pid}-fw`;
const TOKEN = 'systemd-test-token-0123456789';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor<T>(what: string, probe: () => T, timeoutMs = 45_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await sleep(50);
  }
}
const ns = (...args: string[]) => execFileSync('ip', ['netns', 'exec', NS, ...args], { encoding: 'utf8', timeout: 10_000 });

describe('deploy/sandwich.service', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sandwich-unit-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const verify = (text: string) => {
    const f = join(dir, 'sandwich.service');
    // The unit runs /opt/sandwich/bin/sandwich; verify checks the executable exists, so point it at this checkout.
    writeFileSync(f, text.replaceAll('/opt/sandwich', ROOT));
    return spawnSync('systemd-analyze', ['verify', f], { encoding: 'utf8', timeout: 30_000 });
  };

  test('systemd-analyze verify finds nothing to complain about (and does complain about a broken copy)', () => {
    const text = readFileSync(UNIT, 'utf8');
    const ok = verify(text);
    expect({ status: ok.status, stderr: ok.stderr.trim() }).toEqual({ status: 0, stderr: '' });
    const broken = verify(text.replace('Type=notify', 'Type=notfy').replace('WatchdogSec=30s', 'WatchdogSecs=30s'));
    expect(broken.stderr).toMatch(/Failed to parse service type/);
    expect(broken.stderr).toMatch(/Unknown key 'WatchdogSecs'/);
  });

  test('the deploy scripts pass shellcheck', () => {
    const scripts = ['deploy/install.sh', 'deploy/etcd-tls/make-certs.sh', 'deploy/etcd-tls/setup-auth.sh', 'scripts/gen-config-reference'];
    const r = spawnSync('shellcheck', scripts, { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    expect({ status: r.status, out: r.stdout + r.stderr }).toEqual({ status: 0, out: '' });
  });

  test('the unit is a notify service with watchdog, restart, capabilities, a dedicated user and a low exposure score', () => {
    const lines = readFileSync(UNIT, 'utf8').split('\n').filter((l) => /^[A-Za-z]+=/.test(l));
    const keys = new Map<string, string[]>();
    for (const l of lines) {
      const [k, v] = [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)];
      keys.set(k, [...(keys.get(k) ?? []), v]);
    }
    expect(keys.get('Type')).toEqual(['notify']);
    expect(keys.get('NotifyAccess')).toEqual(['all']);
    expect(keys.get('WatchdogSec')).toEqual(['30s']);
    expect(keys.get('Restart')).toEqual(['on-failure']);
    expect(keys.get('User')).toEqual(['sandwich']);
    expect(keys.get('AmbientCapabilities')).toEqual(['CAP_NET_ADMIN CAP_NET_RAW']);
    expect(keys.get('CapabilityBoundingSet')).toEqual(['CAP_NET_ADMIN CAP_NET_RAW']);
    for (const k of ['NoNewPrivileges', 'PrivateTmp', 'ProtectHome']) expect(keys.get(k)).toEqual(['yes']);
    expect(keys.get('ProtectSystem')).toEqual(['strict']);
    const f = join(dir, 'sandwich.service');
    writeFileSync(f, readFileSync(UNIT, 'utf8').replaceAll('/opt/sandwich', ROOT));
    const sec = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', f], { encoding: 'utf8', timeout: 30_000 });
    const m = /Overall exposure level for sandwich\.service: ([\d.]+)/.exec(sec.stdout + sec.stderr);
    expect(m).not.toBeNull();
    // 0 = fully locked down, 10 = unprotected; what remains is what IPVS/ARP/route management needs.
    expect(Number(m![1])).toBeLessThanOrEqual(3.0);
  });
});

describe('the daemon as an unprivileged user with CAP_NET_ADMIN + CAP_NET_RAW only', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sandwich-caps-'));
  });
  let listener: ChildProcess | null = null;
  let daemon: ChildProcess | null = null;
  let notes = '';
  let daemonOut = '';

  beforeAll(() => {
    execFileSync('ip', ['netns', 'add', NS]);
    for (const [dev, addr] of [['f0', '10.2.0.2/24'], ['s0', '198.51.100.1/24']] as const) {
      // veth pairs (no dummy module on this kernel); the peer end stays in the namespace, up.
      ns('ip', 'link', 'add', dev, 'type', 'veth', 'peer', 'name', `${dev}p`);
      ns('ip', 'addr', 'add', addr, 'dev', dev);
      ns('ip', 'link', 'set', dev, 'up');
      ns('ip', 'link', 'set', `${dev}p`, 'up');
    }
    ns('ip', 'link', 'set', 'lo', 'up');
    // Both firewalls' egress addresses answer from a second namespace, so the probes see them up.
    execFileSync('ip', ['netns', 'add', FW_NS]);
    ns('ip', 'link', 'set', 'f0p', 'netns', FW_NS);
    for (const a of ['10.2.0.11/24', '10.2.0.12/24']) execFileSync('ip', ['-n', FW_NS, 'addr', 'add', a, 'dev', 'f0p']);
    execFileSync('ip', ['-n', FW_NS, 'link', 'set', 'f0p', 'up']);
    chownSync(dir, UID, UID);
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'api.token'), `${TOKEN}\n`, { mode: 0o600 });
    chownSync(join(dir, 'api.token'), UID, UID);
    writeFileSync(join(dir, 'config.yaml'), `
cluster: capstest
store: { kind: memory }
timing: { decideIntervalMs: 100, holdDownMs: 0 }
nodes:
  - name: er1
    role: egress
    interfaces: { firewall: f0, server: s0 }
    probe: { interface: firewall, sources: { fw1: 10.2.0.21, fw2: 10.2.0.22 } }
firewalls:
  - { name: fw1, ingressAddress: 10.1.0.11, egressAddress: 10.2.0.11, egressMac: "02:00:00:00:f1:0e", mark: 1, table: 101 }
  - { name: fw2, ingressAddress: 10.1.0.12, egressAddress: 10.2.0.12, egressMac: "02:00:00:00:f2:0e", mark: 2, table: 102 }
checks:
  - { name: egress-leg, kind: icmp, scope: leg, from: egress, intervalMs: 500, timeoutMs: 200 }
vipGroups:
  - name: egress
    role: egress
    addresses: [{ address: 10.2.0.254/24, interface: firewall }]
    garp: { count: 1, repeatAfterMs: 0, refreshIntervalMs: 0 }
egress: { routes: [203.0.113.0/24], flushConntrack: false }
events: { file: ${dir}/events.log }
runtimeDir: ${dir}/run
api: { listen: "unix:${dir}/api.sock", tokenFile: ${dir}/api.token }
`);
  });

  afterAll(async () => {
    for (const p of [daemon, listener]) {
      if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      p?.stdout?.destroy();
      p?.stderr?.destroy();
    }
    await sleep(100);
    spawnSync('ip', ['netns', 'del', NS]);
    spawnSync('ip', ['netns', 'del', FW_NS]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const asUser = (caps: string[], cmd: string[], env: Record<string, string> = {}) => [
    'netns', 'exec', NS, 'setpriv', `--reuid=${UID}`, `--regid=${UID}`, '--clear-groups',
    `--inh-caps=-all${caps.map((c) => `,+${c}`).join('')}`,
    ...(caps.length ? [`--ambient-caps=${caps.map((c) => `+${c}`).join(',')}`] : []),
    `--bounding-set=-all${caps.map((c) => `,+${c}`).join('')}`,
    'env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...cmd,
  ];

  test('without capabilities the same user cannot change addresses (the control)', () => {
    const r = spawnSync('ip', asUser([], ['ip', 'addr', 'add', '10.2.0.99/32', 'dev', 'f0']), { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/Operation not permitted/);
  });

  test('starts, notifies READY and WATCHDOG, manages addresses, rules, routes and sysctls, serves the API, stops cleanly', async () => {
    const notifySock = join(dir, 'notify.sock');
    // Stand-in for systemd's notification socket; passed fds (BARRIER=1) are dropped, so the kernel closes them as systemd does.
    listener = spawn('/usr/bin/python3', ['-u', '-c', [
      'import os, socket, sys',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
      's.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777)',
      'print("LISTENING", flush=True)',
      'while True: print(s.recv(4096).decode().replace("\\n", " "), flush=True)',
    ].join('\n'), notifySock], { stdio: ['ignore', 'pipe', 'inherit'] });
    listener.stdout!.on('data', (d: Buffer) => (notes += d.toString()));
    await waitFor('notify listener', () => notes.includes('LISTENING'));

    ns('sysctl', '-qw', 'net.ipv4.ip_forward=0');
    daemon = spawn('ip', asUser(['net_admin', 'net_raw'], [process.execPath, join(ROOT, 'bin', 'sandwich'), 'run', '--node', 'er1', '--config', join(dir, 'config.yaml')], {
      NOTIFY_SOCKET: notifySock, WATCHDOG_USEC: '1000000',
    }), { stdio: ['ignore', 'pipe', 'pipe'] });
    daemon.stdout!.on('data', (d: Buffer) => (daemonOut += d.toString()));
    daemon.stderr!.on('data', (d: Buffer) => (daemonOut += d.toString()));
    try {
      await waitFor('READY=1', () => notes.includes('READY=1'));
    } catch (e) {
      throw new Error(`${(e as Error).message}\ndaemon output:\n${daemonOut}\nevents:\n${existsSync(join(dir, 'events.log')) ? readFileSync(join(dir, 'events.log'), 'utf8') : ''}`);
    }
    expect(notes).toMatch(/READY=1 STATUS=er1 running as egress node; API on unix:/);

    // The process really is unprivileged: uid 61234, effective capabilities NET_ADMIN (12) + NET_RAW (13) only.
    const pid = daemon.pid!;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    expect(status).toMatch(new RegExp(`^Uid:\\s+${UID}\\s+${UID}\\s+${UID}\\s+${UID}$`, 'm'));
    expect(/^CapEff:\s+([0-9a-f]+)$/m.exec(status)?.[1]).toBe('0000000000003000');

    // What it did to the kernel without root: probe source addresses, policy rules, routes, a sysctl.
    // (The VIP is not checked here: with a memory store the ARP fence of failover/fence.ts is asked for
    // an infinite timeout and fails, so the VIP is withheld; see the report of issue 7.)
    await waitFor('probe source addresses', () => {
      const a = ns('ip', '-o', 'addr', 'show', 'dev', 'f0');
      return a.includes('10.2.0.21/32') && a.includes('10.2.0.22/32');
    });
    await waitFor('per-firewall routes', () => ns('ip', 'route', 'show', 'table', '101').includes('203.0.113.0/24 via 10.2.0.11'));
    expect(ns('ip', 'rule', 'show')).toMatch(/fwmark 0x1 iif s0 lookup 101/);
    expect(ns('sysctl', '-n', 'net.ipv4.ip_forward').trim()).toBe('1');

    // Watchdog keep-alives at WATCHDOG_USEC / 2.
    await waitFor('two WATCHDOG=1', () => (notes.match(/WATCHDOG=1/g) ?? []).length >= 2);

    // The API on its unix socket, as this user.
    const api = (method: string, path: string, headers: Record<string, string> = {}) => new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ socketPath: join(dir, 'api.sock'), method, path, headers, timeout: 5000 }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end(method === 'POST' ? JSON.stringify({ reason: 'test' }) : undefined);
    });
    await waitFor('both firewalls seen up', () => {
      const st = JSON.parse(readFileSync(join(dir, 'run', 'er1.status.json'), 'utf8')) as { observations: { state: string }[] };
      return st.observations.length === 2 && st.observations.every((o) => o.state === 'up');
    });
    const metrics = await api('GET', '/metrics');
    expect(metrics.body).toMatch(/sandwich_leader\{role="egress",cluster="capstest",node="er1"\} 1/);
    expect(metrics.body).toMatch(/sandwich_check_up\{firewall="fw1",check="egress-leg",cluster="capstest",node="er1"\} 1/);
    expect((await api('POST', '/drain/fw1')).status).toBe(401);
    expect((await api('POST', '/drain/fw1', { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    await waitFor('fw1 drained in the status', () => readFileSync(join(dir, 'run', 'er1.status.json'), 'utf8').includes('"draining"'));

    daemon.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => daemon!.once('exit', (c) => resolve(c)));
    listener.kill('SIGTERM');
    expect(code).toBe(0);
    expect(notes).toMatch(/STOPPING=1/);
    expect(notes).toMatch(/STATUS=er1 stopping: SIGTERM/);
    const events = readFileSync(join(dir, 'events.log'), 'utf8');
    expect(events).toMatch(/API: refused POST \/drain\/fw1/);
    expect(events).not.toContain(TOKEN);
  }, 150_000);
});

describe('systemdNotifier (commands it sends)', () => {
  test('nothing outside systemd; READY, STATUS, STOPPING and WATCHDOG under it; failures reported, not thrown', async () => {
    const idle = new FakeRunner();
    const off = systemdNotifier({ env: {}, runner: idle });
    await off.ready('x');
    off.startWatchdog(() => true)();
    expect(idle.calls).toEqual([]);

    const runner = new FakeRunner();
    const errors: string[] = [];
    const n = systemdNotifier({ env: { NOTIFY_SOCKET: '/run/x.sock', WATCHDOG_USEC: '400000' }, runner, pid: 42, onError: (m) => errors.push(m) });
    await n.ready('lb1 running\nas ingress');
    await n.stopping('bye');
    let healthy = false;
    const stop = n.startWatchdog(() => healthy);
    await sleep(450);
    expect(runner.lines().filter((l) => l.includes('WATCHDOG'))).toEqual([]);
    healthy = true;
    await sleep(650);
    stop();
    const pings = runner.lines().filter((l) => l === 'systemd-notify WATCHDOG=1').length;
    expect(pings).toBeGreaterThanOrEqual(1);
    expect(pings).toBeLessThanOrEqual(4);
    expect(runner.lines().slice(0, 2)).toEqual(["systemd-notify --ready '--status=lb1 running?as ingress'", 'systemd-notify STOPPING=1 --status=bye']);

    runner.setHandler(() => new Error('systemd-notify: not installed (ENOENT)'));
    await expect(n.ready('again')).resolves.toBeUndefined();
    expect(errors).toEqual(['systemd-notify --ready --status=again: systemd-notify: not installed (ENOENT)']);
  });

  test('watchdog period is half of WATCHDOG_USEC, and only for the PID it names', () => {
    expect(watchdogIntervalMs({ NOTIFY_SOCKET: '/s', WATCHDOG_USEC: '30000000' }, 7)).toBe(15_000);
    expect(watchdogIntervalMs({ NOTIFY_SOCKET: '/s', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '8' }, 7)).toBe(0);
    expect(watchdogIntervalMs({ NOTIFY_SOCKET: '/s', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 7)).toBe(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 7)).toBe(0);
    expect(watchdogIntervalMs({ NOTIFY_SOCKET: '/s', WATCHDOG_USEC: 'soon' }, 7)).toBe(0);
  });
});
