// The probe engine at scale (issue 6 part 1): F firewalls × 3 ICMP checks at R Hz through the real
// ProbeEngine, against targets in network namespaces this bench creates and deletes:
//
//   prober ns: br0 10.230.0.1/16, source N = 10.230.2.N, `from <source N> lookup 1000+N: default via fwN`
//   fwN ns:    10.230.1.N (ingress leg) ─ 10.231.N.1      (forwarding)
//   target ns: 10.231.N.2 per firewall, targets 10.232.0.1 and 10.232.0.2 on lo, replies to source N via fwN
//   (bench/probe-targets.ts)
//
// Checks per firewall: path → 10.232.0.1, path2 → 10.232.0.2, leg → fwN's ingress address (all ICMP,
// the costliest kind to spawn). Each variant runs in a fresh node process inside the prober ns; CPU is
// that process's own (process.cpuUsage) plus its ping children's (/proc: live children's utime+stime,
// plus cutime+cstime of the reaped ones). Jitter: time between a job's consecutive observations minus its
// interval (jitter 0 in the bench so any deviation is the engine's or the machine's).
//   npx tsc -p tsconfig.json && node dist/bench/probe-engine.js [--seconds 20] [--firewalls 64] [--json out.json]
//     [--variants package:1,stream:1,stream:10] [--cpu-prof-dir DIR]
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { ProbeEngine } from '../checks/engine';
import type { ProbeJob } from '../checks/jobs';
import { probeFactory, type IcmpEngine, type ProbeFactory, type ProbeFn } from '../checks/probes';
import type { CheckConfig } from '../controller/config';
import { ExecRunner } from '../failover/runner';
import { arg } from './args';
import { createTargets, deleteTargets, targetNames } from './probe-targets';

const TICK_MS = 10; // getconf CLK_TCK = 100 on Debian
const WARMUP_MS = 2000;

interface Variant {
  readonly engine: IcmpEngine;
  readonly rateHz: number;
}

interface VariantResult extends Variant {
  readonly jobs: number;
  readonly seconds: number;
  readonly targetProbesPerS: number;
  readonly probesPerS: number;
  readonly failed: number;
  readonly nodeCpuMs: number;
  /** Of nodeCpuMs, in user mode (JavaScript, libuv); the rest is system calls (pipes, timers, spawn). */
  readonly nodeUserMs: number;
  readonly childCpuMs: number;
  /** Of childCpuMs, in user mode; the rest is the kernel, including forwarding through the bench's namespaces. */
  readonly childUserMs: number;
  /** (node + children) CPU per probe. */
  readonly cpuPerProbeMs: number;
  /** Percent of one core. */
  readonly corePct: number;
  readonly pingProcesses: number;
  /** Observation interval minus the nominal one, ms. */
  readonly lateP50Ms: number;
  readonly lateP99Ms: number;
  readonly lateMaxMs: number;
  readonly rttP50Ms: number;
  readonly rttP99Ms: number;
  readonly rssMb: number;
  readonly loadBefore: number[];
}

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
};

function statFields(pid: number | 'self'): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the ")" of comm start at field 3 (state); ppid is field 4, utime/stime 14/15, cutime/cstime 16/17.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU of this process's children: live ones (utime+stime) plus reaped ones (cutime+cstime), and how many ping. */
function childCpu(): { ms: number; userMs: number; pings: number } {
  const self = statFields('self');
  let ticks = Number(self[13]) + Number(self[14]);
  let user = Number(self[13]);
  let pings = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const f = statFields(Number(d));
      if (Number(f[1]) !== process.pid) continue;
      ticks += Number(f[11]) + Number(f[12]);
      user += Number(f[11]);
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'ping') pings++;
    } catch {
      // exited meanwhile
    }
  }
  return { ms: ticks * TICK_MS, userMs: user * TICK_MS, pings };
}

function benchJobs(firewalls: number, rateHz: number): ProbeJob[] {
  const intervalMs = 1000 / rateHz;
  const timeoutMs = Math.min(intervalMs, 500);
  const jobs: ProbeJob[] = [];
  for (let n = 1; n <= firewalls; n++) {
    const source = `10.230.2.${n}`;
    for (const [name, target] of [['path', '10.232.0.1'], ['path2', '10.232.0.2'], ['leg', `10.230.1.${n}`]] as const) {
      const check: CheckConfig = { name, kind: 'icmp', scope: name === 'leg' ? 'leg' : 'path', from: 'ingress', intervalMs, timeoutMs, rise: 3, fall: 3, jitter: 0 };
      jobs.push({ node: 'bench', role: 'ingress', firewall: `fw${n}`, check, kind: 'icmp', source, target, port: null, key: `fw${n}/${name}` });
    }
  }
  return jobs;
}

/** Runs one variant in this process (inside the prober ns) and returns its figures. */
async function runVariant(v: Variant, firewalls: number, seconds: number): Promise<VariantResult> {
  const jobs = benchJobs(firewalls, v.rateHz);
  const intervalMs = 1000 / v.rateHz;
  const last = new Map<string, number>();
  const late: number[] = [];
  const rtts: number[] = [];
  let measuring = false;
  let count = 0;
  let failed = 0;
  const inner = probeFactory({ icmp: v.engine });
  // Counts every probe's result (RTTs of successes, failures) while measuring.
  const factory: ProbeFactory = Object.assign((job: ProbeJob): ProbeFn => {
    const fn = inner(job);
    return async (j, signal) => {
      const r = await fn(j, signal);
      if (measuring) {
        if (r.ok) rtts.push(r.rttMs);
        else failed++;
      }
      return r;
    };
  }, { close: inner.close });
  const engine = new ProbeEngine({
    jobs,
    probe: factory,
    random: () => 0.5,
    onObservation: (obs) => {
      const now = performance.now();
      const key = `${obs.firewall}/${obs.check}`;
      const prev = last.get(key);
      last.set(key, now);
      if (!measuring) return;
      count++;
      if (prev !== undefined) late.push(now - prev - intervalMs);
    },
  });
  const loadBefore = loadavg();
  engine.start();
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  const cpu0 = process.cpuUsage();
  const child0 = childCpu();
  const t0 = performance.now();
  measuring = true;
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const child1 = childCpu();
  const rssMb = process.memoryUsage().rss / 2 ** 20;
  await engine.stop();
  const nodeCpuMs = (cpu.user + cpu.system) / 1000;
  const childCpuMs = child1.ms - child0.ms;
  return {
    ...v,
    jobs: jobs.length,
    seconds: wallMs / 1000,
    targetProbesPerS: jobs.length * v.rateHz,
    probesPerS: count / (wallMs / 1000),
    failed,
    nodeCpuMs,
    nodeUserMs: cpu.user / 1000,
    childCpuMs,
    childUserMs: child1.userMs - child0.userMs,
    cpuPerProbeMs: (nodeCpuMs + childCpuMs) / count,
    corePct: ((nodeCpuMs + childCpuMs) / wallMs) * 100,
    pingProcesses: child1.pings,
    lateP50Ms: pct(late, 0.5),
    lateP99Ms: pct(late, 0.99),
    lateMaxMs: Math.max(...late),
    rttP50Ms: pct(rtts, 0.5),
    rttP99Ms: pct(rtts, 0.99),
    rssMb,
    loadBefore,
  };
}

// --- topology (bench/probe-targets.ts) ----------------------------------------------------------

const exec = new ExecRunner(30_000);
const names = (firewalls: number) => targetNames(`pe${process.pid}`, firewalls);

// --- main ----------------------------------------------------------------------------------------

const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '–');

function table(results: VariantResult[]): string {
  const rows = [
    '| ICMP engine | rate | probes/s target → done | failed | CPU/probe | total CPU (% of one core) | node (user) / ping (user) CPU | ping procs | late p50 / p99 / max | RTT p50 / p99 | RSS |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    rows.push(`| ${r.engine} | ${r.jobs} jobs × ${r.rateHz} Hz | ${r.targetProbesPerS} → ${f(r.probesPerS, 0)} | ${r.failed} | ${f(r.cpuPerProbeMs, 3)} ms | ${f(r.corePct, 1)} % | ` +
      `${f(r.nodeCpuMs / 1000, 2)} s (${f(r.nodeUserMs / 1000, 2)} s) / ${f(r.childCpuMs / 1000, 2)} s (${f(r.childUserMs / 1000, 2)} s) | ${r.pingProcesses} | ${f(r.lateP50Ms, 1)} / ${f(r.lateP99Ms, 1)} / ${f(r.lateMaxMs, 0)} ms | ${f(r.rttP50Ms, 3)} / ${f(r.rttP99Ms, 3)} ms | ${f(r.rssMb, 0)} MB |`);
  }
  return rows.join('\n');
}

/** --variants package:1,stream:1,stream:10 (engine:rate in Hz); that list is the default. */
function parseVariants(): Variant[] {
  const at = process.argv.indexOf('--variants');
  const text = at >= 0 ? (process.argv[at + 1] ?? '') : 'package:1,stream:1,stream:10';
  return text.split(',').map((v) => {
    const [engine, rate] = v.split(':');
    const rateHz = Number(rate);
    if ((engine !== 'package' && engine !== 'stream') || !(rateHz > 0 && rateHz <= 100)) throw new Error(`--variants: "${v}" is not engine:rate (package or stream, 0 < rate ≤ 100 Hz)`);
    return { engine, rateHz };
  });
}

async function inside(): Promise<void> {
  const spec = JSON.parse(process.argv[process.argv.indexOf('--inside') + 1] ?? '{}') as { variant: Variant; firewalls: number; seconds: number };
  const r = await runVariant(spec.variant, spec.firewalls, spec.seconds);
  process.stdout.write(JSON.stringify(r));
}

async function main(): Promise<void> {
  const seconds = arg('seconds', 20);
  const firewalls = arg('firewalls', 64);
  if (!Number.isInteger(firewalls) || firewalls > 250) throw new Error(`--firewalls must be an integer from 1 to 250, not ${firewalls}`);
  const jsonAt = process.argv.indexOf('--json');
  const jsonOut = jsonAt >= 0 ? process.argv[jsonAt + 1] : undefined;
  // The ping package spawns one process per probe: it cannot do 10 Hz here, so it runs at 1 Hz beside the stream at 1 Hz.
  const variants = parseVariants();
  const profAt = process.argv.indexOf('--cpu-prof-dir');
  const profile = profAt >= 0 ? ['--cpu-prof', '--cpu-prof-dir', process.argv[profAt + 1] ?? '.'] : [];
  console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`${firewalls} firewalls × 3 ICMP checks, ${seconds} s measured per variant after ${WARMUP_MS / 1000} s warm-up`);
  const { prober } = names(firewalls);
  const results: VariantResult[] = [];
  const cleanup = () => void deleteTargets(exec, names(firewalls)).finally(() => process.exit(130));
  process.once('SIGINT', cleanup);
  process.once('SIGTERM', cleanup);
  try {
    const t = performance.now();
    await createTargets(exec, names(firewalls));
    console.log(`topology: ${firewalls + 2} namespaces in ${f((performance.now() - t) / 1000, 1)} s`);
    for (const variant of variants) {
      const spec = JSON.stringify({ variant, firewalls, seconds });
      const { stdout } = await exec.run('ip', ['netns', 'exec', prober, process.execPath, ...profile, __filename, '--inside', spec], { timeoutMs: (seconds + 240) * 1000 });
      const r = JSON.parse(stdout) as VariantResult;
      results.push(r);
      console.log(`${r.engine} @ ${r.rateHz} Hz: ${f(r.probesPerS, 0)} probes/s, ${f(r.cpuPerProbeMs, 3)} ms CPU/probe, ${f(r.corePct, 1)} % of one core, ${r.failed} failed`);
    }
  } finally {
    await deleteTargets(exec, names(firewalls));
  }
  console.log('\n' + table(results));
  const pkg = results.find((r) => r.engine === 'package');
  const s1 = results.find((r) => r.engine === 'stream' && r.rateHz === 1);
  const s10 = results.find((r) => r.engine === 'stream' && r.rateHz === 10);
  if (pkg && s1 && s10) {
    console.log(`\nCPU per probe, ping package ÷ stream at the same rate: ${f(pkg.cpuPerProbeMs / s1.cpuPerProbeMs, 1)}×; ÷ stream at 10 Hz: ${f(pkg.cpuPerProbeMs / s10.cpuPerProbeMs, 1)}×`);
    console.log(`The ping package at ${s10.targetProbesPerS} probes/s would need ${f((pkg.cpuPerProbeMs * s10.targetProbesPerS) / 10, 0)} % of one core; the stream used ${f(s10.corePct, 1)} %.`);
  }
  console.log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(results, null, 2) + '\n');
}

(process.argv.includes('--inside') ? inside() : main()).catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exitCode = 1;
});
