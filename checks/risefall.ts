// Rise/fall counting: a check is up after `rise` consecutive successes, down after `fall` consecutive failures.
// With a loss window it is also down when too many of the last N results failed (a gray failure that never
// fails `fall` times in a row), and up again only when few enough did.
import type { ProbeState } from '../controller/types';

export interface ProbeResult {
  readonly ok: boolean;
  /** Round-trip time of this probe (also set on failure when known, e.g. an HTTP 503). */
  readonly rttMs: number;
  /** Short, human: "timeout after 800 ms", "connection refused", "HTTP 503". */
  readonly error?: string;
}

export interface LossWindowLimits {
  readonly probes: number;
  /** Down at this share of failures (percent) among the last `probes` results. */
  readonly downPct: number;
  /** Up only at or below this share. */
  readonly upPct: number;
}

export interface RiseFallLimits {
  readonly rise: number;
  readonly fall: number;
  readonly lossWindow?: LossWindowLimits;
}

/** Failures among the last results: `lost` of `counted` (counted < probes while the window fills). */
export interface WindowCount {
  readonly lost: number;
  readonly counted: number;
}

/** Failures that make the window's verdict down / the most that allow up (counts over a full window). */
export function windowThresholds(w: LossWindowLimits): { downLost: number; upLost: number } {
  return { downLost: Math.max(1, Math.ceil((w.probes * w.downPct) / 100)), upLost: Math.floor((w.probes * w.upPct) / 100) };
}

/** The last `probes` results of one job, as a ring: O(1) per result. */
export class LossWindow {
  private readonly failed: Uint8Array;
  private next = 0;
  private counted = 0;
  private lost = 0;
  constructor(readonly probes: number) {
    this.failed = new Uint8Array(probes);
  }
  /** Counts one result and returns the window after it. */
  push(ok: boolean): WindowCount {
    if (this.counted === this.probes) this.lost -= this.failed[this.next]!;
    else this.counted++;
    this.failed[this.next] = ok ? 0 : 1;
    if (!ok) this.lost++;
    this.next = (this.next + 1) % this.probes;
    return { lost: this.lost, counted: this.counted };
  }
}

export interface RiseFallState {
  readonly state: ProbeState;
  /** When `state` began (ms since epoch). */
  readonly since: number;
  /** When the last result was counted. */
  readonly updatedAt: number;
  /** Consecutive successes up to now (0 after a failure). */
  readonly okStreak: number;
  /** Consecutive failures up to now (0 after a success). */
  readonly failStreak: number;
  /** Last failure message; null after a success. */
  readonly lastError: string | null;
  /** RTT of the last successful probe. */
  readonly rttMs: number | null;
}

export interface RiseFallStep {
  readonly next: RiseFallState;
  readonly changed: boolean;
  /** The state before this result. */
  readonly from: ProbeState;
}

export function initialRiseFall(now: number): RiseFallState {
  return { state: 'unknown', since: now, updatedAt: now, okStreak: 0, failStreak: 0, lastError: null, rttMs: null };
}

/**
 * Count one probe result. Pure: returns the next state and whether `state` changed. `window` is the loss
 * window after this result (LossWindow.push), when limits.lossWindow is set.
 */
export function stepRiseFall(prev: RiseFallState, result: ProbeResult, now: number, limits: RiseFallLimits, window?: WindowCount): RiseFallStep {
  const w = limits.lossWindow && window ? { ...window, ...windowThresholds(limits.lossWindow) } : null;
  let state = prev.state;
  let next: RiseFallState;
  if (result.ok) {
    const okStreak = prev.okStreak + 1;
    if (state !== 'up' && okStreak >= limits.rise && (!w || w.lost <= w.upLost)) state = 'up';
    next = { state, since: state === prev.state ? prev.since : now, updatedAt: now, okStreak, failStreak: 0, lastError: null, rttMs: result.rttMs };
  } else {
    const failStreak = prev.failStreak + 1;
    const lossy = w !== null && w.lost >= w.downLost;
    if (state !== 'down' && (failStreak >= limits.fall || lossy)) state = 'down';
    const error = result.error ?? 'failed';
    const lastError = lossy ? `${error}; lost ${w.lost} of the last ${w.counted} probes (${((100 * w.lost) / w.counted).toFixed(1)} %)` : error;
    next = { state, since: state === prev.state ? prev.since : now, updatedAt: now, okStreak: 0, failStreak, lastError, rttMs: prev.rttMs };
  }
  return { next, changed: state !== prev.state, from: prev.state };
}

/** Observation.streak: successes while up, failures while down, the current run while unknown. */
export function streakOf(s: RiseFallState): number {
  if (s.state === 'up') return s.okStreak;
  if (s.state === 'down') return s.failStreak;
  return s.okStreak || s.failStreak;
}
