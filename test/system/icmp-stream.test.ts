// The long-lived ICMP stream (checks/icmp-stream.ts) with real packets in network namespaces: each probe
// source goes through its own firewall, a firewall that stops forwarding fails only its own probes, and
// close() ends the pings.
//
//   prober ns: br0 10.201.0.10/24 + sources .21 (fw1) .22 (fw2); `from <src> lookup 20N: default via fwN`
//   fw1 ns: 10.201.0.11 ─ 10.202.1.1      fw2 ns: 10.201.0.12 ─ 10.202.2.1     (forwarding, iptables counters)
//   server ns: 10.202.1.2, 10.202.2.2, target 10.203.0.1 on lo; replies to source N routed back via fwN.
import { IcmpStreamPool } from '../../checks/icmp-stream';
import type { ProbeJob } from '../../checks/jobs';
import type { ProbeResult } from '../../checks/probes';
import type { CheckConfig } from '../../controller/config';
import { buildTwoFirewalls } from './two-firewalls';
import { ExecRunner, ExecSpawner, NetnsSpawner } from '../../failover/runner';

const P = `is-${process.pid}-p`;
const FW = [`is-${process.pid}-f1`, `is-${process.pid}-f2`] as const;
const S = `is-${process.pid}-s`;
const SRC = ['10.201.0.21', '10.201.0.22'] as const;
const TARGET = '10.203.0.1';

const exec = new ExecRunner(10_000);
const ip = (...args: string[]) => exec.run('ip', args);
const inNs = (ns: string, ...args: string[]) => exec.run('ip', ['netns', 'exec', ns, ...args]);

function job(fw: 0 | 1, target = TARGET, source: string = SRC[fw]): ProbeJob {
  const check: CheckConfig = { name: 'path', kind: 'icmp', scope: 'path', from: 'ingress', target, intervalMs: 200, timeoutMs: 150, rise: 1, fall: 1, jitter: 0, icmpEngine: 'stream' };
  return { node: 'lb1', role: 'ingress', firewall: `fw${fw + 1}`, check, kind: 'icmp', source, target, port: null, key: `fw${fw + 1}/path` };
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

/** n consecutive probes of one job, as 'ok' or the error. */
async function probes(pool: IcmpStreamPool, j: ProbeJob, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r: ProbeResult = await pool.probe(j, AbortSignal.timeout(5000));
    out.push(r.ok ? 'ok' : (r.error ?? 'failed'));
  }
  return out;
}

async function pingsIn(ns: string): Promise<number> {
  const { stdout } = await exec.run('ip', ['netns', 'pids', ns]);
  let n = 0;
  for (const pid of stdout.split('\n').filter(Boolean)) {
    const { stdout: comm } = await exec.run('cat', [`/proc/${pid}/comm`]).catch(() => ({ stdout: '' }));
    if (comm.trim() === 'ping') n++;
  }
  return n;
}

describe('icmp stream through one firewall (network namespaces)', () => {
  const pool = new IcmpStreamPool({ spawner: new NetnsSpawner(new ExecSpawner(), P), restartDelayMs: 200 });

  beforeAll(async () => {
    await buildTwoFirewalls({ prober: P, firewalls: FW, target: S, sources: SRC, targetAddress: TARGET });
  }, 60_000);

  afterAll(async () => {
    await pool.close();
    for (const ns of [P, ...FW, S]) await ip('netns', 'del', ns).catch(() => undefined);
  });

  it('sends each source through its own firewall, both directions, from one ping per target', async () => {
    // Warm up: the first outcomes may be misses while the bridge learns addresses.
    await Promise.all([probes(pool, job(0), 3), probes(pool, job(1), 3)]);
    const before = [await counters(0), await counters(1)];
    const [r1, r2] = await Promise.all([probes(pool, job(0), 10), probes(pool, job(1), 10)]);
    expect(r1).toEqual(Array(10).fill('ok'));
    expect(r2).toEqual(Array(10).fill('ok'));
    const after = [await counters(0), await counters(1)];
    const d1 = after[0]!.map((x, i) => x - (before[0]![i] ?? 0));
    const d2 = after[1]!.map((x, i) => x - (before[1]![i] ?? 0));
    // fw1 carried source 1 both ways and never source 2; fw2 the reverse. ≥ 10 echoes each.
    expect(d1[0]).toBeGreaterThanOrEqual(10);
    expect(d1[2]).toBeGreaterThanOrEqual(10);
    expect([d1[1], d1[3]]).toEqual([0, 0]);
    expect(d2[1]).toBeGreaterThanOrEqual(10);
    expect(d2[3]).toBeGreaterThanOrEqual(10);
    expect([d2[0], d2[2]]).toEqual([0, 0]);
    expect(await pingsIn(P)).toBe(2);
  }, 30_000);

  it('fails only the probes of the firewall that stops forwarding, and recovers', async () => {
    await inNs(FW[0], 'iptables', '-w', '-I', 'FORWARD', '1', '-j', 'DROP');
    try {
      await probes(pool, job(0), 2); // replies already on their way
      const [r1, r2] = await Promise.all([probes(pool, job(0), 5), probes(pool, job(1), 5)]);
      expect(r1).toEqual(Array(5).fill('timeout after 150 ms'));
      expect(r2).toEqual(Array(5).fill('ok'));
    } finally {
      await inNs(FW[0], 'iptables', '-w', '-D', 'FORWARD', '1');
    }
    await probes(pool, job(0), 2);
    expect(await probes(pool, job(0), 5)).toEqual(Array(5).fill('ok'));
  }, 30_000);

  it('has no path without the source rules, and says why ping cannot start from a foreign source', async () => {
    const [noRoute] = await probes(pool, job(0, TARGET, '10.201.0.10'), 1);
    expect(noRoute).toMatch(/^(network is unreachable|timeout after 150 ms)$/);
    const [foreign] = await probes(pool, job(0, TARGET, '10.201.0.99'), 1);
    expect(foreign).toBe('source 10.201.0.99: cannot assign requested address');
  }, 30_000);

  it('ends its pings on close', async () => {
    expect(await pingsIn(P)).toBeGreaterThanOrEqual(2);
    await pool.close();
    expect(await pingsIn(P)).toBe(0);
    expect((await pool.probe(job(0), AbortSignal.timeout(1000))).error).toBe('icmp streams closed');
  }, 30_000);
});
