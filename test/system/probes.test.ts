// Probes forced through one firewall, with real packets in network namespaces:
//
//   prober ns: br0 10.201.0.10/24 + sources .21 (fw1) .22 (fw2); `from <src> lookup 20N: default via fwN`
//        │ (bridge)
//   fw1 ns: 10.201.0.11 ─ 10.202.1.1      fw2 ns: 10.201.0.12 ─ 10.202.2.1     (forwarding, iptables counters)
//        │                                     │
//   server ns: 10.202.1.2, 10.202.2.2, service 10.203.0.1 on lo (python http.server :8080);
//              replies to source N routed back via fwN (the egress router's job in the sandwich).
//
// The prober's main table has no route to 10.203.0.1: only the source rules make the path exist.
// TCP/HTTP probes run in a node process inside the prober ns (a socket cannot be bound in another
// ns from here); ICMP runs through NetnsRunner.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProbeJob } from '../../checks/jobs';
import { icmpRunnerProbe, type ProbeResult } from '../../checks/probes';
import type { CheckConfig } from '../../controller/config';
import { buildTwoFirewalls } from './two-firewalls';
import { ExecRunner, NetnsRunner } from '../../failover/runner';

const ROOT = join(__dirname, '..', '..');
const P = `pr-${process.pid}-p`;
const FW = [`pr-${process.pid}-f1`, `pr-${process.pid}-f2`] as const;
const S = `pr-${process.pid}-s`;
const SRC = ['10.201.0.21', '10.201.0.22'] as const;
const SERVICE = '10.203.0.1';

const exec = new ExecRunner(10_000);
const ip = (...args: string[]) => exec.run('ip', args);
const inNs = (ns: string, ...args: string[]) => exec.run('ip', ['netns', 'exec', ns, ...args]);

function check(kind: CheckConfig['kind'], extra: Partial<CheckConfig> = {}): CheckConfig {
  return { name: kind, kind, scope: 'path', from: 'ingress', intervalMs: 1000, timeoutMs: 600, rise: 1, fall: 1, jitter: 0, ...extra };
}

function job(fw: 0 | 1, kind: CheckConfig['kind'], target: string, port: number | null = null): ProbeJob {
  return { node: 'lb1', role: 'ingress', firewall: `fw${fw + 1}`, check: check(kind), kind, source: SRC[fw], target, port, key: `fw${fw + 1}/${kind}` };
}

// Runs probes inside the prober ns: compiles checks/*.ts with swc on require, prints results as JSON.
const NS_RUNNER = `
const fs = require('node:fs');
const swc = require('@swc/core');
require.extensions['.ts'] = (m, file) => m._compile(swc.transformSync(fs.readFileSync(file, 'utf8'), {
  filename: file, jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }).code, file);
const probes = require(process.argv[1] + '/checks/probes.ts');
const jobs = JSON.parse(process.argv[2]);
(async () => {
  const out = [];
  for (const j of jobs) out.push(await (j.kind === 'tcp' ? probes.tcpProbe : probes.httpProbe)(j, new AbortController().signal));
  process.stdout.write(JSON.stringify(out));
})();`;

function probeInProber(jobs: ProbeJob[]): Promise<ProbeResult[]> {
  return new Promise((resolve, reject) => {
    execFile('ip', ['netns', 'exec', P, process.execPath, '-e', NS_RUNNER, ROOT, JSON.stringify(jobs)], { cwd: ROOT, timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`prober node failed: ${err.message}\n${stderr}`));
      resolve(JSON.parse(stdout) as ProbeResult[]);
    });
  });
}

/** Packets counted by fwN's FORWARD rules: [from source1, from source2, to source1, to source2]. */
async function counters(fw: 0 | 1): Promise<number[]> {
  const { stdout } = await inNs(FW[fw], 'iptables', '-w', '-nvxL', 'FORWARD');
  const count = (src: string, dst: string) => {
    const line = stdout.split('\n').find((l) => { const f = l.trim().split(/\s+/); return f[2] === 'ACCEPT' && f[7] === src && f[8] === dst; });
    if (!line) throw new Error(`no counter ${src} -> ${dst} in ${FW[fw]}:\n${stdout}`);
    return Number(line.trim().split(/\s+/)[0]);
  };
  return [count(SRC[0], '0.0.0.0/0'), count(SRC[1], '0.0.0.0/0'), count('0.0.0.0/0', SRC[0]), count('0.0.0.0/0', SRC[1])];
}

const delta = (a: number[], b: number[]) => b.map((x, i) => x - (a[i] ?? 0));

describe('probes through one firewall (network namespaces)', () => {
  let server: ChildProcess | null = null;
  const docroot = mkdtempSync(join(tmpdir(), 'pr-www-'));
  const icmp = icmpRunnerProbe(new NetnsRunner(exec, P));

  beforeAll(async () => {
    await buildTwoFirewalls({ prober: P, firewalls: FW, target: S, sources: SRC, targetAddress: SERVICE });
    writeFileSync(join(docroot, 'index.html'), 'ok\n');
    server = spawn('ip', ['netns', 'exec', S, '/usr/bin/python3', '-m', 'http.server', '--bind', SERVICE, '8080'], { cwd: docroot, stdio: 'ignore' });
    // Wait until the server answers from inside its ns.
    for (let i = 0; i < 100; i++) {
      try {
        await inNs(S, '/usr/bin/python3', '-c', `import urllib.request; urllib.request.urlopen("http://${SERVICE}:8080/", timeout=1)`);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error('http.server in the server ns did not come up');
  }, 60_000);

  afterAll(async () => {
    if (server?.pid) server.kill('SIGKILL');
    for (const ns of [P, ...FW, S]) await ip('netns', 'del', ns).catch(() => undefined);
    rmSync(docroot, { recursive: true, force: true });
  });

  it('has no path without the source rules', async () => {
    const r = await icmp({ ...job(0, 'icmp', SERVICE), source: '10.201.0.10' }, new AbortController().signal);
    expect(r).toMatchObject({ ok: false, error: expect.stringMatching(/^(timeout after 600 ms|network is unreachable)$/) });
  });

  it('sends each source through its own firewall, both directions', async () => {
    const before = [await counters(0), await counters(1)];
    const [http1, tcp1, http2, tcp2] = await probeInProber([
      job(0, 'http', `http://${SERVICE}:8080/`), job(0, 'tcp', SERVICE, 8080),
      job(1, 'http', `http://${SERVICE}:8080/`), job(1, 'tcp', SERVICE, 8080),
    ]);
    const ping1 = await icmp(job(0, 'icmp', SERVICE), new AbortController().signal);
    const ping2 = await icmp(job(1, 'icmp', SERVICE), new AbortController().signal);
    expect([http1, tcp1, http2, tcp2, ping1, ping2].map((r) => r?.ok)).toEqual([true, true, true, true, true, true]);
    const [d1, d2] = [delta(before[0]!, await counters(0)), delta(before[1]!, await counters(1))];
    // fw1 carried source 1 both ways and never source 2; fw2 the reverse.
    expect(d1[0]).toBeGreaterThan(0);
    expect(d1[2]).toBeGreaterThan(0);
    expect([d1[1], d1[3]]).toEqual([0, 0]);
    expect(d2[1]).toBeGreaterThan(0);
    expect(d2[3]).toBeGreaterThan(0);
    expect([d2[0], d2[2]]).toEqual([0, 0]);
  }, 30_000);

  it('fails only the probes of the firewall that stops forwarding', async () => {
    await inNs(FW[0], 'iptables', '-w', '-I', 'FORWARD', '1', '-j', 'DROP');
    try {
      const results = await probeInProber([
        job(0, 'http', `http://${SERVICE}:8080/`), job(0, 'tcp', SERVICE, 8080),
        job(1, 'http', `http://${SERVICE}:8080/`), job(1, 'tcp', SERVICE, 8080),
      ]);
      const ping1 = await icmp(job(0, 'icmp', SERVICE), new AbortController().signal);
      const ping2 = await icmp(job(1, 'icmp', SERVICE), new AbortController().signal);
      expect([...results, ping1, ping2].map((r) => (r.ok ? 'ok' : r.error))).toEqual([
        'timeout after 600 ms', 'timeout after 600 ms', 'ok', 'ok', 'timeout after 600 ms', 'ok',
      ]);
      // The leg to fw1 itself still answers: the fault is in forwarding, not on the ingress leg.
      expect((await icmp(job(0, 'icmp', '10.201.0.11'), new AbortController().signal)).ok).toBe(true);
    } finally {
      await inNs(FW[0], 'iptables', '-w', '-D', 'FORWARD', '1');
    }
  }, 30_000);
});
