// Controller RSS under load (issue 6 part 2: "Controller RSS under that load (goal ≤ 80 MB)"): the memory of a
// real `sandwich run` process (bin/sandwich, the built dist) doing the whole job, not of a bench process:
//
//   - an egress node (er1) with F firewalls, 3 ICMP checks per firewall at 10 Hz (icmpEngine: stream) against
//     the probe engine bench's targets in network namespaces (bench/probe-targets.ts, without the prober's
//     routing: the controller adds its 64 source addresses, rules and tables itself, in the prober ns);
//   - a real one-member etcd (Debian's, test/integration/etcd-cluster.ts) on the prober ns's loopback, temp dir;
//   - the only node of its role and no ingress node, so it leads and decides: observations, decisions and the
//     desired state go through etcd, and its reconciles change the kernel (egress tables re-pointed, rules,
//     conntrack flushes by mark);
//   - every --fault-every seconds one firewall stops forwarding for --fault-hold seconds (`iptables -I FORWARD
//     -j DROP` in its ns): its path checks fail, it is taken down, its table re-pointed, then back after hold-down.
//
// Sampled every second: VmRSS and VmHWM from /proc/<pid>/status; every 5 s the controller's /metrics (unix
// socket API): heap, probe results, reconcile passes. Events come from its JSON-lines log. Baseline in the same
// run: a bare `node -e ''` and `sandwich --version` (VmRSS/VmHWM read at their exit by a --require hook).
//   npx tsc -p tsconfig.json && node dist/bench/controller-rss.js [--seconds 60] [--firewalls 64] [--warmup 10]
//     [--fault-every 10] [--fault-hold 4] [--json out.json] [--keep DIR] [--node-flags "--max-semi-space-size=4"]
//     [--heap-snapshots DIR] [--alloc-profile FILE]
// The bench re-runs itself inside the prober ns (`--inside`), where etcd and the controller live.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { readEvents, type SandwichEvent } from '../controller/events';
import { ExecRunner } from '../failover/runner';
import { EtcdCluster } from '../test/integration/etcd-cluster';
import { arg, strArg } from './args';
import { createTargets, deleteTargets, fwLegAddress, proberSource, targetNames, TARGETS, type TargetNames } from './probe-targets';

const ROOT = join(__dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'sandwich');
const MB = 2 ** 20;
const RATE_HZ = 10;
const SAMPLE_MS = 1000;
const SCRAPE_EVERY = 5;

interface Spec {
  readonly firewalls: number;
  readonly seconds: number;
  readonly warmupS: number;
  readonly faultEveryS: number;
  readonly faultHoldS: number;
  readonly names: TargetNames;
  readonly heapSnapshots: string | null;
  /** Extra Node.js flags for the controller (experiments: --max-semi-space-size=…). */
  readonly nodeFlags: string[];
  /** Copy the controller's log and events here before the temp dir goes. */
  readonly keep: string | null;
  /** Write a sampling allocation profile of the controller here (collected objects included). */
  readonly allocProfile: string | null;
}

interface Sample {
  /** Seconds since the controller started. */
  readonly t: number;
  readonly rssKb: number;
  readonly hwmKb: number;
  readonly measuring: boolean;
}

interface Scrape {
  readonly t: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly probes: number;
  readonly failures: number;
  readonly reconciles: number;
  readonly reconcileSeconds: number;
  readonly isLeader: boolean;
  readonly revision: number;
}

interface InsideResult {
  readonly pid: number;
  readonly startS: number;
  readonly samples: Sample[];
  readonly scrapes: Scrape[];
  readonly measuredS: number;
  readonly faults: { firewall: string; at: number; restoredAt: number | null }[];
  readonly events: Record<string, number>;
  readonly kernelByDriver: Record<string, number>;
  readonly verdicts: string[];
  readonly warnings: string[];
  readonly pings: { count: number; rssKb: number; pssKb: number };
  readonly ctlPssKb: number;
  readonly exitCode: number | null;
  /** Controller CPU (user + system, ms) over the measured window, and its ping children's. */
  readonly cpuMs: number;
  /** Full GCs (--trace-gc): seconds since the controller's start, heap used before → after, committed after (MB). */
  readonly markCompacts: { t: number; before: number; after: number; committed: number }[];
  readonly etcdVersion: string;
  readonly loadBefore: number[];
  readonly loadAfter: number[];
}

// --- small helpers -------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A deadline for Promise.race that does not keep the process alive once the race is won. */
const deadline = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

/** VmRSS and VmHWM (kB) of a process, or null once it is gone. */
function memOf(pid: number | 'self'): { rssKb: number; hwmKb: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
    return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
  } catch {
    return null;
  }
}

/** Children of a process with a given comm, their summed VmRSS and Pss (kB; Pss shares shared pages out). */
function childrenOf(ppid: number, comm: string): { count: number; rssKb: number; pssKb: number } {
  let count = 0;
  let rssKb = 0;
  let pssKb = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) !== ppid || readFileSync(`/proc/${d}/comm`, 'utf8').trim() !== comm) continue;
      count++;
      rssKb += memOf(Number(d))?.rssKb ?? 0;
      pssKb += Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${d}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
    } catch {
      // exited meanwhile
    }
  }
  return { count, rssKb, pssKb };
}

/** utime + stime of a process in ms (getconf CLK_TCK = 100 on Debian), or NaN once it is gone. */
function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

/** `--trace-gc` lines of full GCs: "[pid:0x…]   51234 ms: Mark-Compact 105.2 (129.3) -> 40.1 (120.0) MB, …". */
function parseMarkCompacts(log: string): InsideResult['markCompacts'] {
  const out: InsideResult['markCompacts'] = [];
  for (const m of log.matchAll(/^\[\d+:0x[0-9a-f]+\]\s+(\d+) ms: Mark-Compact(?: \(reduce\))? ([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB/gm)) {
    out.push({ t: Number(m[1]) / 1000, before: Number(m[2]), after: Number(m[4]), committed: Number(m[5]) });
  }
  return out;
}

// --- the controller's config and metrics --------------------------------------------------------

function controllerConfig(spec: Spec, dir: string, endpoint: string): string {
  const fws = Array.from({ length: spec.firewalls }, (_, i) => i + 1);
  const check = { kind: 'icmp', from: 'egress', intervalMs: 1000 / RATE_HZ, timeoutMs: 90, rise: 3, fall: 3, icmpEngine: 'stream' };
  return stringify({
    cluster: 'rss',
    store: { kind: 'etcd', endpoints: [endpoint], callTimeoutMs: 1000, leaseTtlS: 2 },
    // The defaults, but a 2 s hold-down so each fault ends with a failback inside the run.
    timing: { holdDownMs: 2000 },
    nodes: [{
      name: 'er1', role: 'egress', interfaces: { firewall: 'br0', server: 'srv0' },
      probe: { interface: 'firewall', tableBase: 1001, rulePriority: 1000, sources: Object.fromEntries(fws.map((n) => [`fw${n}`, proberSource(n)])) },
    }],
    firewalls: fws.map((n) => ({
      name: `fw${n}`, ingressAddress: `10.231.${n}.1`, egressAddress: fwLegAddress(n), egressMac: `02:00:00:00:${n.toString(16).padStart(2, '0')}:0e`, mark: n, table: 2000 + n,
    })),
    checks: [
      { name: 'path', scope: 'path', target: TARGETS[0], ...check },
      { name: 'path2', scope: 'path', target: TARGETS[1], ...check },
      { name: 'leg', scope: 'leg', ...check },
    ],
    egress: { routes: ['default'] },
    events: { file: join(dir, 'events.log') },
    runtimeDir: join(dir, 'run'),
    api: { listen: `unix:${join(dir, 'api.sock')}` },
  });
}

function getMetrics(socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: '/metrics', timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`GET /metrics: HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('GET /metrics: timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Sum of a metric's samples whose label text contains every `want` fragment. */
function metric(text: string, name: string, ...want: string[]): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (want.every((w) => line.includes(w))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

function parseScrape(text: string, t: number): Scrape {
  return {
    t,
    heapUsed: metric(text, 'nodejs_heap_size_used_bytes'),
    heapTotal: metric(text, 'nodejs_heap_size_total_bytes'),
    external: metric(text, 'nodejs_external_memory_bytes'),
    probes: metric(text, 'sandwich_check_results_total'),
    failures: metric(text, 'sandwich_check_results_total', 'result="failure"'),
    reconciles: metric(text, 'sandwich_reconcile_duration_seconds_count'),
    reconcileSeconds: metric(text, 'sandwich_reconcile_duration_seconds_sum'),
    isLeader: metric(text, 'sandwich_leader', 'role="egress"') === 1,
    revision: metric(text, 'sandwich_desired_revision'),
  };
}

// --- inside the prober ns: etcd, the controller, faults, samples --------------------------------

async function inside(spec: Spec): Promise<InsideResult> {
  const exec = new ExecRunner(10_000);
  const dir = mkdtempSync(join(tmpdir(), 'sandwich-rss-'));
  const socket = join(dir, 'api.sock');
  const eventsFile = join(dir, 'events.log');
  let etcd: EtcdCluster | null = null;
  let ctl: ChildProcess | null = null;
  let exitCode: number | null = null;
  const faulted = new Set<string>();
  const ctlExited = () => ctl === null || ctl.exitCode !== null || ctl.signalCode !== null;

  const stopController = async (): Promise<void> => {
    const p = ctl;
    if (!p || ctlExited()) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    if (await Promise.race([exited.then(() => true), deadline(15_000).then(() => false)])) return;
    p.kill('SIGKILL');
    await exited;
  };
  const restore = async (ns: string): Promise<void> => {
    await exec.run('ip', ['netns', 'exec', ns, 'iptables', '-D', 'FORWARD', '-j', 'DROP']).catch(() => undefined);
    faulted.delete(ns);
  };
  let cleaned: Promise<void> | null = null;
  const cleanup = () => (cleaned ??= (async () => {
    await stopController();
    for (const ns of [...faulted]) await restore(ns);
    await etcd?.destroy().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  })());
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);

  try {
    const loadBefore = loadavg();
    // etcd's default raft timing (heartbeat 100 ms, election 1 s), as a production member would run.
    etcd = await EtcdCluster.start({ size: 1, heartbeatMs: 100, electionMs: 1000 });
    const etcdVersion = (await exec.run('etcd', ['--version'])).stdout.split('\n')[0] ?? '';
    const configFile = join(dir, 'config.yaml');
    writeFileSync(configFile, controllerConfig(spec, dir, etcd.endpoints[0]!));
    const check = await exec.run(process.execPath, [BIN, 'check-config', configFile]).catch((e: Error) => e);
    if (check instanceof Error) throw new Error(`the bench's config is refused: ${check.message}`);

    const log = openSync(join(dir, 'controller.log'), 'a');
    // --trace-gc: one line per GC in the controller's log, for the live heap after each full GC (cheap).
    const flags = ['--trace-gc', ...spec.nodeFlags, ...(spec.heapSnapshots ? ['--heapsnapshot-signal=SIGUSR2'] : [])];
    if (spec.allocProfile) {
      // V8's sampling heap profiler through the inspector, in the controller's own process: every allocation
      // site, garbage included (what fills the heap between GCs), written when the controller exits.
      const preload = join(dir, 'alloc-profile.js');
      writeFileSync(preload, [
        "const s = new (require('node:inspector').Session)();",
        's.connect();',
        "s.post('HeapProfiler.startSampling', { samplingInterval: 32768, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });",
        `process.on('exit', () => s.post('HeapProfiler.stopSampling', (e, r) => { if (!e) require('node:fs').writeFileSync(${JSON.stringify(spec.allocProfile)}, JSON.stringify(r.profile)); }));`,
      ].join('\n') + '\n');
      flags.push('--require', preload);
    }
    if (spec.heapSnapshots) mkdirSync(spec.heapSnapshots, { recursive: true });
    const started = performance.now();
    ctl = spawn(process.execPath, [...flags, BIN, 'run', '--node', 'er1', '--config', configFile], {
      stdio: ['ignore', log, log], cwd: spec.heapSnapshots ?? dir, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
    });
    closeSync(log);
    ctl.once('exit', (code, signal) => (exitCode = code ?? (signal ? 128 : null)));
    const pid = ctl.pid!;
    const since = () => (performance.now() - started) / 1000;
    const samples: Sample[] = [];
    const scrapes: Scrape[] = [];
    let measuring = false;
    const sample = () => {
      const m = memOf(pid);
      if (m) samples.push({ t: since(), ...m, measuring });
    };

    // Ready: leader of its role, a desired state written and applied (the first reconcile built the tables).
    const readyBy = performance.now() + 90_000;
    let ready: Scrape | null = null;
    while (!ready) {
      if (ctlExited()) throw new Error(`the controller exited (code ${exitCode}); see its log:\n${readFileSync(join(dir, 'controller.log'), 'utf8').slice(-2000)}`);
      if (performance.now() > readyBy) throw new Error('the controller did not lead and apply a desired state within 90 s');
      sample();
      const s = await getMetrics(socket).then((t) => parseScrape(t, since())).catch(() => null);
      if (s?.isLeader && s.revision > 0) ready = s;
      else await sleep(SAMPLE_MS);
    }
    const startS = since();
    process.stderr.write(`controller pid ${pid}: leader, desired revision ${ready.revision} applied after ${f(startS)} s; warm-up ${spec.warmupS} s\n`);

    // Warm-up, then the measured window: one sample a second, a scrape every SCRAPE_EVERY samples, faults on schedule.
    const faults: InsideResult['faults'] = [];
    const warmEnd = startS + spec.warmupS;
    const end = warmEnd + spec.seconds;
    let tick = 0;
    let nextFault = warmEnd + 3;
    let faultN = 0;
    let open: { ns: string; until: number; record: InsideResult['faults'][number] } | null = null;
    let snapshotsTaken = 0;
    let cpu0 = NaN;
    while (since() < end) {
      if (ctlExited()) throw new Error(`the controller exited during the run (code ${exitCode})`);
      const t = since();
      if (!measuring && t >= warmEnd) {
        measuring = true;
        cpu0 = cpuMsOf(pid);
        if (spec.heapSnapshots && snapshotsTaken++ === 0) ctl.kill('SIGUSR2');
      }
      sample();
      if (tick++ % SCRAPE_EVERY === 0 || (measuring && scrapes.every((s) => s.t < warmEnd))) {
        const s = await getMetrics(socket).then((x) => parseScrape(x, since())).catch(() => null);
        if (s) scrapes.push(s);
      }
      if (open && t >= open.until) {
        await restore(open.ns);
        open.record.restoredAt = since();
        open = null;
      }
      if (measuring && !open && t >= nextFault && t + spec.faultHoldS < end) {
        const n = (faultN++ % spec.firewalls) + 1;
        const ns = spec.names.fws[n - 1]!;
        await exec.run('ip', ['netns', 'exec', ns, 'iptables', '-I', 'FORWARD', '1', '-j', 'DROP']);
        faulted.add(ns);
        const record = { firewall: `fw${n}`, at: since(), restoredAt: null };
        faults.push(record);
        open = { ns, until: since() + spec.faultHoldS, record };
        nextFault += spec.faultEveryS;
      }
      const next = startS + tick * (SAMPLE_MS / 1000);
      await sleep(Math.max(0, (next - since()) * 1000));
    }
    if (open) {
      await restore(open.ns);
      open.record.restoredAt = since();
    }
    sample();
    const last = await getMetrics(socket).then((x) => parseScrape(x, since())).catch(() => null);
    if (last) scrapes.push(last);
    if (spec.heapSnapshots) {
      ctl.kill('SIGUSR2');
      await sleep(5000);
    }
    const pings = childrenOf(pid, 'ping');
    const ctlPssKb = Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? NaN);
    const cpuMs = cpuMsOf(pid) - cpu0;
    const measuredFrom = Date.now() - (since() - warmEnd) * 1000;
    await stopController();
    const ctlLog = readFileSync(join(dir, 'controller.log'), 'utf8');
    if (spec.keep) {
      mkdirSync(spec.keep, { recursive: true });
      writeFileSync(join(spec.keep, 'controller.log'), ctlLog);
      writeFileSync(join(spec.keep, 'events.log'), readFileSync(eventsFile));
      writeFileSync(join(spec.keep, 'config.yaml'), readFileSync(configFile));
    }
    const all = readEvents(eventsFile);
    const inWindow = all.filter((e) => Date.parse(e.ts ?? '') >= measuredFrom);
    const countBy = (xs: SandwichEvent[], key: (e: SandwichEvent) => string | null) => {
      const out: Record<string, number> = {};
      for (const e of xs) {
        const k = key(e);
        if (k !== null) out[k] = (out[k] ?? 0) + 1;
      }
      return out;
    };
    return {
      pid, startS, samples, scrapes, measuredS: spec.seconds, faults,
      events: countBy(inWindow, (e) => e.event),
      kernelByDriver: countBy(inWindow, (e) => (e.event === 'kernel' || e.event === 'drift') && typeof e.driver === 'string' ? `${e.event} ${e.driver}` : null),
      verdicts: inWindow.filter((e) => e.event === 'verdict').map((e) => `${e.ts?.slice(11, 23) ?? ''} ${e.reason}`),
      warnings: all.filter((e) => e.level === 'warn' || e.level === 'error').map((e) => `${e.ts?.slice(11, 23) ?? ''} ${e.event}: ${e.reason}`).slice(0, 20),
      pings, ctlPssKb, exitCode, cpuMs, markCompacts: parseMarkCompacts(ctlLog), etcdVersion, loadBefore, loadAfter: loadavg(),
    };
  } finally {
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGINT', onSignal);
    await cleanup();
  }
}

// --- outside: baselines, namespaces, the report --------------------------------------------------

/** VmRSS / VmHWM (kB) of `node [args]` read by a --require hook as it exits; the median of `runs`. */
async function exitMemory(dir: string, args: string[], runs = 3): Promise<{ rssKb: number; hwmKb: number }> {
  const hook = join(dir, 'rss-at-exit.js');
  const out = join(dir, 'status');
  writeFileSync(hook, `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(out)}, require('fs').readFileSync('/proc/self/status')));\n`);
  const exec = new ExecRunner(30_000);
  const rss: number[] = [];
  const hwm: number[] = [];
  for (let i = 0; i < runs; i++) {
    rmSync(out, { force: true });
    await exec.run(process.execPath, ['--require', hook, ...args]);
    const s = readFileSync(out, 'utf8');
    rss.push(Number(/^VmRSS:\s+(\d+)/m.exec(s)?.[1]));
    hwm.push(Number(/^VmHWM:\s+(\d+)/m.exec(s)?.[1]));
  }
  return { rssKb: pct(rss, 0.5), hwmKb: pct(hwm, 0.5) };
}

interface AllocNode {
  readonly callFrame: { functionName: string; url: string; lineNumber: number };
  readonly selfSize: number;
  readonly children: AllocNode[];
}

/** Allocation sites of the controller's whole life (sampled): the top by own size, and its own code by inclusive size. */
function allocationReport(file: string, startS: number): void {
  const head = (JSON.parse(readFileSync(file, 'utf8')) as { head: AllocNode }).head;
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const name = (n: AllocNode) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${n.callFrame.lineNumber + 1}`;
  const walk = (n: AllocNode, stack: Set<string>): number => {
    const k = name(n);
    self.set(k, (self.get(k) ?? 0) + n.selfSize);
    const inner = new Set(stack).add(k);
    const total = n.selfSize + n.children.reduce((a, c) => a + walk(c, inner), 0);
    if (!stack.has(k)) incl.set(k, (incl.get(k) ?? 0) + total);
    return total;
  };
  const all = walk(head, new Set());
  const top = (m: Map<string, number>, n: number, keep: (k: string) => boolean) => [...m].filter(([k]) => keep(k)).sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([k, v]) => `  ${f((100 * v) / all, 1)} %  ${f(v / MB, 0)} MB  ${k}`).join('\n');
  console.log(`\nallocations over the controller's life (sampled, garbage included; start-up ${f(startS)} s included): ${f(all / MB, 0)} MB`);
  console.log(`by own size:\n${top(self, 15, () => true)}`);
  console.log(`the controller's own code, inclusive:\n${top(incl, 25, (k) => k.includes(' dist/'))}`);
}

/** Least-squares slope of y over t (units of y per second). */
function slope(points: { t: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mt = points.reduce((a, p) => a + p.t, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  const num = points.reduce((a, p) => a + (p.t - mt) * (p.y - my), 0);
  const den = points.reduce((a, p) => a + (p.t - mt) ** 2, 0);
  return num / den;
}

async function main(): Promise<void> {
  const firewalls = arg('firewalls', 64);
  if (!Number.isInteger(firewalls) || firewalls > 250) throw new Error(`--firewalls must be an integer from 1 to 250, not ${firewalls}`);
  const spec: Spec = {
    firewalls,
    seconds: arg('seconds', 60),
    warmupS: arg('warmup', 10),
    faultEveryS: arg('fault-every', 10),
    faultHoldS: arg('fault-hold', 4),
    names: targetNames(`rss${process.pid}`, firewalls),
    heapSnapshots: strArg('heap-snapshots'),
    nodeFlags: (strArg('node-flags') ?? '').split(' ').filter((x) => x !== ''),
    keep: strArg('keep'),
    allocProfile: strArg('alloc-profile'),
  };
  if (spec.seconds > 600) throw new Error('--seconds is at most 600');
  const jsonOut = strArg('json');
  const exec = new ExecRunner(30_000);
  const startedAt = new Date();
  console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, load average ${load()}, ${startedAt.toISOString()}`);

  // Baselines in the same run: node's own floor, and the CLI with every module loaded.
  const tmp = mkdtempSync(join(tmpdir(), 'sandwich-rss-base-'));
  let bareNode: { rssKb: number; hwmKb: number };
  let version: { rssKb: number; hwmKb: number };
  try {
    bareNode = await exitMemory(tmp, ['-e', '']);
    version = await exitMemory(tmp, [BIN, '--version']);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`baseline: node -e '' VmRSS ${f(bareNode.rssKb / 1024)} MB (VmHWM ${f(bareNode.hwmKb / 1024)} MB); sandwich --version VmRSS ${f(version.rssKb / 1024)} MB (VmHWM ${f(version.hwmKb / 1024)} MB)`);

  let child: ChildProcess | null = null;
  let cleaned: Promise<void> | null = null;
  const allNs = [spec.names.prober, spec.names.target, ...spec.names.fws];
  const cleanup = () => (cleaned ??= (async () => {
    const c = child;
    if (c && c.exitCode === null && c.signalCode === null) {
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGTERM');
      if (!(await Promise.race([exited.then(() => true), deadline(30_000).then(() => false)]))) c.kill('SIGKILL');
    }
    // Anything still running in the bench's own namespaces was started by this bench (etcd, sandwich, ping).
    for (const ns of allNs) {
      const pids = await exec.run('ip', ['netns', 'pids', ns]).then((r) => r.stdout.split('\n').filter((x) => /^\d+$/.test(x)).map(Number), () => []);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    await deleteTargets(exec, spec.names);
  })());
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let r: InsideResult;
  try {
    const t = performance.now();
    await createTargets(exec, spec.names, { proberRouting: false });
    // The egress node's server-side interface (the fwmark rules match packets arriving there).
    await exec.run('ip', ['-n', spec.names.prober, '-batch', '-'], { input: 'link add srv0 type veth peer name srv0p\nlink set srv0p up\nlink set srv0 up\n' });
    console.log(`namespaces: ${allNs.length} in ${f((performance.now() - t) / 1000)} s; ${firewalls} firewalls × 3 ICMP checks at ${RATE_HZ} Hz (${firewalls * 3 * RATE_HZ} probes/s)`);
    const stdout: string[] = [];
    const p = spawn('ip', ['netns', 'exec', spec.names.prober, process.execPath, __filename, '--inside', JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
    child = p;
    p.stdout!.setEncoding('utf8').on('data', (d: string) => stdout.push(d));
    const deadlineMs = (spec.warmupS + spec.seconds + 240) * 1000;
    const code = await Promise.race([
      new Promise<number | null>((resolve) => p.once('exit', (c) => resolve(c))),
      deadline(deadlineMs).then(() => 'timeout' as const),
    ]);
    if (code === 'timeout') throw new Error(`the run did not end within ${deadlineMs / 1000} s`);
    if (code !== 0) throw new Error(`the run failed (exit ${code})`);
    r = JSON.parse(stdout.join('')) as InsideResult;
  } finally {
    await cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }

  // --- report ---
  const measured = r.samples.filter((s) => s.measuring);
  const rssMb = measured.map((s) => s.rssKb / 1024);
  const hwmMb = Math.max(...r.samples.map((s) => s.hwmKb)) / 1024;
  const first = r.scrapes.find((s) => s.t >= r.startS + spec.warmupS) ?? r.scrapes[0]!;
  const last = r.scrapes[r.scrapes.length - 1]!;
  const dt = last.t - first.t;
  const probesPerS = (last.probes - first.probes) / dt;
  const reconciles = last.reconciles - first.reconciles;
  const reconcileMeanMs = ((last.reconcileSeconds - first.reconcileSeconds) / reconciles) * 1000;
  const bareMb = bareNode.rssKb / 1024;
  const tenth = Math.max(1, Math.floor(measured.length / 6));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const head = mean(rssMb.slice(0, tenth));
  const tail = mean(rssMb.slice(-tenth));
  const rssSlope = slope(measured.map((s) => ({ t: s.t, y: s.rssKb / 1024 }))) * 60;
  const measuredScrapes = r.scrapes.filter((s) => s.t >= first.t);
  const heapSlope = slope(measuredScrapes.map((s) => ({ t: s.t, y: s.heapUsed / MB }))) * 60;
  const kernel = Object.entries(r.kernelByDriver).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';

  console.log(`\nfaults: ${r.faults.map((x) => `${x.firewall} at ${f(x.at - r.startS - spec.warmupS)} s for ${f((x.restoredAt ?? NaN) - x.at)} s`).join('; ') || 'none'}`);
  console.log(`verdicts in the measured window:\n${r.verdicts.map((v) => `  ${v}`).join('\n') || '  none'}`);
  if (r.warnings.length > 0) console.log(`warnings/errors in the log (first 20):\n${r.warnings.map((v) => `  ${v}`).join('\n')}`);
  console.log(`RSS every 5 s from the controller's start (MB; * = measured): ${r.samples.filter((_, i) => i % 5 === 0).map((s) => `${f(s.t, 0)}s ${f(s.rssKb / 1024, 1)}${s.measuring ? '*' : ''}`).join(', ')}`);
  console.log(`heap used every ${SCRAPE_EVERY} s (MB): ${r.scrapes.map((s) => `${f(s.t, 0)}s ${f(s.heapUsed / MB, 1)}/${f(s.heapTotal / MB, 1)}`).join(', ')}`);
  const ctlPss = r.ctlPssKb / 1024;
  console.log(`at the end: the controller's Pss ${f(ctlPss)} MB; its ${r.pings.count} ping children: VmRSS summed ${f(r.pings.rssKb / 1024, 0)} MB (shared pages counted in each), Pss summed ${f(r.pings.pssKb / 1024, 1)} MB; etcd: ${r.etcdVersion}`);
  const mc = r.markCompacts;
  const shown = mc.length > 16 ? [...mc.slice(0, 8), ...mc.slice(-8)] : mc;
  console.log(`full GCs (Mark-Compact, heap used before → after, committed after; MB; ${mc.length} in all${mc.length > 16 ? ', first and last 8' : ''}): ${shown.map((m) => `${f(m.t, 0)}s ${f(m.before, 0)}→${f(m.after, 1)} (${f(m.committed, 0)})`).join(', ') || 'none'}`);
  const mcMeasured = mc.filter((m) => m.t >= r.startS + spec.warmupS);
  const liveSlope = slope(mcMeasured.map((m) => ({ t: m.t, y: m.after }))) * 60;
  console.log(`live heap after full GCs in the measured window: ${mcMeasured.length} GCs, ${f(Math.min(...mcMeasured.map((m) => m.after)))}–${f(Math.max(...mcMeasured.map((m) => m.after)))} MB, slope ${f(liveSlope, 2)} MB/min`);
  console.log(`growth over the measured window: RSS first sixth ${f(head)} MB → last sixth ${f(tail)} MB, slope ${f(rssSlope, 2)} MB/min; heap used slope ${f(heapSlope, 2)} MB/min`);

  console.log('\n| what | VmRSS p50 | VmRSS max | VmHWM | ÷ bare node (p50) |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  console.log(`| bare \`node -e ''\` (at exit) | ${f(bareMb)} MB | | ${f(bareNode.hwmKb / 1024)} MB | 1.0× |`);
  console.log(`| \`sandwich --version\` (at exit) | ${f(version.rssKb / 1024)} MB | | ${f(version.hwmKb / 1024)} MB | ${f(version.rssKb / 1024 / bareMb, 2)}× |`);
  console.log(`| \`sandwich run\`, egress node, ${firewalls} firewalls × 3 ICMP checks at ${RATE_HZ} Hz, etcd, faults (${measured.length} samples over ${spec.seconds} s after ${spec.warmupS} s warm-up) | ` +
    `${f(pct(rssMb, 0.5))} MB | ${f(Math.max(...rssMb))} MB | ${f(hwmMb)} MB | ${f(pct(rssMb, 0.5) / bareMb, 2)}× |`);
  console.log(`\nprobes: ${f(probesPerS, 0)}/s done of ${firewalls * 3 * RATE_HZ}/s (${last.failures - first.failures} failed, the faulted firewalls' path checks); heap used ${f(first.heapUsed / MB)} → ${f(last.heapUsed / MB)} MB (total ${f(last.heapTotal / MB)} MB, external ${f(last.external / MB)} MB)`);
  console.log(`controller CPU over the measured window: ${f(r.cpuMs / 1000, 1)} s = ${f(r.cpuMs / 10 / spec.seconds, 0)} % of one core${spec.nodeFlags.length ? `; node flags: ${spec.nodeFlags.join(' ')}` : ''}`);
  console.log(`reconcile passes: ${reconciles} (mean ${f(reconcileMeanMs)} ms); kernel changes from the events log: ${kernel}; events: ${Object.entries(r.events).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  console.log(`goal ≤ 80 MB: ${Math.max(...rssMb) <= 80 ? 'met' : 'not met'} (max VmRSS ${f(Math.max(...rssMb))} MB); controller exit code ${r.exitCode}`);
  console.log(`load average before / after the run: ${r.loadBefore.map((x) => x.toFixed(2)).join(' ')} / ${r.loadAfter.map((x) => x.toFixed(2)).join(' ')}`);
  if (spec.allocProfile) allocationReport(spec.allocProfile, r.startS);
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ startedAt, spec, bareNode, version, result: r }, null, 2) + '\n');
}

if (process.argv.includes('--inside')) {
  const spec = JSON.parse(process.argv[process.argv.indexOf('--inside') + 1] ?? '{}') as Spec;
  inside(spec).then((r) => process.stdout.write(JSON.stringify(r)), (e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exitCode = 1;
  });
} else {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exitCode = 1;
  });
}
