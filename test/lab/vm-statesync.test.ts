// State-synced firewalls with real IPVS: boots the lab VM (lab/vm/run.sh, qemu TCG) and runs
// lab/statesync.sh's sync-repoint variant: conntrackd in fw1/fw2, `downAction: remove`, 240
// long-lived connections, fw1 black-holed; at least 99 % of the established connections must keep
// completing requests (all those on fw1 among them). The comparison variants (no sync, no
// re-point: the connections on fw1 are lost) are in `lab/vm/run.sh lab/statesync.sh` (all four,
// docs/lab-results.md) and, with real packets on the host, in test/system/statesync.test.ts.
import { runInVm, vmHookTimeout, type VmRun } from './vm-run';

// Needs root, qemu, the Debian kernel, conntrackd and dist/ (scripts/setup); run alone: npx jest test/lab/vm-statesync.test.ts
const VM_TIMEOUT_S = 1200;

interface Variant {
  name: string; established: number; onFw1: number; kept: number; keptOnFw1: number; lost: number; stalled: number;
  keptRatio: number; onFw1KnownToFw2: number; newFailed: number; newRequests: number; newHealSeconds: number | null;
}

let run: VmRun<{ pass: boolean; variants: Variant[] }>;

beforeAll(async () => {
  run = await runInVm('lab/statesync.sh', VM_TIMEOUT_S, ['sync-repoint'], 'test-statesync', 'statesync/results.json');
}, vmHookTimeout(VM_TIMEOUT_S));

describe('state-synced firewalls in the lab VM (real IPVS, conntrackd)', () => {
  it('keeps at least 99 % of 200+ established connections when fw1 fails, every one on fw1 among them', () => {
    const v = run.results?.variants.find((x) => x.name === 'sync-repoint');
    if (!v) throw new Error(`no results (run.sh exit ${run.rc}); console tail:\n${run.tail()}`);
    console.log(`sync-repoint: kept ${v.kept}/${v.established} (on fw1 ${v.keptOnFw1}/${v.onFw1}, known to fw2 before the fault: ${v.onFw1KnownToFw2}); new requests failed ${v.newFailed}/${v.newRequests}, all succeeding again ${v.newHealSeconds} s after the fault`);
    expect(v.established).toBeGreaterThanOrEqual(200);
    expect(v.onFw1).toBeGreaterThan(0);                  // the fault hit some of them
    expect(v.onFw1KnownToFw2).toBe(v.onFw1);             // conntrackd had put every one into fw2's table
    expect(v.keptRatio).toBeGreaterThanOrEqual(0.99);
    expect(v.keptOnFw1 / v.onFw1).toBeGreaterThanOrEqual(0.99);
    expect(v.newHealSeconds).not.toBeNull();
    expect(run.results!.pass).toBe(true);
    expect(run.rc).toBe(0);
  });
});
