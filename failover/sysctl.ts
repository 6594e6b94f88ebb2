// Kernel parameters: read from /proc/sys (or with one `sysctl -n k1 k2 …` where the runner cannot read files),
// write the differing ones with one `sysctl -w k=v …`.
import { CommandFailedError, formatCommand, type CommandRunner } from './runner';
import {
  DriverInputError,
  KernelParseError,
  KernelUnavailableError,
  KernelVerifyError,
  runFor,
  stderrOf,
  timer,
  wrapCommandError,
  type DriverOptions,
  type ReconcileResult,
} from './types';

const DRIVER = 'sysctl';
// Dotted (net.ipv4.ip_forward), or slashed when a part holds a dot (net/ipv6/conf/eth0.100/accept_dad).
const KEY_RE = /^([a-z0-9_]+(\.[A-Za-z0-9_-]+)+|[a-z0-9_]+(\/[A-Za-z0-9_.-]+)+)$/;
const VALUE_RE = /^[A-Za-z0-9_. :-]*$/;

/** Key (dotted, e.g. net.ipv4.vs.sloppy_tcp) → wanted value. Keys not listed are not touched. */
export type SysctlWant = Readonly<Record<string, string>>;

/** Multi-value parameters print tab-separated; compare them with single spaces. */
function norm(v: string): string {
  return v.trim().split(/\s+/).join(' ');
}

function missingKey(stderr: string): string | null {
  const m = /cannot stat \/proc\/sys\/(\S+?):/.exec(stderr);
  return m ? m[1]!.replace(/\//g, '.') : null;
}

/** /proc/sys path of a key: dots become slashes, unless the key is already in the slash form. */
export function sysctlPath(key: string): string {
  return `/proc/sys/${key.includes('/') ? key : key.replace(/\./g, '/')}`;
}

/** Current values: read from /proc/sys where the runner can read files (no exec), else one `sysctl -n`. */
export async function readSysctls(runner: CommandRunner, keys: readonly string[]): Promise<Map<string, string>> {
  const readFile = runner.readFile?.bind(runner);
  if (readFile) {
    const values = await Promise.all(
      keys.map((k) =>
        readFile(sysctlPath(k)).catch((e: unknown) => {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw unavailable(k);
          throw wrapCommandError(DRIVER, 'cat', [sysctlPath(k)], e);
        }),
      ),
    );
    return new Map(keys.map((k, i) => [k, norm(values[i]!)]));
  }
  const args = ['-n', ...keys];
  let out: string;
  try {
    out = (await runner.run('sysctl', args)).stdout;
  } catch (e) {
    const key = e instanceof CommandFailedError ? missingKey(stderrOf(e)) : null;
    if (key) throw unavailable(key);
    throw wrapCommandError(DRIVER, 'sysctl', args, e);
  }
  const lines = out.replace(/\n$/, '').split('\n');
  if (lines.length !== keys.length) {
    throw new KernelParseError(DRIVER, formatCommand('sysctl', args), out, `expected ${keys.length} line(s), one per key, got ${lines.length}`);
  }
  return new Map(keys.map((k, i) => [k, norm(lines[i]!)]));
}

/** Writes the values: to /proc/sys where the runner can write files, else one `sysctl -w k=v …`. */
async function writeSysctls(runner: CommandRunner, values: readonly (readonly [string, string])[], args: readonly string[]): Promise<void> {
  const writeFile = runner.writeFile?.bind(runner);
  if (!writeFile) {
    await runFor(DRIVER, runner, 'sysctl', args);
    return;
  }
  for (const [k, v] of values) {
    await writeFile(sysctlPath(k), `${v}\n`).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw unavailable(k);
      throw wrapCommandError(DRIVER, 'sysctl', ['-w', `${k}=${v}`], e);
    });
  }
}

function unavailable(key: string): KernelUnavailableError {
  const dotted = key.replace(/\//g, '.');
  return new KernelUnavailableError(DRIVER, `${DRIVER}: kernel has no parameter ${dotted}${dotted.startsWith('net.ipv4.vs.') ? ' (IPVS not loaded: modprobe ip_vs)' : ''}`);
}

export class SysctlDriver {
  constructor(private readonly runner: CommandRunner, private readonly opts: DriverOptions = {}) {}

  async reconcile(want: SysctlWant): Promise<ReconcileResult> {
    const elapsed = timer();
    const keys = Object.keys(want);
    for (const k of keys) {
      if (!KEY_RE.test(k) || k.split('/').some((p) => p === '.' || p === '..')) throw new DriverInputError(DRIVER, `"${k}" is not a sysctl key`);
      if (!VALUE_RE.test(want[k]!)) throw new DriverInputError(DRIVER, `value ${JSON.stringify(want[k])} for ${k} has characters a sysctl value does not`);
    }
    if (keys.length === 0) return { driver: DRIVER, differences: [], commands: [], durationMs: elapsed() };
    const diff = (cur: Map<string, string>) => keys.filter((k) => cur.get(k) !== norm(want[k]!));
    const cur = await readSysctls(this.runner, keys);
    const changing = diff(cur);
    const differences = changing.map((k) => `${k} = ${cur.get(k)}, want ${norm(want[k]!)}`);
    const commands: string[] = [];
    if (changing.length) {
      const args = ['-w', ...changing.map((k) => `${k}=${norm(want[k]!)}`)];
      // Listed as the `sysctl -w` it equals; written to /proc/sys directly where the runner can (no process).
      commands.push(formatCommand('sysctl', args));
      await writeSysctls(this.runner, changing.map((k) => [k, norm(want[k]!)] as const), args);
      if (this.opts.verify ?? true) {
        const again = await readSysctls(this.runner, keys);
        const left = diff(again);
        if (left.length) throw new KernelVerifyError(DRIVER, left.map((k) => `${k} = ${again.get(k)}, want ${norm(want[k]!)}`), commands);
      }
    }
    return { driver: DRIVER, differences, commands, durationMs: elapsed() };
  }
}
