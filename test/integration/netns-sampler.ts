// Samplers that run inside the namespaces (python3 via `ip netns exec`), on CLOCK_MONOTONIC (the
// clock of process.hrtime, so test timestamps compare directly):
//  - holder: is this namespace a VIP holder? = the VIP is a local address (/proc/net/fib_trie) AND the
//    ARP fence lets it be announced (no fence table, or its element alive). The address is sampled
//    every ~3-4 ms; the fence (nft, ~35 ms a read) in a thread, whose reading of the element's expiry is
//    used until it is due (value 'u' once only the reading's upper bound says alive) (a refresh only moves the expiry later, so this over-estimates holding). An
//    expired element is re-read every ~55 ms: a node could be under-counted for that long only if its
//    element came back after expiring, which only a fresh install (after a new election) does.
//  - neigh: the client's neighbour entry for the VIP (/proc/net/arp), same period.
// Each writes a line per change ("C <t_ms> <value>"; holders also "A <t_ms> 0|1" when the address
// comes or goes, whatever the fence), and a summary ("S <t_ms> <samples> <max gap ms>
// <gaps over 10 ms>") every second and on SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

const SCRIPT = String.raw`
import os, sys, time, subprocess, re, threading, signal
mode, vip, table, out = sys.argv[1:5]
try:
    # Real-time for the sampling loop only: nft children must not starve etcd and the controllers.
    os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(10))
except Exception:
    pass
f = open(out, 'w', buffering=1)
now = lambda: time.monotonic() * 1000.0
state = {'fence': 'unknown', 'until': 0.0, 'low': 0.0, 'local': False}
def parse_ms(s):
    total = 0.0
    for n, u in re.findall(r'([0-9.]+)(ms|s|m|h|d)', s):
        total += float(n) * {'ms': 1, 's': 1000, 'm': 60000, 'h': 3600000, 'd': 86400000}[u]
    return total
def fence_loop():
    while True:
        if not state['local']:
            # No address, nothing to fence: only keep the reading fresh enough for a takeover.
            state['fence'] = 'unknown'
            time.sleep(0.002)
            continue
        t0 = now()
        r = subprocess.run(['nft', 'list', 'set', 'arp', table, 'valid'], capture_output=True, text=True)
        t = now()
        if r.returncode != 0:
            state['fence'] = 'absent'
        else:
            m = re.search(re.escape(vip) + r' timeout \S+ expires (\S+)', r.stdout)
            if m:
                # nft read the kernel somewhere in [t0, t]: the element expires in [t0 + e, t + e].
                state['low'] = t0 + parse_ms(m.group(1))
                state['until'] = t + parse_ms(m.group(1))
                state['fence'] = 'alive'
            else:
                state['fence'] = 'expired'
        if state['fence'] == 'alive':
            time.sleep(max(0.0, (state['until'] - now() - 80) / 1000.0))
        elif state['fence'] == 'absent':
            time.sleep(0.05)
        else:
            time.sleep(0.02)
def local():
    with open('/proc/net/fib_trie') as t:
        data = t.read()
    key = '|-- ' + vip + '\n'
    i = data.find(key)
    while i >= 0:
        j = data.find('|--', i + len(key))
        if '/32 host LOCAL' in data[i:(j if j >= 0 else len(data))]:
            return True
        i = data.find(key, i + 1)
    return False
def neigh():
    with open('/proc/net/arp') as a:
        for line in a.read().splitlines()[1:]:
            p = line.split()
            if len(p) >= 4 and p[0] == vip and p[2] != '0x0':
                return p[3]
    return '-'
def sample():
    if mode == 'neigh':
        return neigh()
    state['local'] = local()
    if not state['local']:
        return '0'
    t = now()
    if state['fence'] == 'expired' or (state['fence'] == 'alive' and t >= state['until']):
        return '0'
    if state['fence'] == 'alive' and t >= state['low']:
        return 'u'
    return '1'
count = 0; maxgap = 0.0; over = 0; last = None; value = None; addr = None; lastsum = now()
def summary(*_):
    f.write('S %.3f %d %.3f %d\n' % (now(), count, maxgap, over))
def stop(*_):
    summary(); f.flush(); os._exit(0)
signal.signal(signal.SIGTERM, stop)
if mode == 'holder':
    threading.Thread(target=fence_loop, daemon=True).start()
while True:
    v = sample(); t = now()
    if last is not None:
        g = t - last
        if g > maxgap: maxgap = g
        if g > 10: over += 1
    last = t; count += 1
    if v != value:
        f.write('C %.3f %s\n' % (t, v)); value = v
    if mode == 'holder' and state['local'] != addr:
        addr = state['local']; f.write('A %.3f %d\n' % (t, 1 if addr else 0))
    if t - lastsum > 1000:
        summary(); lastsum = t
    time.sleep(0.003)
`;

/** CLOCK_MONOTONIC in ms (the samplers' clock). */
export function monoMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export interface Change {
  t: number;
  value: string;
}
export interface SamplerSummary {
  t: number;
  samples: number;
  maxGapMs: number;
  gapsOver10Ms: number;
}

export class Sampler {
  private proc: ChildProcess;
  constructor(readonly ns: string, readonly mode: 'holder' | 'neigh', vip: string, readonly file: string, fenceTable = 'sandwich_fence') {
    this.proc = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', SCRIPT, mode, vip, fenceTable, file], { stdio: 'ignore' });
  }

  private lines(): string[] {
    try {
      return readFileSync(this.file, 'utf8').split('\n');
    } catch {
      return [];
    }
  }

  changes(): Change[] {
    return this.lines().filter((l) => l.startsWith('C ')).map((l) => {
      const [, t, value] = l.split(' ');
      return { t: Number(t), value: value ?? '' };
    });
  }

  /** Holder samplers: when the VIP address came (1) or went (0), regardless of the fence. */
  addressChanges(): Change[] {
    return this.lines().filter((l) => l.startsWith('A ')).map((l) => {
      const [, t, value] = l.split(' ');
      return { t: Number(t), value: value ?? '' };
    });
  }

  summary(): SamplerSummary | null {
    const s = this.lines().filter((l) => l.startsWith('S ')).pop();
    if (!s) return null;
    const [, t, n, g, o] = s.split(' ');
    return { t: Number(t), samples: Number(n), maxGapMs: Number(g), gapsOver10Ms: Number(o) };
  }

  /** Latest value (null before the first sample). */
  current(): string | null {
    return this.changes().pop()?.value ?? null;
  }

  /**
   * Holding intervals [from, to) from the change lines; an open interval ends at `end`. 'certain':
   * the fence element was alive for sure; 'possible': also while the nft reading cannot tell ('u').
   */
  intervals(end = monoMs(), mode: 'certain' | 'possible' = 'possible'): [number, number][] {
    const out: [number, number][] = [];
    let from: number | null = null;
    const holds = (v: string) => v === '1' || (mode === 'possible' && v === 'u');
    for (const c of this.changes()) {
      if (holds(c.value) && from === null) from = c.t;
      if (!holds(c.value) && from !== null) {
        out.push([from, c.t]);
        from = null;
      }
    }
    if (from !== null) out.push([from, end]);
    return out;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }
}

/**
 * Total time (ms) during which two samplers both reported holding, and the overlapping spans.
 * 'possible' counts a fence element as alive until the latest time its nft reading allows (nft can be
 * descheduled for a while between reading the kernel and returning on a loaded host).
 */
export function dualHolding(a: Sampler, b: Sampler, mode: 'certain' | 'possible', end = monoMs()): { totalMs: number; spans: [number, number][] } {
  const spans: [number, number][] = [];
  for (const [a0, a1] of a.intervals(end, mode)) {
    for (const [b0, b1] of b.intervals(end, mode)) {
      const from = Math.max(a0, b0);
      const to = Math.min(a1, b1);
      if (to > from) spans.push([from, to]);
    }
  }
  return { totalMs: spans.reduce((s, [f, t]) => s + (t - f), 0), spans };
}
