// One probe per kind, each forced through one firewall by its source address (docs/decisions.md, "Probe replies are pinned to their firewall").
// A probe never throws: it resolves to {ok, rttMs, error?} with a short, human error.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { promise as pingPromise } from 'ping';
import { CommandFailedError, CommandNotFoundError, CommandTimeoutError, ExecSpawner, processStarts, type CommandRunner, type ProcessSpawner } from '../failover/runner';
import { IcmpStreamPool } from './icmp-stream';
import type { ProbeJob } from './jobs';
import type { ProbeResult } from './risefall';

export type { ProbeResult } from './risefall';

export type ProbeFn = (job: ProbeJob, signal: AbortSignal) => Promise<ProbeResult>;
/** Picks the probe function for a job; called once per job, not per probe. close() ends what it started (long-lived pings). */
export type ProbeFactory = ((job: ProbeJob) => ProbeFn) & { close?: () => Promise<void> };

/** HTTP bodies are read up to this size for bodyMatch. */
export const HTTP_BODY_LIMIT_BYTES = 64 * 1024;

const DEFAULT_STATUS_MIN = 200;
const DEFAULT_STATUS_MAX = 399;

export function timeoutMessage(ms: number): string {
  return `timeout after ${ms} ms`;
}

function abortMessage(signal: AbortSignal): string {
  const r: unknown = signal.reason;
  if (typeof r === 'string') return r;
  if (r instanceof Error && r.name !== 'AbortError') return r.message;
  return 'aborted';
}

const ERRNO_MESSAGES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EADDRNOTAVAIL: 'cannot assign requested address',
  EPIPE: 'connection closed',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed (temporary)',
  ETIMEDOUT: 'connection timed out',
};

/** A short description of a socket/HTTP error; names the source for bind failures. */
export function describeError(e: unknown, job: Pick<ProbeJob, 'source'>): string {
  const err = e as { code?: unknown; message?: unknown };
  const code = typeof err.code === 'string' ? err.code : '';
  if (code === 'EADDRNOTAVAIL') return `source ${job.source}: cannot assign requested address`;
  const known = ERRNO_MESSAGES[code];
  if (known) return known;
  const msg = typeof err.message === 'string' ? err.message : String(e);
  return msg.split('\n')[0]!.slice(0, 200);
}

// --- TCP ---------------------------------------------------------------------------------------

/** TCP connect from job.source to job.target:job.port; RTT = connect time. Closes with RST (no TIME_WAIT here). */
export function tcpProbe(job: ProbeJob, signal: AbortSignal): Promise<ProbeResult> {
  const timeoutMs = job.check.timeoutMs;
  return new Promise((resolve) => {
    if (signal.aborted) return resolve({ ok: false, rttMs: 0, error: abortMessage(signal) });
    const started = performance.now();
    let done = false;
    let connected = false;
    const socket = net.connect({ host: job.target, port: job.port ?? 0, localAddress: job.source, family: job.family ?? 4 });
    const finish = (ok: boolean, error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (connected) socket.resetAndDestroy();
      else socket.destroy();
      const rttMs = performance.now() - started;
      resolve(ok ? { ok, rttMs } : { ok, rttMs, error: error ?? 'failed' });
    };
    const onAbort = (): void => finish(false, abortMessage(signal));
    const timer = setTimeout(() => finish(false, timeoutMessage(timeoutMs)), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      connected = true;
      finish(true);
    });
    // Kept after finish: a late error on a destroyed socket must not become an uncaught exception.
    socket.on('error', (e) => finish(false, describeError(e, job)));
  });
}

// --- HTTP(S) -----------------------------------------------------------------------------------

// No keep-alive: every probe opens its own connection, so each one really crosses its firewall.
const httpAgent = new http.Agent({ keepAlive: false });
const httpsAgent = new https.Agent({ keepAlive: false });
const bodyRegexes = new WeakMap<ProbeJob['check'], RegExp>();

function bodyRegex(check: ProbeJob['check']): RegExp | null {
  if (check.bodyMatch === undefined) return null;
  let re = bodyRegexes.get(check);
  if (!re) {
    re = new RegExp(check.bodyMatch);
    bodyRegexes.set(check, re);
  }
  return re;
}

function statusOk(check: ProbeJob['check'], status: number): boolean {
  return check.expectStatus ? check.expectStatus.includes(status) : status >= DEFAULT_STATUS_MIN && status <= DEFAULT_STATUS_MAX;
}

/**
 * GET job.target from job.source. OK when the status is expected (default 200–399, redirects not followed)
 * and, with bodyMatch, the first 64 KiB of the body match. HTTPS certificates are not verified: this is a
 * health check of the path through a firewall, not a client trusting the server's identity.
 */
export async function httpProbe(job: ProbeJob, signal: AbortSignal): Promise<ProbeResult> {
  // got (~10 MB of code and data) is loaded by the first HTTP check, not by controllers without one.
  const { default: got } = await import('got');
  const check = job.check;
  const timeoutMs = check.timeoutMs;
  const re = bodyRegex(check);
  return new Promise((resolve) => {
    if (signal.aborted) return resolve({ ok: false, rttMs: 0, error: abortMessage(signal) });
    const started = performance.now();
    let done = false;
    let stream: ReturnType<typeof got.stream>;
    try {
      stream = got.stream(job.target, {
        localAddress: job.source,
        dnsLookupIpVersion: job.family ?? 4,
        timeout: { request: timeoutMs },
        retry: { limit: 0 },
        throwHttpErrors: false,
        followRedirect: false,
        agent: { http: httpAgent, https: httpsAgent },
        https: { rejectUnauthorized: false },
        headers: { 'user-agent': 'sandwich-probe' },
        signal,
      });
    } catch (e) {
      return resolve({ ok: false, rttMs: 0, error: describeError(e, job) });
    }
    const finish = (ok: boolean, error?: string): void => {
      if (done) return;
      done = true;
      stream.destroy();
      const rttMs = performance.now() - started;
      resolve(ok ? { ok, rttMs } : { ok, rttMs, error: error ?? 'failed' });
    };
    stream.on('error', (e: unknown) => {
      if (signal.aborted) return finish(false, abortMessage(signal));
      const code = (e as { code?: unknown }).code;
      if (code === 'ETIMEDOUT' && (e as { name?: unknown }).name === 'TimeoutError') return finish(false, timeoutMessage(timeoutMs));
      finish(false, describeError(e, job));
    });
    stream.once('response', (res: { statusCode: number }) => {
      if (!statusOk(check, res.statusCode)) return finish(false, `HTTP ${res.statusCode}`);
      if (!re) return finish(true);
      const chunks: Buffer[] = [];
      let size = 0;
      const judge = (): void => {
        const body = Buffer.concat(chunks).subarray(0, HTTP_BODY_LIMIT_BYTES).toString('utf8');
        if (re.test(body)) finish(true);
        else finish(false, `body did not match /${check.bodyMatch}/`);
      };
      stream.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= HTTP_BODY_LIMIT_BYTES) judge();
      });
      stream.once('end', judge);
    });
  });
}

// --- ICMP --------------------------------------------------------------------------------------

/** `ping -W` takes seconds (fractions allowed by iputils ≥ 20210202). */
export function pingWaitSeconds(timeoutMs: number): string {
  return String(timeoutMs / 1000);
}

/** RTT in ms from iputils ping output ("… time=0.069 ms"), or null when there was no reply. */
export function parsePingRtt(stdout: string): number | null {
  const m = / time[=<]([0-9.]+) ?ms/.exec(stdout);
  if (!m) return null;
  const v = Number(m[1]);
  return Number.isFinite(v) ? v : null;
}

/** The error ping printed ("ping: bind: Cannot assign requested address"), shortened; null when none. */
export function parsePingError(output: string, source: string): string | null {
  const line = output.split('\n').find((l) => l.startsWith('ping: '));
  if (!line) return null;
  const parts = line.slice('ping: '.length).split(': ');
  const what = parts[0] ?? '';
  const last = (parts[parts.length - 1] ?? '').trim();
  const reason = last.charAt(0).toLowerCase() + last.slice(1);
  if (what === 'bind') return `source ${source}: ${reason}`;
  return reason || line.trim();
}

/**
 * ICMP echo through the `ping` npm package (0.4.4). It spawns /usr/bin/ping itself (child_process.spawn),
 * the accepted exception to "every command goes through failover/runner.ts" for this named dependency;
 * cost measured in bench/ping-cost.ts. Notes from its source: `timeout` is seconds (-W), `deadline` is an
 * integer (-w) and unused here; it cannot be cancelled (an abort resolves at once, the child exits at -W);
 * it sets process.env.LANG = 'C' on first use.
 */
export function icmpPackageProbe(job: ProbeJob, signal: AbortSignal): Promise<ProbeResult> {
  const timeoutMs = job.check.timeoutMs;
  return new Promise((resolve) => {
    if (signal.aborted) return resolve({ ok: false, rttMs: 0, error: abortMessage(signal) });
    const started = performance.now();
    let done = false;
    const finish = (r: ProbeResult): void => {
      if (done) return;
      done = true;
      signal.removeEventListener('abort', onAbort);
      resolve(r);
    };
    const onAbort = (): void => finish({ ok: false, rttMs: performance.now() - started, error: abortMessage(signal) });
    signal.addEventListener('abort', onAbort, { once: true });
    processStarts.started('ping');   // the `ping` package spawns /usr/bin/ping itself
    pingPromise
      .probe(job.target, { numeric: true, timeout: timeoutMs / 1000, min_reply: 1, ...(job.family === 6 ? { v6: true } : {}), extra: ['-I', job.source] })
      .then((res) => {
        const wallMs = performance.now() - started;
        if (res.alive) {
          const rtt = typeof res.time === 'number' ? res.time : parsePingRtt(res.output);
          return finish({ ok: true, rttMs: rtt ?? wallMs });
        }
        finish({ ok: false, rttMs: wallMs, error: parsePingError(res.output, job.source) ?? timeoutMessage(timeoutMs) });
      })
      .catch((e: unknown) => finish({ ok: false, rttMs: performance.now() - started, error: e instanceof Error ? e.message : String(e) }));
  });
}

/** Extra time the runner allows `ping` beyond its own -W before killing it. */
const PING_KILL_GRACE_MS = 1000;

/**
 * ICMP echo by running `ping -n -c 1 -W <s> -I <source> <target>` through a CommandRunner: cancellable,
 * works inside a namespace (NetnsRunner) and against recorded outputs (FakeRunner).
 */
export function icmpRunnerProbe(runner: CommandRunner): ProbeFn {
  return async (job, signal) => {
    const timeoutMs = job.check.timeoutMs;
    if (signal.aborted) return { ok: false, rttMs: 0, error: abortMessage(signal) };
    const started = performance.now();
    const args = ['-n', ...(job.family === 6 ? ['-6'] : []), '-c', '1', '-W', pingWaitSeconds(timeoutMs), '-I', job.source, job.target];
    try {
      const { stdout } = await runner.run('ping', args, { timeoutMs: timeoutMs + PING_KILL_GRACE_MS, signal });
      const rtt = parsePingRtt(stdout);
      if (rtt === null) return { ok: false, rttMs: performance.now() - started, error: 'ping succeeded but printed no time=' };
      return { ok: true, rttMs: rtt };
    } catch (e) {
      const rttMs = performance.now() - started;
      if (signal.aborted) return { ok: false, rttMs, error: abortMessage(signal) };
      if (e instanceof CommandNotFoundError) return { ok: false, rttMs, error: 'ping is not installed' };
      if (e instanceof CommandTimeoutError) return { ok: false, rttMs, error: timeoutMessage(timeoutMs) };
      if (e instanceof CommandFailedError) {
        // iputils: exit 1 = no reply (or an ICMP error reply), exit 2 = error, message on stderr.
        const printed = parsePingError(e.stderr, job.source);
        if (printed) return { ok: false, rttMs, error: printed };
        if (e.exitCode === 1) return { ok: false, rttMs, error: timeoutMessage(timeoutMs) };
        return { ok: false, rttMs, error: `ping exited ${e.exitCode ?? '?'}` };
      }
      return { ok: false, rttMs, error: e instanceof Error ? e.message : String(e) };
    }
  };
}

// --- choosing probes ---------------------------------------------------------------------------

export type IcmpEngine = 'package' | 'stream';

export interface ProbeFactoryOptions {
  /**
   * ICMP for checks without their own icmpEngine: 'package' (default): the `ping` npm package, one process
   * per probe; 'stream': one long-lived ping per target (checks/icmp-stream.ts); a CommandRunner: `ping -c 1`
   * through that runner.
   */
  icmp?: IcmpEngine | CommandRunner;
  /** Starts the long-lived pings of 'stream'. Default: ExecSpawner. */
  spawner?: ProcessSpawner;
}

export function probeFactory(opts: ProbeFactoryOptions = {}): ProbeFactory {
  const fallback: IcmpEngine | CommandRunner = opts.icmp ?? 'package';
  const runnerProbe = typeof fallback === 'object' ? icmpRunnerProbe(fallback) : null;
  let pool: IcmpStreamPool | null = null;
  const streamProbe: ProbeFn = (job, signal) => {
    pool ??= new IcmpStreamPool({ spawner: opts.spawner ?? new ExecSpawner() });
    return pool.probe(job, signal);
  };
  const icmpFor = (job: ProbeJob): ProbeFn => {
    const engine = job.check.icmpEngine ?? (runnerProbe ? null : fallback);
    if (engine === 'stream') return streamProbe;
    if (engine === 'package') return icmpPackageProbe;
    return runnerProbe ?? icmpPackageProbe;
  };
  const factory: ProbeFactory = (job) => {
    switch (job.kind) {
      case 'icmp': return icmpFor(job);
      case 'tcp': return tcpProbe;
      case 'http': return httpProbe;
    }
  };
  // A later probe (an engine started again) gets a new pool.
  factory.close = async () => {
    const closing = pool;
    pool = null;
    await closing?.close();
  };
  return factory;
}
