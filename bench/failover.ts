// Failover benchmark on the coordination lab (test/integration/netns-coord.ts): a real 3-member etcd
// in a namespace, `sandwich run` for lb1 and lb2, samplers in lb1/lb2 (VIP address + ARP fence, every
// ~3-4 ms) and in the client (its neighbour entry for the VIP). Per run, from the fault:
//   moved     = the new leader's sampler first shows it holding the VIP (address + live fence element)
//   announced = the client's neighbour entry names the new leader's MAC (its gratuitous ARP arrived)
//   dual      = time both samplers showed a holder at once (target 0)
// Faults: kill -9 of the leader's controller, SIGSTOP of it (SIGCONT after the takeover), manual
// failover (`sandwich failover --to`; timed from the leader's "switchover … requested" event, as the
// CLI's own start-up on a busy host is not failover time), and kill -9 of the new leader 300 ms after
// a manual failover completed (timed from the kill; the former leader takes over).
// Profiles: leadership (lease | fast) × etcd raft flags (fast 10/100 ms | default 100/1000 ms).
// --spikes D1,D2,…: no fault; etcd answers are delayed by D ms for --spike-for-ms every --spike-every-ms
// (bench/delay-proxy.ts between the controllers and etcd) for --observe-s; counts false failovers.
//
//   npx tsc -p tsconfig.json && node dist/bench/failover.js [--runs 20] [--profiles lease-fastetcd,fast-fastetcd] [--faults kill,stop,manual,manual-kill] [--budget-s N] [--write]
//   node dist/bench/failover.js --spikes 200,400,800 --observe-s 60 [--profiles …] [--write]
// --write puts the JSON in docs/failover-bench*.json and the tables in docs/coordination.md.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { dualHolding, monoMs } from '../test/integration/netns-sampler';
import { CoordLab } from '../test/integration/netns-coord';
import { sleep, waitFor } from '../test/system/harness';

type Fault = 'kill -9' | 'SIGSTOP' | 'manual failover' | 'kill -9 right after a manual failover';
/** dualMs: both held for certain; possibleDualMs: also counting fence readings that cannot tell. */
interface Run { fault: Fault; from: string; to: string; movedMs: number; announcedMs: number; dualMs: number; possibleDualMs: number }
interface Profile {
  name: string;
  /** Namespace prefix (≤ 5 chars). */
  ns: string;
  heartbeatMs: number;
  electionMs: number;
  leaseTtlS: number;
  fast?: { renewIntervalMs: number; takeoverAfterMs: number; marginMs: number };
}

const PROFILES: Record<string, Profile> = {
  'lease-fastetcd': { name: 'lease-fastetcd', ns: 'swblf', heartbeatMs: 10, electionMs: 100, leaseTtlS: 1 },
  'lease-defaultetcd': { name: 'lease-defaultetcd', ns: 'swbld', heartbeatMs: 100, electionMs: 1000, leaseTtlS: 2 },
  'fast-fastetcd': { name: 'fast-fastetcd', ns: 'swbff', heartbeatMs: 10, electionMs: 100, leaseTtlS: 2, fast: { renewIntervalMs: 50, takeoverAfterMs: 300, marginMs: 100 } },
  'fast-defaultetcd': { name: 'fast-defaultetcd', ns: 'swbfd', heartbeatMs: 100, electionMs: 1000, leaseTtlS: 2, fast: { renewIntervalMs: 100, takeoverAfterMs: 1500, marginMs: 300 } },
};

function leadershipOf(p: Profile): string {
  return p.fast ? `fast (renew ${p.fast.renewIntervalMs}, takeover ${p.fast.takeoverAfterMs}, margin ${p.fast.marginMs} ms)` : `lease (TTL ${p.leaseTtlS} s)`;
}

function labFor(p: Profile, etcdClientPort?: number): CoordLab {
  return new CoordLab(p.ns, { leaseTtlS: p.leaseTtlS, heartbeatMs: p.heartbeatMs, electionMs: p.electionMs, ...(p.fast ? { fast: p.fast } : {}), ...(etcdClientPort ? { etcdClientPort } : {}) });
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] ?? dflt : dflt;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] ?? NaN;
};

async function steadyLeader(lab: CoordLab, stableMs = 1000): Promise<string> {
  const { value } = await waitFor('a steady VIP holder', () => lab.steadyHolder(stableMs), 60_000, 50);
  return value!;
}

/** First time after t0 the sampler reported `value`. */
function firstChange(changes: { t: number; value: string }[], t0: number, value: string): number | null {
  return changes.find((c) => c.t >= t0 && c.value === value)?.t ?? null;
}

/** A manual failover, not timed: leaves `to` leading and the neighbour entry on it. */
async function failoverTo(lab: CoordLab, from: string, to: string): Promise<void> {
  const r = lab.cli(['failover', '--to', to], to);
  if (!/moved from/.test(r.out)) throw new Error(`failover refused: ${r.out.trim()}`);
  await waitFor(`${to} holds the VIP`, () => lab.holder() === to, 15_000, 5);
  await waitFor(`${from} ready`, () => lab.ready(from), 30_000, 50);
  await sleep(300);
}

async function oneRun(lab: CoordLab, fault: Fault): Promise<Run> {
  let from = await steadyLeader(lab);
  let to = from === 'lb1' ? 'lb2' : 'lb1';
  await waitFor(`${to} ready`, () => lab.ready(to), 30_000, 50);
  if (fault === 'kill -9 right after a manual failover') {
    await failoverTo(lab, from, to);
    [from, to] = [to, from];
  }
  lab.touchNeighbour();
  await waitFor('client neighbour entry on the leader', () => lab.neighbour() === lab.mac(from), 5000, 10);
  const toMac = lab.mac(to);
  let t0 = monoMs();
  if (fault === 'kill -9' || fault === 'kill -9 right after a manual failover') await lab.stop(from, 'SIGKILL');
  else if (fault === 'SIGSTOP') lab.signal(from, 'SIGSTOP');
  else {
    const r = lab.cli(['failover', '--to', to], to);
    if (!/moved from/.test(r.out)) throw new Error(`failover refused: ${r.out.trim()}`);
    const req = lab.events(from).filter((e) => e.event === 'switchover' && /requested by/.test(e.reason)).pop();
    if (!req) throw new Error('no switchover event in the leader log');
    t0 = Date.parse(req.ts!) - lab.wallOffset;
  }
  await waitFor(`${to} holds the VIP`, () => lab.holder() === to || lab.holder() === 'both', 15_000, 5);
  await waitFor('client neighbour entry on the new leader', () => lab.neighbour() === toMac, 10_000, 5);
  const moved = lab.samplers![to as 'lb1' | 'lb2'].changes().find((c) => c.t >= t0 && c.value !== '0')!.t;
  const announced = firstChange(lab.samplers!.neigh.changes(), t0, toMac)!;
  if (fault === 'SIGSTOP') lab.signal(from, 'SIGCONT');
  if (fault !== 'SIGSTOP' && fault !== 'manual failover') lab.start(from);
  await waitFor(`${from} without the VIP address`, () => !lab.hasAddress(from), 15_000, 20);
  const dual = (mode: 'certain' | 'possible') => dualHolding(lab.samplers!.lb1, lab.samplers!.lb2, mode).spans.filter(([, t]) => t >= t0).reduce((s, [a, b]) => s + (b - a), 0);
  return { fault, from, to, movedMs: moved - t0, announcedMs: announced - t0, dualMs: dual('certain'), possibleDualMs: dual('possible') };
}

async function benchProfile(p: Profile, runs: number, deadline: number, faults: Fault[]): Promise<{ profile: Profile; runs: Run[]; skipped: string[]; samplerMaxGapMs: number; samplerGapsOver10: number; samples: number; load: number[] }> {
  const lab = labFor(p);
  const out: Run[] = [];
  const skipped: string[] = [];
  const onSignal = () => void lab.down().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const load0 = loadavg()[0]!;
  try {
    await lab.up();
    lab.start('lb1');
    await steadyLeader(lab);
    lab.start('lb2');
    // Faults interleaved, so a time budget that runs out leaves each with a similar number of runs.
    for (let i = 0; i < runs && monoMs() < deadline; i++) {
      for (const fault of faults) {
        let r: Run;
        try {
          r = await oneRun(lab, fault);
        } catch (e) {
          // Leadership can move on its own on a loaded host between the steady check and the fault: counted, not measured.
          skipped.push(`${fault}: ${e instanceof Error ? e.message : String(e)}`);
          process.stderr.write(`${p.name} ${fault} #${i + 1}: skipped (${String(e).trim()})\n`);
          for (const n of ['lb1', 'lb2']) {
            const c = lab.controllers.get(n);
            if (!c || c.proc.exitCode !== null || c.proc.signalCode !== null) lab.start(n);
            else lab.signal(n, 'SIGCONT');
          }
          continue;
        }
        out.push(r);
        process.stderr.write(`${p.name} ${fault} #${i + 1} (${new Date().toISOString().slice(11, 19)}): moved ${r.movedMs.toFixed(0)} ms, announced ${r.announcedMs.toFixed(0)} ms, dual ${r.dualMs.toFixed(1)} ms (possible ${r.possibleDualMs.toFixed(1)} ms)\n`);
        await sleep(300);
      }
    }
    const sums = [lab.samplers!.lb1.summary(), lab.samplers!.lb2.summary(), lab.samplers!.neigh.summary()];
    return {
      profile: p, runs: out, skipped,
      samplerMaxGapMs: Math.max(...sums.map((s) => s?.maxGapMs ?? NaN)),
      samplerGapsOver10: sums.reduce((n, s) => n + (s?.gapsOver10Ms ?? 0), 0),
      samples: sums.reduce((n, s) => n + (s?.samples ?? 0), 0),
      load: [load0, loadavg()[0]!],
    };
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await lab.down();
  }
}

interface SpikeResult {
  profile: Profile;
  delayMs: number;
  everyMs: number;
  forMs: number;
  observeS: number;
  spikes: number;
  /** The VIP address appeared on a node during the observation (no fault was injected: all are false). */
  falseFailovers: number;
  /** "no longer … leader" events (leadership lost, whoever took it next). */
  leadershipLosses: number;
  noHolderMs: number;
  dualMs: number;
  load: number[];
}

/** Sum of the parts of [t0, t1) covered by none of `intervals`. */
function uncovered(intervals: [number, number][], t0: number, t1: number): number {
  const xs = intervals.map(([a, b]) => [Math.max(a, t0), Math.min(b, t1)] as [number, number]).filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let covered = 0;
  let end = t0;
  for (const [a, b] of xs) {
    if (b <= end) continue;
    covered += b - Math.max(a, end);
    end = b;
  }
  return t1 - t0 - covered;
}

async function spikeProfile(p: Profile, delayMs: number, observeS: number, everyMs: number, forMs: number): Promise<SpikeResult> {
  const lab = labFor(p, 2479);
  let proxy: ReturnType<typeof spawn> | null = null;
  const load0 = loadavg()[0]!;
  try {
    await lab.up();
    const pairs = [1, 2, 3].map((i) => `10.9.0.${i}:2479=10.9.0.${i}:2379`);
    proxy = spawn('nice', ['-n', '-10', 'ip', 'netns', 'exec', lab.ns('etcd'), process.execPath, join(__dirname, 'delay-proxy.js'),
      '--spike-ms', String(delayMs), '--every-ms', String(everyMs), '--for-ms', String(forMs), ...pairs], { stdio: ['ignore', 'pipe', 'inherit'] });
    let spikes = '';
    proxy.stdout!.on('data', (d: Buffer) => (spikes += d.toString()));
    lab.start('lb1');
    await steadyLeader(lab);
    lab.start('lb2');
    await waitFor('lb2 ready', () => lab.ready('lb2'), 60_000, 100);
    const losses = () => ['lb1', 'lb2'].reduce((n, x) => n + lab.events(x).filter((e) => /is no longer ingress leader/.test(e.reason)).length, 0);
    const lost0 = losses();
    const spikes0 = spikes.split('\n').filter(Boolean).length;
    const t0 = monoMs();
    await sleep(observeS * 1000);
    const t1 = monoMs();
    const s = lab.samplers!;
    const falseFailovers = [s.lb1, s.lb2].flatMap((x) => x.addressChanges()).filter((c) => c.t >= t0 && c.t < t1 && c.value === '1').length;
    const held = [...s.lb1.intervals(t1, 'possible'), ...s.lb2.intervals(t1, 'possible')];
    const dual = dualHolding(s.lb1, s.lb2, 'certain', t1).spans.filter(([, b]) => b >= t0).reduce((n, [a, b]) => n + (b - Math.max(a, t0)), 0);
    const r: SpikeResult = {
      profile: p, delayMs, everyMs, forMs, observeS,
      spikes: spikes.split('\n').filter(Boolean).length - spikes0,
      falseFailovers, leadershipLosses: losses() - lost0, noHolderMs: uncovered(held, t0, t1), dualMs: dual, load: [load0, loadavg()[0]!],
    };
    process.stderr.write(`${p.name} spikes of ${delayMs} ms: ${r.spikes} spikes, ${r.falseFailovers} false failover(s), ${r.leadershipLosses} leadership loss(es), no holder ${Math.round(r.noHolderMs)} ms, dual ${r.dualMs.toFixed(1)} ms\n`);
    return r;
  } finally {
    proxy?.kill('SIGKILL');
    await lab.down();
  }
}

function spikeTable(results: SpikeResult[], command: string): string {
  const r0 = results[0];
  const lines = [
    `Measured ${new Date().toISOString().slice(0, 16)}Z on the shared 2-core host (load average ${results.map((r) => r.load.map((l) => l.toFixed(1)).join('→')).join(', ')}). No fault injected; every etcd answer delayed by the spike's delay for ${r0?.forMs ?? '?'} ms every ${r0?.everyMs ?? '?'} ms, for ${r0?.observeS ?? '?'} s per row (bench/delay-proxy.ts). Rerun: \`${command}\``,
    '',
    '| leadership | etcd flags | spike delay | spikes | false failovers | leadership losses | time without a holder | dual-holder time |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    lines.push(`| ${leadershipOf(r.profile)} | ${r.profile.heartbeatMs}/${r.profile.electionMs} ms | ${r.delayMs} ms | ${r.spikes} | ${r.falseFailovers} | ${r.leadershipLosses} | ${Math.round(r.noHolderMs)} ms | ${r.dualMs.toFixed(1)} ms |`);
  }
  return lines.join('\n');
}

function writeSection(marker: string, md: string): void {
  const doc = join(__dirname, '..', '..', 'docs', 'coordination.md');
  const text = readFileSync(doc, 'utf8');
  const start = `<!-- bench:${marker}:start -->`;
  const end = `<!-- bench:${marker}:end -->`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`${doc}: markers ${start} … ${end} not found`);
  writeFileSync(doc, `${text.slice(0, i + start.length)}\n${md}\n${text.slice(j)}`);
}

function table(results: Awaited<ReturnType<typeof benchProfile>>[], command: string): string {
  const lines = [
    `Measured ${new Date().toISOString().slice(0, 16)}Z on the shared 2-core host (load average ${results.map((r) => r.load.map((l) => l.toFixed(1)).join('→')).join(', ')}). Rerun: \`${command}\``,
    '',
    '| leadership | etcd flags | fault | runs | moved p50 | moved p99 | announced p50 | announced p99 | max | dual-holder time (certain / possible) |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    for (const fault of ['kill -9', 'SIGSTOP', 'manual failover', 'kill -9 right after a manual failover'] as Fault[]) {
      const rs = r.runs.filter((x) => x.fault === fault);
      if (rs.length === 0) continue;
      const m = rs.map((x) => x.movedMs);
      const a = rs.map((x) => x.announcedMs);
      const ms = (v: number) => `${Math.round(v)} ms`;
      lines.push(`| ${leadershipOf(r.profile)} | ${r.profile.heartbeatMs}/${r.profile.electionMs} ms | ${fault} | ${rs.length} | ${ms(pct(m, 0.5))} | ${ms(pct(m, 0.99))} | ${ms(pct(a, 0.5))} | ${ms(pct(a, 0.99))} | ${ms(Math.max(...a))} | ${rs.reduce((s, x) => s + x.dualMs, 0).toFixed(1)} / ${rs.reduce((s, x) => s + x.possibleDualMs, 0).toFixed(1)} ms |`);
    }
  }
  lines.push('', `Runs skipped (leadership moved on its own before the fault, or a wait timed out): ${results.map((r) => r.skipped.length).join(', ')}.`);
  lines.push('', `Samplers: ${results.map((r) => `${r.samples} samples, max gap ${r.samplerMaxGapMs.toFixed(1)} ms, ${r.samplerGapsOver10} gaps > 10 ms`).join('; ')}.`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const runs = Number(arg('runs', '20'));
  // Stop starting new rounds after this long (the machine may be shared and slow); 0 = no limit.
  const budgetS = Number(arg('budget-s', '0'));
  const faultArg = arg('faults', 'kill,stop,manual,manual-kill');
  const faults = faultArg.split(',').map((f) => ({ kill: 'kill -9', stop: 'SIGSTOP', manual: 'manual failover', 'manual-kill': 'kill -9 right after a manual failover' } as Record<string, Fault>)[f] ?? null);
  if (faults.some((f) => f === null)) throw new Error(`--faults: use kill, stop, manual, manual-kill (got "${faultArg}")`);
  const chosen = faults as Fault[];
  const deadline = budgetS > 0 ? monoMs() + budgetS * 1000 : Number.POSITIVE_INFINITY;
  const names = arg('profiles', 'lease-fastetcd,fast-fastetcd').split(',');
  for (const n of names) if (!PROFILES[n]) throw new Error(`unknown profile "${n}" (known: ${Object.keys(PROFILES).join(', ')})`);
  const spikeArg = arg('spikes', '');
  if (spikeArg) {
    const delays = spikeArg.split(',').map(Number);
    if (delays.some((d) => !Number.isFinite(d) || d <= 0)) throw new Error(`--spikes: delays in ms, e.g. 200,400 (got "${spikeArg}")`);
    const observeS = Number(arg('observe-s', '60'));
    const everyMs = Number(arg('spike-every-ms', '5000'));
    const forMs = Number(arg('spike-for-ms', '1000'));
    const results: SpikeResult[] = [];
    for (const n of names) for (const d of delays) results.push(await spikeProfile(PROFILES[n]!, d, observeS, everyMs, forMs));
    const command = `npx tsc -p tsconfig.json && node dist/bench/failover.js --spikes ${spikeArg} --observe-s ${observeS} --spike-every-ms ${everyMs} --spike-for-ms ${forMs} --profiles ${names.join(',')} --write`;
    const md = spikeTable(results, command);
    console.log(md);
    if (process.argv.includes('--write')) {
      writeFileSync(join(__dirname, '..', '..', 'docs', 'failover-spikes.json'), JSON.stringify({ command, results }, null, 2) + '\n');
      writeSection('spikes', md);
    }
    return;
  }
  const results = [];
  for (const n of names) {
    const p = PROFILES[n];
    if (!p) throw new Error(`unknown profile "${n}" (known: ${Object.keys(PROFILES).join(', ')})`);
    results.push(await benchProfile(p, runs, deadline, chosen));
  }
  const command = `npx tsc -p tsconfig.json && node dist/bench/failover.js --runs ${runs} --profiles ${names.join(',')} --faults ${faultArg}${budgetS > 0 ? ` --budget-s ${budgetS}` : ''} --write`;
  const md = table(results, command);
  console.log(md);
  if (process.argv.includes('--write')) {
    writeFileSync(join(__dirname, '..', '..', 'docs', 'failover-bench.json'), JSON.stringify({ command, results }, null, 2) + '\n');
    writeSection('failover', md);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/failover: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
