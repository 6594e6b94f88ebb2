// Rise/fall counting: a check is up after `rise` consecutive successes, down after `fall` consecutive failures.
import type { ProbeState } from '../controller/types';

export interface ProbeResult {
  readonly ok: boolean;
  /** Round-trip time of this probe (also set on failure when known, e.g. an HTTP 503). */
  readonly rttMs: number;
  /** Short, human: "timeout after 800 ms", "connection refused", "HTTP 503". */
  readonly error?: string;
}

export interface RiseFallLimits {
  readonly rise: number;
  readonly fall: number;
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

/** Count one probe result. Pure: returns the next state and whether `state` changed. */
export function stepRiseFall(prev: RiseFallState, result: ProbeResult, now: number, limits: RiseFallLimits): RiseFallStep {
  let state = prev.state;
  let next: RiseFallState;
  if (result.ok) {
    const okStreak = prev.okStreak + 1;
    if (state !== 'up' && okStreak >= limits.rise) state = 'up';
    next = { state, since: state === prev.state ? prev.since : now, updatedAt: now, okStreak, failStreak: 0, lastError: null, rttMs: result.rttMs };
  } else {
    const failStreak = prev.failStreak + 1;
    if (state !== 'down' && failStreak >= limits.fall) state = 'down';
    next = { state, since: state === prev.state ? prev.since : now, updatedAt: now, okStreak: 0, failStreak, lastError: result.error ?? 'failed', rttMs: prev.rttMs };
  }
  return { next, changed: state !== prev.state, from: prev.state };
}

/** Observation.streak: successes while up, failures while down, the current run while unknown. */
export function streakOf(s: RiseFallState): number {
  if (s.state === 'up') return s.okStreak;
  if (s.state === 'down') return s.failStreak;
  return s.okStreak || s.failStreak;
}
