// Several services and IPv6 with real IPVS: boots the lab VM (lab/vm/run.sh, qemu TCG) and runs
// lab/services.sh (dual-stack lab, four fwmark services: web tcp/80, web6, https tcp/443 in both
// families, echo udp/7 in both families) under load with three phases: fw1 drops only tcp/443,
// a manual failover (IPv4 and IPv6 VIPs, unsolicited neighbour advertisements), fw1 black-holed.
// The other phases (a second sandwich's prefix, leader kill -9) are in `lab/vm/run.sh lab/services.sh`
// (docs/lab-results.md); prefix isolation is also test/integration/store-prefixes.test.ts.
import { runInVm, vmHookTimeout, type VmRun } from './vm-run';

// Needs root, qemu, the Debian kernel and dist/ (scripts/setup); run alone: npx jest test/lab/vm-services.test.ts
const PHASES = ['https-fw1', 'failover', 'fw1-blackhole'];
const STREAMS = ['web', 'web6', 'https', 'https6', 'echo', 'echo6'];
const VM_TIMEOUT_S = 1500;

interface Phase {
  name: string; requests: number; failed: number; recoverySeconds: number | null;
  longAlive: number; longLost: number; dualVipSeconds: number; vipHolderAtEnd: string[];
}
interface Stream { stream: string; proto: string; family: string; requests: number; failed: number; dualVipSeconds: number; phases: Phase[] }
interface Results { ok: boolean; problems: string[]; notes: string[]; streams: Stream[] }

let run: VmRun<Results>;

beforeAll(async () => {
  run = await runInVm<Results>('lab/services.sh', VM_TIMEOUT_S, PHASES, 'test-services', 'services/results.json');
}, vmHookTimeout(VM_TIMEOUT_S));

function phaseOf(stream: string, phase: string): Phase {
  const s = run.results?.streams.find((x) => x.stream === stream);
  if (!s) throw new Error(`no results for stream ${stream} (run.sh exit ${run.rc}); console tail:\n${run.tail()}`);
  const p = s.phases.find((x) => x.name === phase);
  if (!p) throw new Error(`stream ${stream} has no phase ${phase} (phases: ${s.phases.map((x) => x.name).join(', ')})`);
  return p;
}

describe('lab: several services and IPv6 with real IPVS in the VM', () => {
  it('runs every phase to the end, passes its own checks, and never has two LBs answering for a VIP (ARP or ND)', () => {
    if (!run.results) throw new Error(`no results (run.sh exit ${run.rc}); console tail:\n${run.tail()}`);
    console.log(run.results.notes.join('\n'));
    expect(run.results.problems).toEqual([]);
    expect(run.results.streams.map((s) => s.stream)).toEqual(STREAMS);
    for (const s of run.results.streams) expect({ stream: s.stream, dualVipSeconds: s.dualVipSeconds }).toEqual({ stream: s.stream, dualVipSeconds: 0 });
    expect(run.results.ok).toBe(true);
    expect(run.rc).toBe(0);
  });

  it('fw1 dropping only tcp/443 costs https and https6 a few requests and the other services none', () => {
    for (const n of ['web', 'web6', 'echo', 'echo6']) {
      for (const ph of ['https-fw1', 'https-repair']) expect({ n, ph, failed: phaseOf(n, ph).failed }).toEqual({ n, ph, failed: 0 });
    }
    for (const n of ['https', 'https6']) {
      const f = phaseOf(n, 'https-fw1');
      expect(f.requests).toBeGreaterThan(10);
      expect(f.recoverySeconds).not.toBeNull();
      expect(f.failed).toBeLessThan(f.requests / 2);
    }
  });

  it('manual failover moves the IPv4 and IPv6 VIPs with no failed request in any service', () => {
    const from = phaseOf('web', 'https-repair').vipHolderAtEnd;
    expect(from).toHaveLength(1);
    const to = from[0] === 'lb1' ? 'lb2' : 'lb1';
    for (const n of STREAMS) {
      const f = phaseOf(n, 'failover');
      expect({ n, failed: f.failed, longLost: f.longLost, holder: f.vipHolderAtEnd }).toEqual({ n, failed: 0, longLost: 0, holder: [to] });
    }
  });

  it('fw1 black-holed: every service in both families recovers through fw2, and nothing fails after the repair', () => {
    for (const n of STREAMS) {
      const f = phaseOf(n, 'fw1-blackhole');
      expect(f.recoverySeconds).not.toBeNull();
      expect(f.recoverySeconds!).toBeLessThan(60);
      expect(f.failed).toBeLessThan(f.requests / 2);
      expect({ n, repairFailed: phaseOf(n, 'fw1-repair').failed }).toEqual({ n, repairFailed: 0 });
    }
  });
});
