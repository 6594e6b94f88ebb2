// What every kernel driver returns and throws.
import { CommandError, formatCommand, type CommandRunner, type RunOptions } from './runner';

/** One driver's pass: what differed from its want and which changes it ran to fix that. */
export interface ReconcileResult {
  readonly driver: string;
  /** Human sentences, one per difference found before applying, e.g. "fw1 (10.1.0.11) weight 0, want 100". */
  readonly differences: string[];
  /** The changing commands that were run (formatCommand form); reads are not listed. Empty when in sync. */
  readonly commands: string[];
  readonly durationMs: number;
  /** Set by the Actuator: commands were needed although this driver's want had not changed since its last successful pass. */
  readonly drift?: boolean;
}

/** A driver's log line (background work such as arping, warnings); the actuator forwards it to the event log. */
export interface DriverLogEntry {
  readonly level: 'info' | 'warn' | 'error';
  readonly driver: string;
  readonly message: string;
  readonly [extra: string]: unknown;
}
export type DriverLog = (e: DriverLogEntry) => void;
export const silentLog: DriverLog = () => undefined;

export interface DriverOptions {
  /** Re-read after applying and throw KernelVerifyError if differences remain (default true; false for `plan`). */
  verify?: boolean;
  log?: DriverLog;
}

/** Base of every driver error: names the driver. */
export class DriverError extends Error {
  constructor(readonly driver: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DriverError';
  }
}

/** Kernel output we could not understand; nothing was applied. */
export class KernelParseError extends DriverError {
  override name = 'KernelParseError';
  constructor(driver: string, readonly command: string, readonly line: string, readonly reason: string, readonly lineNumber?: number) {
    super(driver, `${driver}: cannot parse output of "${command}"${lineNumber !== undefined ? ` line ${lineNumber}` : ''}: ${reason}: ${JSON.stringify(line.length > 200 ? line.slice(0, 200) + '…' : line)}`);
  }
}

/** The kernel lacks a feature the driver needs (e.g. no IPVS module). */
export class KernelUnavailableError extends DriverError {
  override name = 'KernelUnavailableError';
}

/** A read or a change failed to run (the command's error is the cause). */
export class KernelCommandError extends DriverError {
  override name = 'KernelCommandError';
  constructor(driver: string, readonly command: string, message: string, cause: unknown) {
    super(driver, `${driver}: ${message}`, { cause });
  }
}

/** After applying, the re-read still differs from the want. */
export class KernelVerifyError extends DriverError {
  override name = 'KernelVerifyError';
  constructor(driver: string, readonly remaining: string[], readonly commands: string[], detail = '') {
    super(driver, `${driver}: still differs after applying ${commands.length} command(s): ${remaining.join('; ')}${detail ? ` (${detail})` : ''}`);
  }
}

/** The kernel refused or did not answer a netlink request; names the object and the errno (e.g. ENETUNREACH). */
export class KernelNetlinkError extends DriverError {
  override name = 'KernelNetlinkError';
  constructor(driver: string, readonly object: string, readonly code: string, readonly command: string, detail: string) {
    super(driver, `${driver}: ${object}: ${code}${detail ? ` (${detail})` : ''}${command ? ` [${command}]` : ''}`);
  }
}

/** Bad want given to a driver (a programming or config error, caught before touching the kernel). */
export class DriverInputError extends DriverError {
  override name = 'DriverInputError';
}

/** Runs a command for a driver, turning runner errors into KernelCommandError. */
export async function runFor(driver: string, runner: CommandRunner, file: string, args: readonly string[], opts?: RunOptions): Promise<string> {
  try {
    return (await runner.run(file, args, opts)).stdout;
  } catch (e) {
    throw wrapCommandError(driver, file, args, e);
  }
}

/** A /proc file as text: read directly where the runner can (no exec), else through `cat`. */
export async function readProcFile(driver: string, runner: CommandRunner, path: string): Promise<string> {
  if (!runner.readFile) return runFor(driver, runner, 'cat', [path]);
  try {
    return await runner.readFile(path);
  } catch (e) {
    throw wrapCommandError(driver, 'cat', [path], e);
  }
}

export function wrapCommandError(driver: string, file: string, args: readonly string[], e: unknown): DriverError {
  if (e instanceof DriverError) return e;
  const cmd = formatCommand(file, args);
  const msg = e instanceof CommandError ? e.message : `${cmd}: ${e instanceof Error ? e.message : String(e)}`;
  return new KernelCommandError(driver, cmd, msg, e);
}

/** The stderr of a failed command, or ''. */
export function stderrOf(e: unknown): string {
  return e instanceof CommandError ? e.stderr : '';
}

/** Parse `ip -j …` output: a JSON array, or a KernelParseError naming the command. */
export function parseJsonArray(driver: string, command: string, stdout: string): unknown[] {
  const text = stdout.trim();
  if (text === '') return [];
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new KernelParseError(driver, command, firstLine(text), `not JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(v)) throw new KernelParseError(driver, command, firstLine(text), 'expected a JSON array');
  return v;
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? '';
}

/** Convenience for drivers: start time and a result builder. */
export function timer(): () => number {
  const t0 = performance.now();
  return () => Math.round((performance.now() - t0) * 1000) / 1000;
}

/** The kernel refused a netlink request (its ack carried an errno); names the object and the action. */
export class KernelRejectedError extends DriverError {
  override name = 'KernelRejectedError';
  constructor(driver: string, readonly object: string, readonly action: string, readonly errno: number, readonly code: string, hint = '') {
    super(driver, `${object}: ${action}: ${code}${hint ? ` (${hint})` : ''}`);
  }
}
