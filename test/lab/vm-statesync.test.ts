// State-synced firewalls with real IPVS: boots the lab VM (lab/vm/run.sh, qemu TCG) and runs
// lab/statesync.sh's sync-repoint variant: conntrackd in fw1/fw2, `downAction: remove`, 240
// long-lived connections, fw1 black-holed; at least 99 % of the established connections must keep
// completing requests (all those on fw1 among them). The comparison variants (no sync, no
// re-point: the connections on fw1 are lost) are in `lab/vm/run.sh lab/statesync.sh` (all four,
// docs/lab-results.md) and, with real packets on the host, in test/system/statesync.test.ts.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

// Needs root, qemu, the Debian kernel, conntrackd and dist/ (scripts/setup); run alone: npx jest test/lab/vm-statesync.test.ts
const ROOT = join(__dirname, '..', '..');
const OUT = join(ROOT, 'lab', 'out', 'test-statesync');   // own LAB_OUT: the VM lock is per directory
const VM_TIMEOUT_S = 1200;

interface Variant {
  name: string; established: number; onFw1: number; kept: number; keptOnFw1: number; lost: number; stalled: number;
  keptRatio: number; onFw1KnownToFw2: number; newFailed: number; newRequests: number; newHealSeconds: number | null;
}

let rc: number | null = null;
let output = '';
let results: { pass: boolean; variants: Variant[] } | null = null;

beforeAll(async () => {
  rmSync(join(OUT, 'statesync'), { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  rc = await new Promise<number | null>((resolve) => {
    const p = execFile(join(ROOT, 'lab', 'vm', 'run.sh'), ['lab/statesync.sh', String(VM_TIMEOUT_S), '--', 'sync-repoint'], {
      cwd: ROOT, env: { ...process.env, LAB_OUT: OUT }, maxBuffer: 64 * 1024 * 1024, timeout: (VM_TIMEOUT_S + 120) * 1000,
    }, () => undefined);
    p.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    p.on('exit', (code) => resolve(code));
  });
  const file = join(OUT, 'statesync', 'results.json');
  if (existsSync(file)) results = JSON.parse(readFileSync(file, 'utf8')) as typeof results;
}, (VM_TIMEOUT_S + 180) * 1000);

describe('state-synced firewalls in the lab VM (real IPVS, conntrackd)', () => {
  it('keeps at least 99 % of 200+ established connections when fw1 fails, every one on fw1 among them', () => {
    const v = results?.variants.find((x) => x.name === 'sync-repoint');
    if (!v) throw new Error(`no results (run.sh exit ${rc}); console tail:\n${output.split('\n').slice(-40).join('\n')}`);
    console.log(`sync-repoint: kept ${v.kept}/${v.established} (on fw1 ${v.keptOnFw1}/${v.onFw1}, known to fw2 before the fault: ${v.onFw1KnownToFw2}); new requests failed ${v.newFailed}/${v.newRequests}, all succeeding again ${v.newHealSeconds} s after the fault`);
    expect(v.established).toBeGreaterThanOrEqual(200);
    expect(v.onFw1).toBeGreaterThan(0);                  // the fault hit some of them
    expect(v.onFw1KnownToFw2).toBe(v.onFw1);             // conntrackd had put every one into fw2's table
    expect(v.keptRatio).toBeGreaterThanOrEqual(0.99);
    expect(v.keptOnFw1 / v.onFw1).toBeGreaterThanOrEqual(0.99);
    expect(v.newHealSeconds).not.toBeNull();
    expect(results!.pass).toBe(true);
    expect(rc).toBe(0);
  });
});
