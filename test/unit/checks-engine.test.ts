// The probe engine with a virtual clock and scripted probes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProbeEngine, type EngineClock } from '../../checks/engine';
import { probeJobs, type ProbeJob } from '../../checks/jobs';
import type { ProbeFn, ProbeResult } from '../../checks/probes';
import { parseConfig, type CheckConfig } from '../../controller/config';
import type { Observation } from '../../controller/types';

const EPOCH = 1_700_000_000_000;

class FakeClock implements EngineClock {
  now = 0;
  /** Every timer fires this much late (a busy event loop). */
  lateMs = 0;
  private nextId = 1;
  readonly timers = new Map<number, { at: number; fn: () => void }>();
  monotonicMs(): number { return this.now; }
  epochMs(): number { return EPOCH + this.now; }
  setTimer(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.now + Math.max(0, ms) + this.lateMs, fn });
    return id;
  }
  clearTimer(h: unknown): void { this.timers.delete(h as number); }
  /** Runs due timers in time order (then id order), letting promises settle after each. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
      await settle();
    }
    this.now = end;
    await settle();
  }
}

const settle = () => new Promise<void>((r) => setImmediate(r));

const example = readFileSync(join(__dirname, '../../deploy/config.example.yaml'), 'utf8');
const allJobs = probeJobs(parseConfig(example), 'lb1');

function withCheck(j: ProbeJob, patch: Partial<CheckConfig>): ProbeJob {
  return { ...j, check: { ...j.check, ...patch } };
}

/** A scripted probe: takes `durationMs` of virtual time, answers from `results` (last one repeats). */
class ScriptedProbe {
  readonly starts: { key: string; at: number; signal: AbortSignal }[] = [];
  readonly inFlight = new Map<string, number>();
  maxConcurrentPerJob = 0;
  constructor(private readonly clock: FakeClock, private durationMs: number, private readonly results: (ProbeResult | 'hang' | 'throw')[]) {}
  setDuration(ms: number): void { this.durationMs = ms; }
  readonly fn: ProbeFn = (job, signal) => {
    const n = this.starts.filter((s) => s.key === job.key).length;
    this.starts.push({ key: job.key, at: this.clock.now, signal });
    const r = this.results[Math.min(n, this.results.length - 1)] ?? { ok: true, rttMs: 1 };
    if (r === 'throw') throw new Error('boom');
    const cur = (this.inFlight.get(job.key) ?? 0) + 1;
    this.inFlight.set(job.key, cur);
    this.maxConcurrentPerJob = Math.max(this.maxConcurrentPerJob, cur);
    return new Promise((resolve) => {
      const done = (x: ProbeResult) => { this.inFlight.set(job.key, (this.inFlight.get(job.key) ?? 1) - 1); resolve(x); };
      if (r === 'hang') return; // ignores its signal, never settles
      const timer = this.clock.setTimer(() => done(r), this.durationMs);
      signal.addEventListener('abort', () => {
        this.clock.clearTimer(timer);
        done({ ok: false, rttMs: 0, error: 'aborted' });
      });
    });
  };
  startsOf(key: string): number[] { return this.starts.filter((s) => s.key === key).map((s) => s.at); }
}

const OK: ProbeResult = { ok: true, rttMs: 2 };
const FAIL: ProbeResult = { ok: false, rttMs: 800, error: 'timeout after 800 ms' };

function setup(opts: { jobs?: ProbeJob[]; durationMs?: number; results?: (ProbeResult | 'hang' | 'throw')[]; random?: () => number; onObservation?: (o: Observation, c: boolean) => void; onError?: (e: unknown) => void } = {}) {
  const clock = new FakeClock();
  const probe = new ScriptedProbe(clock, opts.durationMs ?? 10, opts.results ?? [OK]);
  const seen: { obs: Observation; changed: boolean }[] = [];
  const engine = new ProbeEngine({
    jobs: opts.jobs ?? allJobs,
    probe: () => probe.fn,
    clock,
    random: opts.random ?? (() => 0.5),
    onObservation: opts.onObservation ?? ((obs, changed) => seen.push({ obs, changed })),
    ...(opts.onError ? { onError: opts.onError } : {}),
  });
  return { clock, probe, engine, seen };
}

const diffs = (xs: number[]) => xs.slice(1).map((x, i) => x - xs[i]!);

describe('ProbeEngine scheduling', () => {
  it('starts each job at a random offset within its interval', async () => {
    const rs = [0.1, 0.7, 0.25, 0.9];
    let i = 0;
    const jobs = [withCheck(allJobs[0]!, { intervalMs: 2000 }), ...allJobs.slice(1)];
    const { clock, probe, engine } = setup({ jobs, random: () => rs[i++] ?? 0.5 });
    engine.start();
    await clock.advance(1999);
    expect(allJobs.map((j) => probe.startsOf(j.key)[0])).toEqual([200, 700, 250, 900]);
    await engine.stop();
  });

  it('runs the next probe intervalMs × (1 ± jitter) after the previous start, not its end', async () => {
    let r = 0.5;
    const job = withCheck(allJobs[0]!, { intervalMs: 1000, jitter: 0.2, timeoutMs: 800 });
    const { clock, probe, engine } = setup({ jobs: [job], durationMs: 300, random: () => r });
    engine.start(); // first at 500
    await clock.advance(501);
    r = 0; // next: 1000 × 0.8 after the start
    await clock.advance(1000);
    r = 0.75; // 1000 × 1.1
    await clock.advance(1000);
    r = 0.5;
    await clock.advance(2000);
    expect(probe.startsOf(job.key).slice(0, 4)).toEqual([500, 1300, 2400, 3400]);
    await engine.stop();
  });

  it('plans each run from the previous plan: timers firing late do not lower the rate', async () => {
    const job = withCheck(allJobs[0]!, { intervalMs: 100, jitter: 0, timeoutMs: 80 });
    const { clock, probe, engine } = setup({ jobs: [job], durationMs: 5 });
    clock.lateMs = 30;
    engine.start(); // planned at 50, fires at 80
    await clock.advance(10_000);
    const starts = probe.startsOf(job.key);
    expect(starts[0]).toBe(80);
    expect(diffs(starts).every((d) => d === 100)).toBe(true); // not 130
    expect(starts.length).toBeGreaterThanOrEqual(99);
    await engine.stop();
  });

  it('keeps every period within the jitter bounds and actually spreads them', async () => {
    let seed = 12345;
    const lcg = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const job = withCheck(allJobs[0]!, { intervalMs: 1000, jitter: 0.1 });
    const { clock, probe, engine } = setup({ jobs: [job], durationMs: 5, random: lcg });
    engine.start();
    await clock.advance(200_000);
    await engine.stop();
    const periods = diffs(probe.startsOf(job.key));
    expect(periods.length).toBeGreaterThan(150);
    expect(Math.min(...periods)).toBeGreaterThanOrEqual(900);
    expect(Math.max(...periods)).toBeLessThanOrEqual(1100);
    expect(Math.max(...periods) - Math.min(...periods)).toBeGreaterThan(150);
  });

  it('never overlaps runs of one job: a slow probe delays the next until it finishes', async () => {
    const job = withCheck(allJobs[0]!, { intervalMs: 1000, jitter: 0, timeoutMs: 5000 });
    const { clock, probe, engine } = setup({ jobs: [job], durationMs: 1500 });
    engine.start();
    await clock.advance(500 + 1500 * 4);
    expect(probe.startsOf(job.key)).toEqual([500, 2000, 3500, 5000, 6500]);
    expect(probe.maxConcurrentPerJob).toBe(1);
    probe.setDuration(100); // fast again: back on the interval from each start
    await clock.advance(1500 + 2000);
    expect(probe.startsOf(job.key).slice(5)).toEqual([8000, 9000, 10000]);
    await engine.stop();
  });
});

describe('ProbeEngine observations', () => {
  it('reports an observation after every probe, flagged when rise/fall changes the state', async () => {
    const job = withCheck(allJobs[0]!, { intervalMs: 1000, jitter: 0, rise: 2, fall: 2 });
    const { clock, engine, seen } = setup({ jobs: [job], durationMs: 10, results: [OK, OK, OK, FAIL, FAIL, FAIL, OK] });
    expect(engine.snapshot()).toEqual([{ node: 'lb1', role: 'ingress', firewall: 'fw1', check: 'path-http', state: 'unknown', since: EPOCH, updatedAt: EPOCH, streak: 0, lastError: null, rttMs: null }]);
    engine.start();
    await clock.advance(500 + 6 * 1000 + 20);
    expect(seen.map((s) => `${s.obs.state}${s.changed ? '*' : ''}`)).toEqual(['unknown', 'up*', 'up', 'up', 'down*', 'down', 'down']);
    expect(seen[1]?.obs).toEqual({ node: 'lb1', role: 'ingress', firewall: 'fw1', check: 'path-http', state: 'up', since: EPOCH + 1510, updatedAt: EPOCH + 1510, streak: 2, lastError: null, rttMs: 2 });
    expect(seen[4]?.obs).toMatchObject({ state: 'down', since: EPOCH + 4510, streak: 2, lastError: 'timeout after 800 ms', rttMs: 2 });
    expect(engine.snapshot()[0]).toBe(seen[6]?.obs);
    await engine.stop();
  });

  it('keeps jobs apart: one firewall failing does not touch the other', async () => {
    const clock = new FakeClock();
    const seen: Observation[] = [];
    const probe: ProbeFn = (job) => Promise.resolve(job.firewall === 'fw2' ? FAIL : OK);
    const engine = new ProbeEngine({ jobs: allJobs, probe: () => probe, clock, random: () => 0.3, onObservation: (o) => seen.push(o) });
    engine.start();
    await clock.advance(5000);
    expect(engine.snapshot().map((o) => `${o.firewall}/${o.check}=${o.state}`)).toEqual(['fw1/path-http=up', 'fw1/ingress-leg=up', 'fw2/path-http=down', 'fw2/ingress-leg=down']);
    await engine.stop();
  });

  it('fails a probe that outlives timeoutMs + grace and goes on; its signal is aborted', async () => {
    const job = withCheck(allJobs[0]!, { intervalMs: 1000, jitter: 0, timeoutMs: 800, fall: 1 });
    const { clock, probe, engine, seen } = setup({ jobs: [job], results: ['hang', OK] });
    engine.start();
    await clock.advance(500 + 800 + 1000);
    expect(seen[0]?.obs).toMatchObject({ state: 'down', lastError: 'no result within 1800 ms', updatedAt: EPOCH + 2300 });
    expect(probe.starts[0]?.signal.aborted).toBe(true);
    expect(probe.startsOf(job.key)).toEqual([500, 2300]);
    await engine.stop();
  });

  it('counts a probe that throws as a failure', async () => {
    const job = withCheck(allJobs[0]!, { fall: 1 });
    const { clock, engine, seen } = setup({ jobs: [job], results: ['throw'] });
    engine.start();
    await clock.advance(600);
    expect(seen[0]?.obs).toMatchObject({ state: 'down', lastError: 'probe failed: boom' });
    await engine.stop();
  });

  it('survives an observation handler that throws and reports it', async () => {
    const errors: unknown[] = [];
    const job = withCheck(allJobs[0]!, { jitter: 0 });
    const { clock, probe, engine } = setup({ jobs: [job], onObservation: () => { throw new Error('store down'); }, onError: (e) => errors.push(e) });
    engine.start();
    await clock.advance(2600);
    expect(probe.startsOf(job.key)).toEqual([500, 1500, 2500]);
    expect(errors.map((e) => (e as Error).message)).toEqual(['store down', 'store down', 'store down']);
    await engine.stop();
  });
});

describe('ProbeEngine stop', () => {
  it('aborts probes in flight, drops their results, leaves no timers', async () => {
    const job = withCheck(allJobs[0]!, { jitter: 0, timeoutMs: 800 });
    const { clock, probe, engine, seen } = setup({ jobs: [job], durationMs: 300 });
    engine.start();
    await clock.advance(600); // probe started at 500, ends at 800
    expect(engine.status).toBe('running');
    const stopped = engine.stop();
    expect(engine.status).toBe('stopping');
    expect(probe.starts[0]?.signal.aborted).toBe(true);
    expect(probe.starts[0]?.signal.reason).toBe('probe engine stopped');
    await stopped;
    expect(engine.status).toBe('stopped');
    await clock.advance(10_000);
    expect(seen).toEqual([]);
    expect(probe.starts).toHaveLength(1);
    expect(clock.timers.size).toBe(0);
  });

  it('waits at most stopTimeoutMs for a probe that ignores its signal', async () => {
    const clock = new FakeClock();
    const probe = new ScriptedProbe(clock, 0, ['hang']);
    const engine = new ProbeEngine({ jobs: [allJobs[0]!], probe: () => probe.fn, clock, random: () => 0, stopTimeoutMs: 300 });
    engine.start();
    await clock.advance(1);
    let stoppedAt: number | null = null;
    void engine.stop().then(() => { stoppedAt = clock.now; });
    await clock.advance(299);
    expect(stoppedAt).toBeNull();
    expect(engine.status).toBe('stopping');
    await clock.advance(1);
    expect(stoppedAt).toBe(301);
    expect(engine.status).toBe('stopped');
  });

  it('refuses to start twice; stop before start is a no-op', async () => {
    const { engine } = setup();
    await engine.stop();
    expect(engine.status).toBe('idle');
    engine.start();
    expect(() => engine.start()).toThrow(/cannot start while running/);
    await engine.stop();
  });

  it('rejects duplicate jobs', () => {
    expect(() => setup({ jobs: [allJobs[0]!, allJobs[0]!] })).toThrow(/duplicate job lb1\/fw1\/path-http/);
  });
});
