import fc from 'fast-check';
import { initialRiseFall, stepRiseFall, streakOf, type ProbeResult, type RiseFallState } from '../../checks/risefall';

const OK: ProbeResult = { ok: true, rttMs: 1.5 };
const FAIL: ProbeResult = { ok: false, rttMs: 800, error: 'timeout after 800 ms' };

/** Feeds results at t = 1, 2, 3, … and returns every state and change. */
function feed(results: readonly boolean[], limits = { rise: 3, fall: 3 }, start: RiseFallState = initialRiseFall(0)) {
  let s = start;
  const trace: { state: string; changed: boolean; since: number; streak: number }[] = [];
  results.forEach((ok, i) => {
    const step = stepRiseFall(s, ok ? OK : FAIL, i + 1, limits);
    s = step.next;
    trace.push({ state: s.state, changed: step.changed, since: s.since, streak: streakOf(s) });
  });
  return { final: s, trace };
}

describe('rise/fall', () => {
  it('starts unknown with nothing counted', () => {
    expect(initialRiseFall(42)).toEqual({ state: 'unknown', since: 42, updatedAt: 42, okStreak: 0, failStreak: 0, lastError: null, rttMs: null });
  });

  it('unknown → up after exactly `rise` successes, and the change is reported once', () => {
    const { trace } = feed([true, true, true, true]);
    expect(trace.map((t) => t.state)).toEqual(['unknown', 'unknown', 'up', 'up']);
    expect(trace.map((t) => t.changed)).toEqual([false, false, true, false]);
    expect(trace[2]?.since).toBe(3);
    expect(trace[3]?.since).toBe(3);
    expect(trace.map((t) => t.streak)).toEqual([1, 2, 3, 4]);
  });

  it('unknown → down after exactly `fall` failures', () => {
    const { trace, final } = feed([false, false], { rise: 3, fall: 2 });
    expect(trace.map((t) => t.state)).toEqual(['unknown', 'down']);
    expect(final.since).toBe(2);
    expect(final.lastError).toBe('timeout after 800 ms');
  });

  it('uses its own limits: rise 2 / fall 2', () => {
    expect(feed([true, true], { rise: 2, fall: 5 }).final.state).toBe('up');
    expect(feed([false, false, false, false], { rise: 2, fall: 5 }).final.state).toBe('unknown');
    expect(feed([false, false, false, false, false], { rise: 2, fall: 5 }).final.state).toBe('down');
  });

  it('a broken run never reaches the limit: alternating results stay unknown', () => {
    expect(feed([true, true, false, true, true, false, false, true]).trace.every((t) => t.state === 'unknown')).toBe(true);
  });

  it('up → down only after `fall` consecutive failures; a success in between resets the count', () => {
    const { trace } = feed([true, true, true, false, false, true, false, false, false]);
    expect(trace.map((t) => t.state)).toEqual(['unknown', 'unknown', 'up', 'up', 'up', 'up', 'up', 'up', 'down']);
    expect(trace[8]).toEqual({ state: 'down', changed: true, since: 9, streak: 3 });
    // While up and failing, streak counts successes (none since the last failure).
    expect(trace[3]?.streak).toBe(0);
  });

  it('down → up only after `rise` consecutive successes', () => {
    const { trace } = feed([false, false, false, true, true, false, true, true, true]);
    expect(trace.map((t) => t.state)).toEqual(['unknown', 'unknown', 'down', 'down', 'down', 'down', 'down', 'down', 'up']);
    expect(trace.filter((t) => t.changed).map((t) => `${t.state}@${t.since}`)).toEqual(['down@3', 'up@9']);
  });

  it('rise 1 / fall 1 follows every result', () => {
    const { trace } = feed([true, false, true, true, false], { rise: 1, fall: 1 });
    expect(trace.map((t) => t.state)).toEqual(['up', 'down', 'up', 'up', 'down']);
    expect(trace.map((t) => t.changed)).toEqual([true, true, true, false, true]);
  });

  it('keeps the last error until a success, and the RTT of the last success', () => {
    let s = initialRiseFall(0);
    s = stepRiseFall(s, { ok: true, rttMs: 2.5 }, 1, { rise: 1, fall: 3 }).next;
    expect(s).toMatchObject({ lastError: null, rttMs: 2.5, updatedAt: 1 });
    s = stepRiseFall(s, { ok: false, rttMs: 9, error: 'HTTP 503' }, 2, { rise: 1, fall: 3 }).next;
    expect(s).toMatchObject({ state: 'up', lastError: 'HTTP 503', rttMs: 2.5, updatedAt: 2, okStreak: 0, failStreak: 1 });
    s = stepRiseFall(s, { ok: false, rttMs: 9 }, 3, { rise: 1, fall: 3 }).next;
    expect(s.lastError).toBe('failed');
    s = stepRiseFall(s, { ok: true, rttMs: 0.7 }, 4, { rise: 1, fall: 3 }).next;
    expect(s).toMatchObject({ lastError: null, rttMs: 0.7, okStreak: 1, failStreak: 0 });
  });

  it('does not mutate its input', () => {
    const s0 = initialRiseFall(0);
    const copy = { ...s0 };
    stepRiseFall(s0, OK, 1, { rise: 1, fall: 1 });
    expect(s0).toEqual(copy);
  });

  it('matches a reference model on random sequences and limits', () => {
    fc.assert(fc.property(
      fc.array(fc.boolean(), { maxLength: 60 }),
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 1, max: 6 }),
      (results, rise, fall) => {
        const { trace } = feed(results, { rise, fall });
        // Reference: the state is decided by the last run of equal results reaching its limit.
        let state = 'unknown';
        let run = 0;
        let last: boolean | null = null;
        let sinceWant = 0;
        results.forEach((ok, i) => {
          run = ok === last ? run + 1 : 1;
          last = ok;
          const before = state;
          if (ok && run >= rise) state = 'up';
          if (!ok && run >= fall) state = 'down';
          const t = trace[i]!;
          if (t.state !== state || t.changed !== (state !== before)) throw new Error(`step ${i}: got ${t.state}/${t.changed}, want ${state}/${state !== before}`);
          const want = state === 'unknown' || (state === 'up') === ok ? run : 0;
          if (t.streak !== want) throw new Error(`step ${i}: ${t.state} streak ${t.streak}, want ${want}`);
          if (state !== before) sinceWant = i + 1;
          if (t.since !== sinceWant) throw new Error(`step ${i}: since ${t.since}, want ${sinceWant}`);
        });
      },
    ));
  });
});
