// Runs one lab script in the lab VM (lab/vm/run.sh, qemu TCG) for the vm test project, and reads its
// results file. Each test file uses its own LAB_OUT (the VM lock is per directory).
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = join(__dirname, '..', '..');

export interface VmRun<T> {
  rc: number | null;
  output: string;
  results: T | null;
  /** The console's last lines, for a failure message. */
  tail(lines?: number): string;
}

/**
 * Boots the VM and runs `script` (relative to the repository) with `args` after `--`, with LAB_OUT set
 * to lab/out/<outDir>; `resultsFile` (relative to LAB_OUT) is removed first and read afterwards.
 * `env` adds LAB_* variables (run.sh passes them into the VM). Bounded by `timeoutS` inside run.sh, and by
 * 2 more minutes here.
 */
export async function runInVm<T>(script: string, timeoutS: number, args: string[], outDir: string, resultsFile: string, env: Record<string, string> = {}): Promise<VmRun<T>> {
  const out = join(ROOT, 'lab', 'out', outDir);
  const file = join(out, resultsFile);
  rmSync(file, { force: true });
  mkdirSync(out, { recursive: true });
  let output = '';
  const rc = await new Promise<number | null>((resolve) => {
    const p = execFile(join(ROOT, 'lab', 'vm', 'run.sh'), [script, String(timeoutS), '--', ...args], {
      cwd: ROOT, env: { ...process.env, ...env, LAB_OUT: out }, maxBuffer: 64 * 1024 * 1024, timeout: (timeoutS + 120) * 1000,
    }, () => undefined);
    p.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    p.on('exit', (code) => resolve(code));
  });
  const results = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : null;
  return { rc, output, results, tail: (lines = 40) => output.split('\n').slice(-lines).join('\n') };
}

/** jest's timeout for a beforeAll that calls runInVm with `timeoutS`. */
export const vmHookTimeout = (timeoutS: number): number => (timeoutS + 180) * 1000;
