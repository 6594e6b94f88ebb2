import { ProbeEngine } from '../../checks/engine';
import { IcmpStreamPool, parsePingLine, pingIntervalSeconds } from '../../checks/icmp-stream';
import { probeFactory } from '../../checks/probes';
import type { ProbeJob } from '../../checks/jobs';
import type { CheckConfig } from '../../controller/config';
import { ExecSpawner, FakeSpawner } from '../../failover/runner';
import { exampleConfig } from './fixtures/snapshot';

function job(over: Partial<CheckConfig> = {}, target = '10.0.0.9', source = '10.0.0.21', name = 'path'): ProbeJob {
  const check: CheckConfig = { name, kind: 'icmp', scope: 'path', from: 'ingress', target, intervalMs: 100, timeoutMs: 80, rise: 1, fall: 1, jitter: 0, ...over };
  return { node: 'lb1', role: 'ingress', firewall: 'fw1', check, kind: 'icmp', source, target, port: null, key: `fw1/${name}` };
}

const sig = () => new AbortController().signal;
const tick = () => new Promise((r) => setImmediate(r));

describe('parsePingLine', () => {
  it('reads replies, misses and ICMP errors of iputils ping -n -O', () => {
    expect(parsePingLine('64 bytes from 10.210.0.1: icmp_seq=12 ttl=63 time=0.075 ms')).toEqual({ kind: 'reply', seq: 12, rttMs: 0.075 });
    expect(parsePingLine('no answer yet for icmp_seq=3')).toEqual({ kind: 'no-answer', seq: 3 });
    expect(parsePingLine('From 10.201.0.11 icmp_seq=5 Destination Host Unreachable')).toEqual({ kind: 'icmp-error', seq: 5, message: 'destination host unreachable (from 10.201.0.11)' });
    expect(parsePingLine('64 bytes from 10.210.0.1: icmp_seq=12 ttl=63 time=0.075 ms (DUP!)')).toEqual({ kind: 'ignore' });
    expect(parsePingLine('PING 10.210.0.1 (10.210.0.1) from 10.209.0.21 : 56(84) bytes of data.')).toEqual({ kind: 'ignore' });
  });
  it('formats the interval in seconds', () => {
    expect(pingIntervalSeconds(100)).toBe('0.1');
    expect(pingIntervalSeconds(1500)).toBe('1.5');
  });
});

describe('IcmpStreamPool', () => {
  let now = 0;
  const make = (sp: FakeSpawner) => new IcmpStreamPool({ spawner: sp, now: () => now, restartDelayMs: 1000 });
  beforeEach(() => { now = 0; });

  it('starts one source-bound ping per target and interval, shared by jobs, and waits for the next outcome', async () => {
    const sp = new FakeSpawner();
    const pool = make(sp);
    const a = pool.probe(job(), sig());
    const b = pool.probe(job({}, '10.0.0.9', '10.0.0.21', 'other'), sig());
    expect(sp.procs.map((p) => [p.file, ...p.args].join(' '))).toEqual(['ping -n -O -i 0.1 -I 10.0.0.21 10.0.0.9']);
    void pool.probe(job({ intervalMs: 200 }), sig());
    void pool.probe(job({}, '10.0.0.10'), sig());
    expect(sp.procs).toHaveLength(3);
    sp.procs[0]!.handlers.onStdoutLine('64 bytes from 10.0.0.9: icmp_seq=1 ttl=63 time=0.5 ms');
    await expect(a).resolves.toEqual({ ok: true, rttMs: 0.5 });
    await expect(b).resolves.toEqual({ ok: true, rttMs: 0.5 });
    expect(pool.running).toBe(3);
    await pool.close();
    expect(sp.procs.every((p) => p.stopped)).toBe(true);
  });

  it('gives each job a fresh outcome once, and waits when it has taken the latest', async () => {
    const sp = new FakeSpawner();
    const pool = make(sp);
    const first = pool.probe(job(), sig());
    sp.last().handlers.onStdoutLine('64 bytes from 10.0.0.9: icmp_seq=1 ttl=63 time=0.5 ms');
    await first;
    // Same outcome again: not taken twice, so this probe waits for seq 2.
    let second: unknown = null;
    void pool.probe(job(), sig()).then((r) => { second = r; });
    await tick();
    expect(second).toBeNull();
    now = 100;
    sp.last().handlers.onStdoutLine('64 bytes from 10.0.0.9: icmp_seq=2 ttl=63 time=0.7 ms');
    await tick();
    expect(second).toEqual({ ok: true, rttMs: 0.7 });
    // An outcome already there and at most one interval old is taken at once.
    now = 130;
    sp.last().handlers.onStdoutLine('64 bytes from 10.0.0.9: icmp_seq=3 ttl=63 time=0.9 ms');
    now = 220;
    await expect(pool.probe(job(), sig())).resolves.toEqual({ ok: true, rttMs: 0.9 });
    // Older than one interval: stale, so wait for the next.
    now = 240;
    sp.last().handlers.onStdoutLine('64 bytes from 10.0.0.9: icmp_seq=4 ttl=63 time=1.1 ms');
    now = 400;
    let fourth: unknown = null;
    void pool.probe(job(), sig()).then((r) => { fourth = r; });
    await tick();
    expect(fourth).toBeNull();
    await pool.close();
    expect(fourth).toEqual({ ok: false, rttMs: 0, error: 'icmp streams closed' });
  });

  it('reports misses as timeouts, ignores their late replies, and fails replies slower than the timeout', async () => {
    const sp = new FakeSpawner();
    const pool = make(sp);
    const miss = pool.probe(job({ timeoutMs: 80 }), sig());
    sp.last().handlers.onStdoutLine('no answer yet for icmp_seq=1');
    await expect(miss).resolves.toEqual({ ok: false, rttMs: 80, error: 'timeout after 80 ms' });
    const slow = pool.probe(job({ timeoutMs: 80 }), sig());
    sp.last().handlers.onStdoutLine('64 bytes from 10.0.0.9: icmp_seq=1 ttl=63 time=150 ms'); // late reply to the miss: ignored
    sp.last().handlers.onStdoutLine('64 bytes from 10.0.0.9: icmp_seq=2 ttl=63 time=95.2 ms');
    await expect(slow).resolves.toEqual({ ok: false, rttMs: 95.2, error: 'timeout after 80 ms (reply after 95.2 ms)' });
    const unreachable = pool.probe(job(), sig());
    sp.last().handlers.onStdoutLine('From 10.0.0.11 icmp_seq=3 Destination Host Unreachable');
    await expect(unreachable).resolves.toEqual({ ok: false, rttMs: 0, error: 'destination host unreachable (from 10.0.0.11)' });
    const sendFail = pool.probe(job(), sig());
    sp.last().handlers.onStderrLine?.('ping: sendmsg: Network is unreachable');
    await expect(sendFail).resolves.toEqual({ ok: false, rttMs: 0, error: 'network is unreachable' });
    await pool.close();
  });

  it('fails waiters with the reason ping exited, and restarts it only after the delay', async () => {
    const sp = new FakeSpawner();
    const pool = make(sp);
    const waiting = pool.probe(job(), sig());
    sp.last().handlers.onStderrLine?.('ping: bind: Cannot assign requested address');
    sp.last().exit({ code: 2, signal: null });
    await expect(waiting).resolves.toEqual({ ok: false, rttMs: 0, error: 'source 10.0.0.21: cannot assign requested address' });
    now = 500;
    await expect(pool.probe(job(), sig())).resolves.toEqual({ ok: false, rttMs: 0, error: 'source 10.0.0.21: cannot assign requested address' });
    expect(sp.procs).toHaveLength(1);
    now = 1001;
    const again = pool.probe(job(), sig());
    expect(sp.procs).toHaveLength(2);
    sp.last().handlers.onStdoutLine('64 bytes from 10.0.0.9: icmp_seq=1 ttl=63 time=0.4 ms');
    await expect(again).resolves.toEqual({ ok: true, rttMs: 0.4 });
    sp.last().exit({ code: null, signal: null, error: 'ping: not installed (ENOENT)' });
    await tick();
    await expect(pool.probe(job(), sig())).resolves.toEqual({ ok: false, rttMs: 0, error: 'ping: not installed (ENOENT)' });
    await pool.close();
  });

  it('resolves an aborted probe at once with the reason', async () => {
    const sp = new FakeSpawner();
    const pool = make(sp);
    const c = new AbortController();
    const p = pool.probe(job(), c.signal);
    c.abort('no result within 1080 ms');
    await expect(p).resolves.toEqual({ ok: false, rttMs: 0, error: 'no result within 1080 ms' });
    await pool.close();
    await expect(pool.probe(job(), sig())).resolves.toEqual({ ok: false, rttMs: 0, error: 'icmp streams closed' });
  });
});

describe('probeFactory icmp engines', () => {
  it('uses the stream for checks that ask for it or by default option, and close() stops its pings', async () => {
    const sp = new FakeSpawner();
    const f = probeFactory({ icmp: 'package', spawner: sp });
    const streamed = f(job({ icmpEngine: 'stream' }));
    const p = streamed(job({ icmpEngine: 'stream' }), sig());
    expect(sp.procs).toHaveLength(1);
    sp.last().handlers.onStdoutLine('64 bytes from 10.0.0.9: icmp_seq=1 ttl=63 time=0.3 ms');
    await expect(p).resolves.toEqual({ ok: true, rttMs: 0.3 });
    expect(f(job())).not.toBe(streamed);
    const g = probeFactory({ icmp: 'stream', spawner: sp });
    expect(g(job())).toBe(g(job({}, '10.0.0.10')));
    expect(g(job({ icmpEngine: 'package' }))).not.toBe(g(job()));
    await f.close?.();
    expect(sp.procs[0]!.stopped).toBe(true);
  });
});

describe('wiring', () => {
  it('ProbeEngine.stop() closes the factory, ending the stream pings', async () => {
    const sp = new FakeSpawner();
    const engine = new ProbeEngine({ jobs: [job({ icmpEngine: 'stream' })], probe: probeFactory({ spawner: sp }), random: () => 0 });
    engine.start();
    for (let i = 0; i < 100 && sp.procs.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(sp.procs).toHaveLength(1);
    expect(sp.last().stopped).toBe(false);
    await engine.stop();
    expect(sp.last().stopped).toBe(true);
    // Started again: new pings.
    engine.start();
    for (let i = 0; i < 100 && sp.procs.length === 1; i++) await new Promise((r) => setTimeout(r, 5));
    expect(sp.procs).toHaveLength(2);
    await engine.stop();
    expect(sp.last().stopped).toBe(true);
  });

  it('config accepts icmpEngine on icmp checks only, naming the check', () => {
    const ok = exampleConfig((raw) => { (raw.checks as Record<string, unknown>[])[1]!.icmpEngine = 'stream'; });
    expect(ok.checks[1]).toMatchObject({ kind: 'icmp', icmpEngine: 'stream' });
    expect(() => exampleConfig((raw) => { (raw.checks as Record<string, unknown>[])[0]!.icmpEngine = 'stream'; }))
      .toThrow(/checks\.0\.icmpEngine: icmpEngine is for icmp checks, not http/);
    expect(() => exampleConfig((raw) => { (raw.checks as Record<string, unknown>[])[1]!.icmpEngine = 'socket'; })).toThrow(/icmpEngine/);
  });
});

describe('ExecSpawner (failover/runner.ts)', () => {
  it('splits stdout and stderr into lines and reports the exit', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const p = new ExecSpawner().spawnLines('sh', ['-c', 'printf "a\\nb\\n"; printf "oops\\n" >&2; exit 3'], { onStdoutLine: (l) => out.push(l), onStderrLine: (l) => err.push(l) });
    await expect(p.exited).resolves.toEqual({ code: 3, signal: null });
    expect(out).toEqual(['a', 'b']);
    expect(err).toEqual(['oops']);
  });

  it('says when the program is not installed', async () => {
    const p = new ExecSpawner().spawnLines('no-such-program-sandwich', [], { onStdoutLine: () => undefined });
    await expect(p.exited).resolves.toEqual({ code: null, signal: null, error: 'no-such-program-sandwich: not installed (ENOENT)' });
  });

  it('stop() ends a long-lived process with SIGTERM', async () => {
    const p = new ExecSpawner().spawnLines('sleep', ['30'], { onStdoutLine: () => undefined });
    expect(p.pid).toEqual(expect.any(Number));
    await expect(p.stop()).resolves.toEqual({ code: null, signal: 'SIGTERM' });
  });
});
