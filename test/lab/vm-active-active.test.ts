// The active-active LB pair with real IPVS: boots the lab VM (lab/vm/run.sh, qemu TCG) and runs
// lab/active-active.sh: both LBs forward behind ir's neighbour-aware ECMP route, under load (new requests
// + long-lived keep-alive connections), and lb1 is stopped (SIGTERM: path withdrawn, IPVS stays), killed
// (kill -9: the path fence expires) and cut off (both cables pulled). Which LB carried each long-lived
// connection comes from the LBs' IPVS connection tables just before each fault.
import { runInVm, vmHookTimeout, type VmRun } from './vm-run';

// Needs root, qemu, the Debian kernel and dist/ (scripts/setup); run alone: npx jest test/lab/vm-active-active.test.ts
const SCENARIOS = ['lb1-stop', 'lb1-kill', 'lb1-down'];
const VM_TIMEOUT_S = 1500;

interface Kept { kept: number; carried: number; lost: string[] }
interface Scenario {
  name: string; ok: boolean; problems: string[]; notes: string[];
  keptByLb: { lb1: Kept; lb2: Kept; unknown: Kept };
  irFailedAfterS: string; requests: number; failed: number;
}

let run: VmRun<Scenario[]>;

beforeAll(async () => {
  run = await runInVm<Scenario[]>('lab/active-active.sh', VM_TIMEOUT_S, SCENARIOS, 'test-active-active', 'active-active/results.json');
}, vmHookTimeout(VM_TIMEOUT_S));

function scenario(name: string): Scenario {
  const s = run.results?.find((r) => r.name === name);
  if (!s) throw new Error(`no results for scenario ${name} (run.sh exit ${run.rc}); console tail:\n${run.tail()}`);
  return s;
}

describe('lab: active-active LB pair with real IPVS in the VM', () => {
  it('runs every scenario to the end and each passes its own checks', () => {
    for (const n of SCENARIOS) {
      const s = scenario(n);
      console.log(`${n}: ${s.notes.join('; ')}`);
      expect({ name: n, problems: s.problems }).toEqual({ name: n, problems: [] });
    }
    expect(run.rc).toBe(0);
  });

  it.each(SCENARIOS)('%s: the router drops lb1\'s path, and no long-lived connection of either LB is lost', (n) => {
    const s = scenario(n);
    // Every long-lived connection was mapped to an LB and some were on each: the fault touched lb1's, not only lb2's.
    expect(s.keptByLb.lb1.carried).toBeGreaterThan(0);
    expect(s.keptByLb.lb2.carried).toBeGreaterThan(0);
    expect(s.keptByLb.lb2).toEqual({ kept: s.keptByLb.lb2.carried, carried: s.keptByLb.lb2.carried, lost: [] });
    // lb1's move to lb2 (same hash table, sloppy_tcp): kept as well.
    expect(s.keptByLb.lb1.lost).toEqual([]);
    expect(s.keptByLb.unknown.lost).toEqual([]);
    expect(Number(s.irFailedAfterS)).toBeGreaterThan(0);
    expect(s.requests).toBeGreaterThan(100);
    expect(s.failed).toBeLessThanOrEqual(s.requests * 0.05);   // new requests hashed to lb1 while ir still used it (cables pulled)
  });

  it('SIGTERM withdraws the path at once; the router notices within seconds, not after its 30 s defaults', () => {
    expect(Number(scenario('lb1-stop').irFailedAfterS)).toBeLessThan(20);
    // kill -9: nothing withdraws; the path fence silences lb1's ARP pathFenceMs (30 s in the lab) after its last
    // refresh (every 10 s), so 20-30 s after the kill, plus ir's detection.
    expect(Number(scenario('lb1-kill').irFailedAfterS)).toBeGreaterThanOrEqual(18);
  });
});
