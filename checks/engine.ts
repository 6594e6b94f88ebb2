// Runs every probe job on its own jittered schedule and turns results into observations via rise/fall.
import type { Observation } from '../controller/types';
import type { ProbeJob } from './jobs';
import { probeFactory, type ProbeFactory, type ProbeFn } from './probes';
import { initialRiseFall, LossWindow, stepRiseFall, streakOf, type ProbeResult, type RiseFallState } from './risefall';

export interface EngineClock {
  /** Monotonic milliseconds, for scheduling. */
  monotonicMs(): number;
  /** Milliseconds since the epoch, for observation timestamps. */
  epochMs(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const realClock: EngineClock = {
  monotonicMs: () => performance.now(),
  epochMs: () => Date.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
};

export type EngineStatus = 'idle' | 'running' | 'stopping' | 'stopped';

export interface ProbeEngineOptions {
  readonly jobs: readonly ProbeJob[];
  /** Default: probeFactory() (ICMP through the `ping` package). */
  readonly probe?: ProbeFactory;
  /** Called after every probe; `changed` when the rise/fall state changed. */
  readonly onObservation?: (obs: Observation, changed: boolean) => void;
  /** Errors thrown by onObservation. Default: process.emitWarning. */
  readonly onError?: (err: unknown) => void;
  readonly clock?: EngineClock;
  /** Uniform in [0, 1). */
  readonly random?: () => number;
  /** A probe still running this long after its check's timeoutMs is aborted and counted as failed. */
  readonly probeGraceMs?: number;
  /** stop() waits at most this long for aborted probes to settle (sockets closed, children gone). */
  readonly stopTimeoutMs?: number;
}

interface Slot {
  readonly job: ProbeJob;
  readonly probe: ProbeFn;
  rf: RiseFallState;
  /** The check's loss window, when it has one. */
  readonly window: LossWindow | null;
  obs: Observation;
  timer: unknown;
  controller: AbortController | null;
  /** The probe's own promise while it runs (it may outlive the run after a deadline abort). */
  inFlight: Promise<ProbeResult> | null;
  /** Monotonic time this run was planned for: the next one is planned from it, so timer lateness does not add up. */
  plannedAt: number;
}

const STOPPED = 'probe engine stopped';

/**
 * Each job runs first at a random offset within its interval, then intervalMs × (1 ± jitter) after the
 * time its previous run was planned for (so late timers do not lower the rate), at least half an
 * interval after that run's start — or, when a probe outlasts that, as soon as it finishes (never overlapping).
 */
export class ProbeEngine {
  private readonly slots: Slot[];
  private readonly clock: EngineClock;
  private readonly random: () => number;
  private readonly graceMs: number;
  private readonly stopTimeoutMs: number;
  private readonly onObservation: (obs: Observation, changed: boolean) => void;
  private readonly onError: (err: unknown) => void;
  private readonly factory: ProbeFactory;
  private statusValue: EngineStatus = 'idle';

  constructor(opts: ProbeEngineOptions) {
    this.clock = opts.clock ?? realClock;
    this.random = opts.random ?? Math.random;
    this.graceMs = opts.probeGraceMs ?? 1000;
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 2000;
    this.onObservation = opts.onObservation ?? (() => undefined);
    this.onError = opts.onError ?? ((e) => process.emitWarning(`probe engine: observation handler failed: ${e instanceof Error ? e.message : String(e)}`));
    const factory = opts.probe ?? probeFactory();
    this.factory = factory;
    const now = this.clock.epochMs();
    const keys = new Set<string>();
    this.slots = opts.jobs.map((job) => {
      const key = `${job.node}/${job.key}`;
      if (keys.has(key)) throw new Error(`probe engine: duplicate job ${key}`);
      keys.add(key);
      const rf = initialRiseFall(now);
      const window = job.check.lossWindow ? new LossWindow(job.check.lossWindow.probes) : null;
      return { job, probe: factory(job), rf, window, obs: observationOf(job, rf), timer: null, controller: null, inFlight: null, plannedAt: 0 };
    });
  }

  get status(): EngineStatus {
    return this.statusValue;
  }

  start(): void {
    if (this.statusValue === 'running' || this.statusValue === 'stopping') throw new Error(`probe engine: cannot start while ${this.statusValue}`);
    this.statusValue = 'running';
    for (const slot of this.slots) {
      const offset = this.random() * slot.job.check.intervalMs;
      slot.plannedAt = this.clock.monotonicMs() + offset;
      this.schedule(slot, offset);
    }
  }

  /** Cancels timers, aborts probes in flight and waits until they settle (at most stopTimeoutMs), then closes the probe factory. Results are dropped. */
  async stop(): Promise<void> {
    if (this.statusValue !== 'running') return;
    this.statusValue = 'stopping';
    const pending: Promise<ProbeResult>[] = [];
    for (const slot of this.slots) {
      if (slot.timer !== null) this.clock.clearTimer(slot.timer);
      slot.timer = null;
      slot.controller?.abort(STOPPED);
      if (slot.inFlight) pending.push(slot.inFlight);
    }
    if (pending.length > 0) {
      let bound: unknown = null;
      await Promise.race([
        Promise.all(pending),
        new Promise<void>((resolve) => { bound = this.clock.setTimer(resolve, this.stopTimeoutMs); }),
      ]);
      this.clock.clearTimer(bound);
    }
    // Long-lived pings and the like; a failure to stop them must not keep the engine from stopping.
    await this.factory.close?.().catch((e: unknown) => this.onError(e));
    this.statusValue = 'stopped';
  }

  /** The latest observation of every job, in job order. */
  snapshot(): Observation[] {
    return this.slots.map((s) => s.obs);
  }

  private schedule(slot: Slot, delayMs: number): void {
    slot.timer = this.clock.setTimer(() => {
      slot.timer = null;
      void this.run(slot);
    }, delayMs);
  }

  private async run(slot: Slot): Promise<void> {
    if (this.statusValue !== 'running') return;
    const check = slot.job.check;
    const startedAt = this.clock.monotonicMs();
    const controller = new AbortController();
    slot.controller = controller;
    const limitMs = check.timeoutMs + this.graceMs;
    const deadline = this.clock.setTimer(() => controller.abort(`no result within ${limitMs} ms`), limitMs);
    const probing = callProbe(slot.probe, slot.job, controller.signal);
    slot.inFlight = probing;
    void probing.then(() => {
      if (slot.inFlight === probing) slot.inFlight = null;
    });
    const result = await untilAborted(probing, slot.job, controller.signal);
    this.clock.clearTimer(deadline);
    slot.controller = null;
    if (this.statusValue !== 'running') return;

    const step = stepRiseFall(slot.rf, result, this.clock.epochMs(), check, slot.window?.push(result.ok));
    slot.rf = step.next;
    slot.obs = observationOf(slot.job, step.next);
    try {
      this.onObservation(slot.obs, step.changed);
    } catch (e) {
      this.onError(e);
    }
    if (this.statusValue !== 'running') return;
    const intervalMs = check.intervalMs * (1 + check.jitter * (2 * this.random() - 1));
    // Planned from the previous plan, not from when the timer actually fired; a run that started late
    // by more than an interval (or a probe that outlasted it) is not caught up with a burst.
    const now = this.clock.monotonicMs();
    slot.plannedAt = Math.max(slot.plannedAt + intervalMs, startedAt + intervalMs / 2, now);
    this.schedule(slot, slot.plannedAt - now);
  }
}

/** The probe's promise; a throw or rejection becomes a failed result. */
function callProbe(probe: ProbeFn, job: ProbeJob, signal: AbortSignal): Promise<ProbeResult> {
  const failed = (e: unknown): ProbeResult => ({ ok: false, rttMs: 0, error: `probe failed: ${e instanceof Error ? e.message : String(e)}` });
  try {
    return probe(job, signal).catch(failed);
  } catch (e) {
    return Promise.resolve(failed(e));
  }
}

/** The probe's result, or a failure as soon as the signal is aborted (also when the probe ignores it). */
function untilAborted(probing: Promise<ProbeResult>, job: ProbeJob, signal: AbortSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: ProbeResult): void => {
      if (done) return;
      done = true;
      signal.removeEventListener('abort', onAbort);
      resolve(r);
    };
    const onAbort = (): void => finish({ ok: false, rttMs: job.check.timeoutMs, error: typeof signal.reason === 'string' ? signal.reason : 'aborted' });
    signal.addEventListener('abort', onAbort, { once: true });
    void probing.then(finish);
  });
}

function observationOf(job: ProbeJob, rf: RiseFallState): Observation {
  return {
    node: job.node,
    role: job.role,
    firewall: job.firewall,
    check: job.check.name,
    state: rf.state,
    since: rf.since,
    updatedAt: rf.updatedAt,
    streak: streakOf(rf),
    lastError: rf.lastError,
    rttMs: rf.rttMs,
  };
}
