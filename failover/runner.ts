// The one way this program runs external commands: execFile (no shell), a deadline, typed errors.
import { execFile, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { createInterface } from 'node:readline';

/** Processes this program started, by program name (`ip`, `ipvsadm`, …): issue 16 wants none in steady state. */
export class ProcessStarts {
  private readonly counts = new Map<string, number>();
  /** One process of `file` (a name or a path) started. */
  started(file: string): void {
    const program = basename(file);
    this.counts.set(program, (this.counts.get(program) ?? 0) + 1);
  }
  count(program: string): number {
    return this.counts.get(program) ?? 0;
  }
  byProgram(): ReadonlyMap<string, number> {
    return this.counts;
  }
}

/** Every process started through ExecRunner and ExecSpawner (and the ICMP probe's `ping` package) in this process. */
export const processStarts = new ProcessStarts();

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
}

export interface RunOptions {
  /** Deadline in ms; defaults to the runner's. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Data written to the command's standard input (e.g. `ipvsadm -R`, `nft -f -`). */
  input?: string;
}

export interface CommandRunner {
  run(file: string, args: readonly string[], opts?: RunOptions): Promise<CommandResult>;
  /** A file (a /proc file of the runner's network namespace) without an exec; runners without it get `cat`. */
  readFile?(path: string): Promise<string>;
  /** Writes a /proc/sys file of the runner's network namespace without an exec; runners without it get `sysctl -w`. */
  writeFile?(path: string, data: string): Promise<void>;
}

export class CommandError extends Error {
  constructor(
    readonly file: string,
    readonly args: readonly string[],
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}
/** The command ran and exited non-zero. */
export class CommandFailedError extends CommandError {
  override name = 'CommandFailedError';
}
/** The command did not finish within its deadline (or was aborted). */
export class CommandTimeoutError extends CommandError {
  override name = 'CommandTimeoutError';
}
/** The program is not installed or not executable. */
export class CommandNotFoundError extends CommandError {
  override name = 'CommandNotFoundError';
}

export function formatCommand(file: string, args: readonly string[]): string {
  return [file, ...args].map((a) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export class ExecRunner implements CommandRunner {
  constructor(private readonly defaultTimeoutMs = 5000, private readonly env: NodeJS.ProcessEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' }) {}

  readFile(path: string): Promise<string> {
    return readFile(path, { encoding: 'utf8', signal: AbortSignal.timeout(this.defaultTimeoutMs) });
  }

  writeFile(path: string, data: string): Promise<void> {
    return writeFile(path, data, { encoding: 'utf8', signal: AbortSignal.timeout(this.defaultTimeoutMs) });
  }

  run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
    const timeout = opts.timeoutMs ?? this.defaultTimeoutMs;
    const started = performance.now();
    const cmd = formatCommand(file, args);
    return new Promise((resolve, reject) => {
      const child = execFile(
        file,
        args as string[],
        { timeout, killSignal: 'SIGKILL', signal: opts.signal, maxBuffer: 64 * 1024 * 1024, env: this.env, shell: false, windowsHide: true },
        (err, stdout, stderr) => {
          const durationMs = performance.now() - started;
          if (!err) return resolve({ stdout, stderr, durationMs });
          const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: string | number; signal?: string };
          const tail = stderr.trim().split('\n').slice(-3).join(' | ');
          if (e.code === 'ENOENT') return reject(new CommandNotFoundError(file, args, `${file}: not installed (ENOENT)`, null, stderr));
          if (e.code === 'ABORT_ERR' || e.name === 'AbortError') return reject(new CommandTimeoutError(file, args, `${cmd}: aborted`, null, stderr));
          if (e.killed || e.signal === 'SIGKILL') return reject(new CommandTimeoutError(file, args, `${cmd}: no answer within ${timeout} ms`, null, stderr));
          const code = typeof e.code === 'number' ? e.code : null;
          reject(new CommandFailedError(file, args, `${cmd}: exit ${code ?? e.code}${tail ? `: ${tail}` : ''}`, code, stderr));
        },
      );
      if (child.pid !== undefined) processStarts.started(file);   // no pid: it could not start (ENOENT, …)
      if (opts.input !== undefined) child.stdin?.end(opts.input);
      else child.stdin?.end();
    });
  }
}

export interface RecordedCall {
  readonly file: string;
  readonly args: readonly string[];
  readonly input?: string;
}

/** A runner for unit tests: records every call and answers from a handler. */
/** What a FakeRunner handler answers: stdout, stdout + stderr, or an error to throw. */
export type FakeAnswer = string | { stdout: string; stderr?: string } | Error;

export class FakeRunner implements CommandRunner {
  readonly calls: RecordedCall[] = [];
  constructor(private handler: (call: RecordedCall) => FakeAnswer | Promise<FakeAnswer> = () => '') {}

  setHandler(h: (call: RecordedCall) => FakeAnswer | Promise<FakeAnswer>): void {
    this.handler = h;
  }

  async run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
    const call: RecordedCall = opts.input === undefined ? { file, args: [...args] } : { file, args: [...args], input: opts.input };
    this.calls.push(call);
    const answer = Promise.resolve(this.handler(call));
    const signal = opts.signal;
    // Like ExecRunner: an abort ends the command at once with CommandTimeoutError ("aborted").
    const out = signal
      ? await new Promise<FakeAnswer>((resolve, reject) => {
          const aborted = () => reject(new CommandTimeoutError(file, args, `${formatCommand(file, args)}: aborted`, null, ''));
          if (signal.aborted) return aborted();
          signal.addEventListener('abort', aborted, { once: true });
          answer.then(resolve, reject).finally(() => signal.removeEventListener('abort', aborted));
        })
      : await answer;
    if (out instanceof Error) throw out;
    if (typeof out !== 'string') return { stdout: out.stdout, stderr: out.stderr ?? '', durationMs: 0 };
    return { stdout: out, stderr: '', durationMs: 0 };
  }

  /** The recorded calls as shell-like lines, for readable assertions. */
  lines(): string[] {
    return this.calls.map((c) => formatCommand(c.file, c.args));
  }
}

/** Runs every command inside a network namespace (`ip netns exec NS …`); used by the lab and tests. */
export class NetnsRunner implements CommandRunner {
  constructor(private readonly inner: CommandRunner, readonly netns: string) {}
  run(file: string, args: readonly string[], opts?: RunOptions): Promise<CommandResult> {
    return this.inner.run('ip', ['netns', 'exec', this.netns, file, ...args], opts);
  }
}

/** Prints commands instead of running them (`sandwich plan`); reads go to the real runner. */
export class PlanRunner implements CommandRunner {
  readonly planned: string[] = [];
  constructor(private readonly reader: CommandRunner, private readonly isRead: (file: string, args: readonly string[]) => boolean) {}
  async run(file: string, args: readonly string[], opts?: RunOptions): Promise<CommandResult> {
    if (this.isRead(file, args)) return this.reader.run(file, args, opts);
    this.planned.push(formatCommand(file, args) + (opts?.input ? ` <<'EOF'\n${opts.input.trimEnd()}\nEOF` : ''));
    return { stdout: '', stderr: '', durationMs: 0 };
  }
}

// --- long-lived commands ------------------------------------------------------------------------

/** How a long-lived command ended: exit code or signal, or why it could not start. */
export interface LineProcessExit {
  readonly code: number | null;
  readonly signal: string | null;
  /** Set when the program could not be started (e.g. "ping: not installed (ENOENT)"). */
  readonly error?: string;
}

export interface LineHandlers {
  onStdoutLine(line: string): void;
  onStderrLine?(line: string): void;
}

/** A long-lived command read line by line (e.g. one `ping -i` per probe target). */
export interface LineProcess {
  readonly pid: number | undefined;
  /** Resolves once the process has exited and its output has been read. */
  readonly exited: Promise<LineProcessExit>;
  /** SIGTERM, then SIGKILL after graceMs; resolves when it has exited. */
  stop(graceMs?: number): Promise<LineProcessExit>;
  /** SIGKILL now, without waiting (a command that must not run any further, e.g. a late nft). */
  kill(): void;
  /** Writes to the command's standard input (opened with `stdin: true`); false when it is closed. */
  write(data: string): boolean;
}

export interface SpawnOptions {
  /** Keep standard input open for write() (e.g. `nft -i`); default: closed. */
  stdin?: boolean;
}

export interface ProcessSpawner {
  spawnLines(file: string, args: readonly string[], handlers: LineHandlers, opts?: SpawnOptions): LineProcess;
}

/** spawn (no shell), stdin closed unless asked for, stdout/stderr split into lines. */
export class ExecSpawner implements ProcessSpawner {
  constructor(private readonly env: NodeJS.ProcessEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' }) {}

  spawnLines(file: string, args: readonly string[], handlers: LineHandlers, opts: SpawnOptions = {}): LineProcess {
    const stdio: ['pipe' | 'ignore', 'pipe', 'pipe'] = [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'];
    const child = spawn(file, args as string[], { env: this.env, shell: false, stdio, windowsHide: true });
    if (child.pid !== undefined) processStarts.started(file);
    // EPIPE after the command exited is reported through `exited`, not as an uncaught error.
    child.stdin?.on('error', () => undefined);
    const out = createInterface({ input: child.stdout!, crlfDelay: Infinity });
    const err = createInterface({ input: child.stderr!, crlfDelay: Infinity });
    out.on('line', (l) => handlers.onStdoutLine(l));
    err.on('line', (l) => handlers.onStderrLine?.(l));
    const closed = (rl: ReturnType<typeof createInterface>) => new Promise<void>((r) => rl.once('close', () => r()));
    const outputRead = Promise.all([closed(out), closed(err)]);
    const exited = new Promise<LineProcessExit>((resolve) => {
      // Kept for the child's life: a later 'error' (a failed kill) must not become an uncaught exception.
      child.on('error', (e: NodeJS.ErrnoException) => {
        // 'close' does not follow a failed spawn.
        if (child.pid === undefined) resolve({ code: null, signal: null, error: e.code === 'ENOENT' ? `${file}: not installed (ENOENT)` : `${file}: ${e.message}` });
      });
      child.once('close', (code, signal) => void outputRead.then(() => resolve({ code, signal })));
    });
    const running = () => child.exitCode === null && child.signalCode === null;
    return {
      pid: child.pid,
      exited,
      kill: () => {
        if (running()) child.kill('SIGKILL');
      },
      write: (data) => {
        const stdin = child.stdin;
        if (!stdin || stdin.destroyed || stdin.writableEnded || !running()) return false;
        stdin.write(data);
        return true;
      },
      stop: async (graceMs = 1000) => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
          const r = await exited;
          clearTimeout(kill);
          return r;
        }
        return exited;
      },
    };
  }
}

/** Starts every long-lived command inside a network namespace (`ip netns exec NS …`, which execs it). */
export class NetnsSpawner implements ProcessSpawner {
  constructor(private readonly inner: ProcessSpawner, readonly netns: string) {}
  spawnLines(file: string, args: readonly string[], handlers: LineHandlers, opts?: SpawnOptions): LineProcess {
    return this.inner.spawnLines('ip', ['netns', 'exec', this.netns, file, ...args], handlers, opts);
  }
}

/** One command started by a FakeSpawner: what it was given, and handles to drive it. */
export interface FakeProcess {
  readonly file: string;
  readonly args: readonly string[];
  readonly handlers: LineHandlers;
  /** Everything written to its standard input. */
  readonly written: string[];
  stopped: boolean;
  killed: boolean;
  /** Ends it as if it had exited. */
  exit(e: LineProcessExit): void;
}

/** A spawner for unit tests: records each command; the test plays its output through `handlers`. */
export class FakeSpawner implements ProcessSpawner {
  readonly procs: FakeProcess[] = [];
  /** Called with each write, after it is recorded (e.g. to answer it). */
  onWrite: (p: FakeProcess, data: string) => void = () => undefined;

  spawnLines(file: string, args: readonly string[], handlers: LineHandlers, opts: SpawnOptions = {}): LineProcess {
    let resolveExit!: (e: LineProcessExit) => void;
    const exited = new Promise<LineProcessExit>((r) => { resolveExit = r; });
    let done = false;
    const p: FakeProcess = {
      file, args: [...args], handlers, written: [], stopped: false, killed: false,
      exit: (e) => { done = true; resolveExit(e); },
    };
    this.procs.push(p);
    return {
      pid: 1000 + this.procs.length,
      exited,
      stop: () => {
        p.stopped = true;
        if (!done) p.exit({ code: null, signal: 'SIGTERM' });
        return exited;
      },
      kill: () => {
        p.killed = true;
        if (!done) p.exit({ code: null, signal: 'SIGKILL' });
      },
      write: (data) => {
        if (!opts.stdin || done) return false;
        p.written.push(data);
        this.onWrite(p, data);
        return true;
      },
    };
  }

  last(): FakeProcess {
    const p = this.procs[this.procs.length - 1];
    if (!p) throw new Error('nothing spawned');
    return p;
  }
}
