import fc from 'fast-check';
import { initialRiseFall, LossWindow, stepRiseFall, streakOf, windowThresholds, type ProbeResult, type RiseFallState } from '../../checks/risefall';

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

describe('loss window (gray failures)', () => {
  /** xorshift32: the same losses for the same seed. */
  function rng(seed: number): () => number {
    let s = seed >>> 0 || 1;
    return () => {
      s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
      return s / 4294967296;
    };
  }
  /** The documented profile for 50 ms ICMP probes (docs/decisions.md). */
  const limits = { rise: 3, fall: 4, lossWindow: { probes: 160, downPct: 10, upPct: 4 } };

  /** Feeds phases of [probes, loss probability]; returns the state changes (probe index, state, caused by the window). */
  function simulate(seed: number, phases: [number, number][]) {
    const random = rng(seed);
    const window = new LossWindow(limits.lossWindow.probes);
    let s = initialRiseFall(0);
    let i = 0;
    const changes: { at: number; state: string; byWindow: boolean }[] = [];
    for (const [n, loss] of phases) {
      for (let k = 0; k < n; k++, i++) {
        const ok = random() >= loss;
        const step = stepRiseFall(s, ok ? OK : FAIL, i, limits, window.push(ok));
        s = step.next;
        if (step.changed) changes.push({ at: i, state: s.state, byWindow: s.state === 'down' && s.failStreak < limits.fall });
      }
    }
    return changes;
  }

  it('the ring counts failures among exactly the last N results', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 20 }), fc.array(fc.boolean(), { maxLength: 100 }), (n, results) => {
      const w = new LossWindow(n);
      results.forEach((ok, i) => {
        const c = w.push(ok);
        const last = results.slice(Math.max(0, i + 1 - n), i + 1);
        expect(c).toEqual({ lost: last.filter((x) => !x).length, counted: last.length });
      });
    }));
  });

  it('thresholds are counts over a full window, at least one failure to go down', () => {
    expect(windowThresholds({ probes: 160, downPct: 10, upPct: 4 })).toEqual({ downLost: 16, upLost: 6 });
    expect(windowThresholds({ probes: 10, downPct: 1, upPct: 0 })).toEqual({ downLost: 1, upLost: 0 });
  });

  it('down on a full share of failures without `fall` in a row; up only when the share is low again; says why', () => {
    const l = { rise: 2, fall: 3, lossWindow: { probes: 10, downPct: 30, upPct: 10 } };
    const w = new LossWindow(10);
    let s = initialRiseFall(0);
    const step = (ok: boolean, t: number) => (s = stepRiseFall(s, ok ? OK : FAIL, t, l, w.push(ok)).next);
    [true, true, true].forEach((ok, i) => step(ok, i));
    expect(s.state).toBe('up');
    // fail, ok, fail, ok, fail: never 3 in a row, 3 of the last 8 → down at the third failure.
    [false, true, false, true].forEach((ok, i) => step(ok, 10 + i));
    expect(s.state).toBe('up');
    step(false, 20);
    expect(s.state).toBe('down');
    expect(s.lastError).toBe('timeout after 800 ms; lost 3 of the last 8 probes (37.5 %)');
    // Two successes in a row are not enough while the window still holds more than one failure.
    step(true, 21);
    step(true, 22);
    expect(s.state).toBe('down');
    for (let t = 23; s.state === 'down' && t < 40; t++) step(true, t);
    expect(s.state).toBe('up');
  });

  it('a black-hole still goes down at the `fall`-th failure in a row', () => {
    const changes = simulate(7, [[400, 0], [10, 1]]);
    expect(changes.filter((c) => c.state === 'down')).toEqual([{ at: 403, state: 'down', byWindow: false }]);
  });

  it('2 % random loss: the window never takes a check down (200 seeded runs of 10 minutes at 20 probes/s)', () => {
    let byWindow = 0;
    let consecutive = 0;
    for (let seed = 1; seed <= 200; seed++) {
      for (const c of simulate(seed, [[12_000, 0.02]])) {
        if (c.state === 'down' && c.byWindow) byWindow++;
        if (c.state === 'down' && !c.byWindow) consecutive++;
      }
    }
    expect(byWindow).toBe(0);
    // Four losses in a row at 2 %: 0.02^4 per probe, ~0.2 % of 10-minute runs (docs/decisions.md).
    expect(consecutive).toBeLessThanOrEqual(3);
  });

  it('a gray failure (10 % lost each way, 19 % of echoes) is down within 10 s in 99 % of seeded runs and stays down', () => {
    const detectS: number[] = [];
    let upAgain = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const changes = simulate(10_000 + seed, [[2000, 0.02], [1200, 0.19]]);
      const down = changes.find((c) => c.state === 'down' && c.at >= 2000);
      detectS.push(down ? (down.at - 2000) * 0.05 : Number.POSITIVE_INFINITY);
      upAgain += changes.filter((c) => c.at >= 2000 && c.state === 'up' && down && c.at > down.at).length;
    }
    detectS.sort((a, b) => a - b);
    expect(detectS[Math.ceil(0.99 * detectS.length) - 1]).toBeLessThanOrEqual(10);
    expect(upAgain).toBe(0);
  });
});
