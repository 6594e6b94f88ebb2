// ICMP for the high-rate loop: one long-lived `ping -n -O -i <interval> -I <source> <target>` per
// (source, target, interval), its lines parsed into outcomes that probes consume. A probe costs a
// line of parsing instead of a process (bench/probe-engine.ts). Raw sockets were measured and rejected:
// `raw-socket`/`net-ping` cannot bind a source address, so `from <src> lookup <table>` never matches
// (docs/benchmarks.md).
import type { LineProcess, LineProcessExit, ProcessSpawner } from '../failover/runner';
import type { ProbeJob } from './jobs';
import { parsePingError, timeoutMessage, type ProbeFn, type ProbeResult } from './probes';

/** One echo's fate as ping printed it. */
export type PingLine =
  | { readonly kind: 'reply'; readonly seq: number; readonly rttMs: number }
  | { readonly kind: 'no-answer'; readonly seq: number }
  | { readonly kind: 'icmp-error'; readonly seq: number; readonly message: string }
  | { readonly kind: 'ignore' };

const REPLY = /^\d+ bytes from \S+: icmp_seq=(\d+) .*time[=<]([0-9.]+) ?ms(.*)$/;
const NO_ANSWER = /^no answer yet for icmp_seq=(\d+)$/;
const ICMP_ERROR = /^From (\S+?):? icmp_seq=(\d+) (.+)$/;

/** Parses one stdout line of iputils `ping -n -O` (20221126). Duplicates and headers are ignored. */
export function parsePingLine(line: string): PingLine {
  const t = line.trim();
  let m = REPLY.exec(t);
  if (m) {
    if ((m[3] ?? '').includes('(DUP!)')) return { kind: 'ignore' };
    return { kind: 'reply', seq: Number(m[1]), rttMs: Number(m[2]) };
  }
  m = NO_ANSWER.exec(t);
  if (m) return { kind: 'no-answer', seq: Number(m[1]) };
  m = ICMP_ERROR.exec(t);
  if (m) return { kind: 'icmp-error', seq: Number(m[2]), message: `${(m[3] ?? '').toLowerCase()} (from ${m[1]})` };
  return { kind: 'ignore' };
}

/** `ping -i` takes seconds. */
export function pingIntervalSeconds(intervalMs: number): string {
  return String(intervalMs / 1000);
}

export interface IcmpStreamOptions {
  readonly spawner: ProcessSpawner;
  /** A stream whose ping exited is started again no sooner than this. Default 1000 ms. */
  readonly restartDelayMs?: number;
  /** Monotonic ms. */
  readonly now?: () => number;
}

interface Outcome {
  /** Counts outcomes of this stream: consumers remember the last one they took. */
  readonly n: number;
  readonly at: number;
  readonly result: ProbeResult;
  /** ping gave up on the echo (it reports that when it sends the next one). */
  readonly noAnswer: boolean;
}

interface Waiter {
  readonly jobKey: string;
  readonly timeoutMs: number;
  readonly resolve: (r: ProbeResult) => void;
}

interface Stream {
  readonly key: string;
  readonly intervalMs: number;
  proc: LineProcess | null;
  /** Why the last ping exited, until it is started again. */
  deadReason: string | null;
  diedAt: number;
  latest: Outcome | null;
  count: number;
  /** Sequences reported as "no answer yet": a late reply for them is not a success. */
  readonly missed: Set<number>;
  lastStderr: string;
  readonly waiters: Set<Waiter>;
  /** Last outcome number each job consumed. */
  readonly taken: Map<string, number>;
}

const MISSED_KEPT = 64;

/**
 * Long-lived pings shared by all jobs with the same source, target and interval. A probe takes the newest
 * outcome it has not taken yet if that is at most one interval old, else waits for the next one (at most
 * one interval). The effective timeout is min(timeoutMs, intervalMs): ping reports "no answer yet" when it
 * sends the next echo, and a reply slower than timeoutMs counts as a timeout.
 */
export class IcmpStreamPool {
  private readonly streams = new Map<string, Stream>();
  private readonly spawner: ProcessSpawner;
  private readonly restartDelayMs: number;
  private readonly now: () => number;
  private closed = false;

  constructor(opts: IcmpStreamOptions) {
    this.spawner = opts.spawner;
    this.restartDelayMs = opts.restartDelayMs ?? 1000;
    this.now = opts.now ?? (() => performance.now());
  }

  /** The ProbeFn for icmp jobs. */
  readonly probe: ProbeFn = (job, signal) => this.take(job, signal);

  /** Number of ping processes running. */
  get running(): number {
    let n = 0;
    for (const s of this.streams.values()) if (s.proc) n++;
    return n;
  }

  /** Stops every ping; probes waiting get a failure. Later probes fail at once. */
  async close(): Promise<void> {
    this.closed = true;
    const stopping: Promise<LineProcessExit>[] = [];
    for (const s of this.streams.values()) {
      this.failWaiters(s, 'icmp streams closed');
      if (s.proc) stopping.push(s.proc.stop());
    }
    await Promise.all(stopping);
  }

  private take(job: ProbeJob, signal: AbortSignal): Promise<ProbeResult> {
    if (signal.aborted) return Promise.resolve({ ok: false, rttMs: 0, error: 'aborted' });
    if (this.closed) return Promise.resolve({ ok: false, rttMs: 0, error: 'icmp streams closed' });
    const intervalMs = job.check.intervalMs;
    const key = `${job.source}>${job.target}@${intervalMs}`;
    let s = this.streams.get(key);
    if (!s) {
      s = { key, intervalMs, proc: null, deadReason: null, diedAt: -Infinity, latest: null, count: 0, missed: new Set(), lastStderr: '', waiters: new Set(), taken: new Map() };
      this.streams.set(key, s);
    }
    const jobKey = `${job.node}/${job.key}`;
    if (!s.proc) {
      if (s.deadReason !== null && this.now() - s.diedAt < this.restartDelayMs) return Promise.resolve({ ok: false, rttMs: 0, error: s.deadReason });
      this.start(s, job);
    }
    const latest = s.latest;
    if (latest && latest.n > (s.taken.get(jobKey) ?? 0) && this.now() - latest.at <= intervalMs) {
      s.taken.set(jobKey, latest.n);
      return Promise.resolve(judge(latest, job.check.timeoutMs, intervalMs));
    }
    return new Promise((resolve) => {
      const stream = s;
      const waiter: Waiter = {
        jobKey,
        timeoutMs: job.check.timeoutMs,
        resolve: (r) => {
          stream.waiters.delete(waiter);
          signal.removeEventListener('abort', onAbort);
          resolve(r);
        },
      };
      const onAbort = (): void => waiter.resolve({ ok: false, rttMs: 0, error: typeof signal.reason === 'string' ? signal.reason : 'aborted' });
      signal.addEventListener('abort', onAbort, { once: true });
      stream.waiters.add(waiter);
    });
  }

  private start(s: Stream, job: ProbeJob): void {
    const args = ['-n', ...(job.family === 6 ? ['-6'] : []), '-O', '-i', pingIntervalSeconds(s.intervalMs), '-I', job.source, job.target];
    s.deadReason = null;
    s.lastStderr = '';
    s.missed.clear();
    const proc = this.spawner.spawnLines('ping', args, {
      onStdoutLine: (line) => this.onLine(s, line),
      onStderrLine: (line) => {
        s.lastStderr = line;
        // Per-echo send errors ("ping: sendmsg: Network is unreachable") while ping keeps running.
        if (line.startsWith('ping: sendmsg') || line.startsWith('ping: sendto')) this.record(s, { ok: false, rttMs: 0, error: parsePingError(line, job.source) ?? line });
      },
    });
    s.proc = proc;
    void proc.exited.then((exit) => {
      if (s.proc !== proc) return;
      s.proc = null;
      s.diedAt = this.now();
      const printed = s.lastStderr ? parsePingError(s.lastStderr, job.source) : null;
      s.deadReason = exit.error ?? printed ?? `ping exited (${exit.signal ?? `code ${exit.code ?? '?'}`})`;
      this.failWaiters(s, s.deadReason);
    });
  }

  private onLine(s: Stream, line: string): void {
    const p = parsePingLine(line);
    switch (p.kind) {
      case 'ignore': return;
      case 'reply':
        if (s.missed.has(p.seq)) return;
        return this.record(s, { ok: true, rttMs: p.rttMs });
      case 'no-answer':
        s.missed.add(p.seq);
        if (s.missed.size > MISSED_KEPT) s.missed.delete(s.missed.values().next().value as number);
        return this.record(s, { ok: false, rttMs: s.intervalMs, error: timeoutMessage(s.intervalMs) }, true);
      case 'icmp-error':
        return this.record(s, { ok: false, rttMs: 0, error: p.message });
    }
  }

  private record(s: Stream, result: ProbeResult, noAnswer = false): void {
    s.count++;
    const outcome: Outcome = { n: s.count, at: this.now(), result, noAnswer };
    s.latest = outcome;
    for (const w of [...s.waiters]) {
      s.taken.set(w.jobKey, outcome.n);
      w.resolve(judge(outcome, w.timeoutMs, s.intervalMs));
    }
  }

  private failWaiters(s: Stream, error: string): void {
    for (const w of [...s.waiters]) w.resolve({ ok: false, rttMs: 0, error });
  }
}

/** The outcome for a check: a reply slower than its timeout is a timeout; no answer within the interval is one too. */
function judge(o: Outcome, timeoutMs: number, intervalMs: number): ProbeResult {
  const r = o.result;
  if (o.noAnswer) return { ok: false, rttMs: Math.min(timeoutMs, intervalMs), error: timeoutMessage(Math.min(timeoutMs, intervalMs)) };
  if (r.ok && r.rttMs > timeoutMs) return { ok: false, rttMs: r.rttMs, error: `${timeoutMessage(timeoutMs)} (reply after ${r.rttMs} ms)` };
  return r;
}
