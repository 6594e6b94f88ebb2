// Reconcile latency (issue 6 part 2): decision → kernel applied for one firewall change with F firewalls
// configured, through the real Actuator against a network namespace this bench creates and deletes.
//   egress (default; the host): F firewall tables + F probe tables, their rules, conntrack flush. Each
//     change takes one firewall down (its table re-pointed via the next firewall) or back up.
//   ingress (needs IPVS: the lab VM, lab/bench-reconcile.sh): an IPVS fwmark service with F real servers
//     + F probe tables. Each change puts one firewall at weight 0 (down, `quiesce`) or back to 100.
// The time is Actuator.reconcile() from call to return (read, diff, apply, verify). Commands are counted per change.
// Two kernel-access modes in one run, each in a node process inside the namespace (netlink sockets belong to
// the namespace they are opened in): `commands` (ip, ipvsadm: a process per read and write, the baseline) and
// `netlink` (rtnetlink; IPVS through generic netlink), as the daemon does.
//   npx tsc -p tsconfig.json && node dist/bench/reconcile.js [--changes 200] [--firewalls 64] [--role egress|ingress] [--kernels commands,netlink]
import { cpus, loadavg } from 'node:os';
import { stringify } from 'yaml';
import { parseConfig, type Config } from '../controller/config';
import type { Desired, DesiredFirewall } from '../controller/types';
import { Actuator, isReadCommand } from '../failover/actuator';
import { openIpvsGenl } from '../failover/netlink/ipvs-genl';
import { netlinkKernels } from '../failover/netlink/kernels';
import { ExecRunner, type CommandResult, type CommandRunner, type RunOptions } from '../failover/runner';
import { execFileSync } from 'node:child_process';
import { ManualTimers } from '../failover/timers';

/** Counts the commands it passes on, reads and changes apart. */
class CountingRunner implements CommandRunner {
  reads = 0;
  writes = 0;
  readonly byTool = new Map<string, number>();
  constructor(private readonly inner: CommandRunner) {}
  /** /proc/sys reads without a process, as the daemon's runner does. */
  readFile(path: string): Promise<string> {
    if (!this.inner.readFile) throw new Error('the inner runner cannot read files');
    return this.inner.readFile(path);
  }
  run(file: string, args: readonly string[], opts?: RunOptions): Promise<CommandResult> {
    if (isReadCommand(file, args)) this.reads++;
    else this.writes++;
    this.byTool.set(file, (this.byTool.get(file) ?? 0) + 1);
    return this.inner.run(file, args, opts);
  }
  reset(): void {
    this.reads = 0;
    this.writes = 0;
    this.byTool.clear();
  }
}

type Role = 'ingress' | 'egress';

function benchConfig(firewalls: number): Config {
  const fws = Array.from({ length: firewalls }, (_, i) => `fw${i + 1}`);
  const raw = {
    cluster: 'bench',
    store: { kind: 'etcd', endpoints: ['http://127.0.0.1:2379'] },
    nodes: [
      { name: 'lb1', role: 'ingress', interfaces: { client: 'eth0', firewall: 'eth1' }, probe: { interface: 'firewall', tableBase: 300, sources: Object.fromEntries(fws.map((f, i) => [f, `10.1.1.${i + 1}`])) } },
      { name: 'er1', role: 'egress', interfaces: { firewall: 'eth0', server: 'eth1' }, probe: { interface: 'firewall', tableBase: 300, sources: Object.fromEntries(fws.map((f, i) => [f, `10.2.1.${i + 1}`])) } },
    ],
    firewalls: fws.map((name, i) => ({
      name, ingressAddress: `10.1.0.${i + 1}`, egressAddress: `10.2.0.${i + 1}`, egressMac: `02:00:00:00:${(i + 1).toString(16).padStart(2, '0')}:0e`, mark: i + 1, table: 101 + i,
    })),
    checks: [
      { name: 'ingress-leg', kind: 'icmp', scope: 'leg', from: 'ingress' },
      { name: 'egress-leg', kind: 'icmp', scope: 'leg', from: 'egress' },
    ],
    services: [{ name: 'web', fwmark: 1000, scheduler: 'sh' }],
    vipGroups: [{ name: 'ingress', role: 'ingress', addresses: [{ address: '192.0.2.254/24', interface: 'client' }] }],
    egress: { firewallInterface: 'firewall', serverInterface: 'server', routes: ['203.0.113.0/24', '198.18.0.0/15'] },
    events: { file: '/tmp/sandwich-bench-events.log' },
  };
  return parseConfig(stringify(raw), 'bench config');
}

function desired(config: Config, down: string | null, revision: number): Desired {
  const names = config.firewalls.map((f) => f.name);
  const firewalls: Record<string, DesiredFirewall> = {};
  for (const [i, name] of names.entries()) {
    const isDown = name === down;
    firewalls[name] = {
      state: isDown ? 'down' : 'up',
      weight: isDown ? 0 : 100,
      egressVia: isDown ? names[(i + 1) % names.length]! : name,
      reason: isDown ? `${name} down: bench` : `${name} up: bench`,
      since: 0,
      healthySince: null,
      failOpen: false,
    };
  }
  return { revision, decidedBy: 'lb1', decidedAt: Date.now(), firewalls };
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} needs a positive integer, not "${process.argv[i + 1] ?? ''}"`);
  return v;
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
const f = (x: number, d = 1) => x.toFixed(d);

type Kernel = 'commands' | 'netlink';

interface VariantResult {
  kernel: Kernel;
  times: number[];
  commandsPerChange: number;
  readsPerChange: number;
  writesPerChange: number;
  perTool: Record<string, number>;
  /** Mean time per change spent in each driver (its own durationMs). */
  perDriverMs: Record<string, number>;
  floorP50: number;
  rssMb: number;
}

/** Inside the namespace: the changes through one kernel-access mode; prints its result as one JSON line. */
async function measure(role: Role, firewalls: number, changes: number, kernel: Kernel): Promise<VariantResult> {
  const node = role === 'egress' ? 'er1' : 'lb1';
  const config = benchConfig(firewalls);
  const runner = new CountingRunner(new ExecRunner(10_000));
  const kernels = kernel === 'netlink' ? netlinkKernels(10_000) : null;
  if (kernels && 'error' in kernels) throw new Error(`netlink: ${kernels.error}`);
  const ipvs = kernel === 'netlink' && role === 'ingress' ? await openIpvsGenl(10_000) : undefined;
  const act = new Actuator(config, node, runner, {
    timers: new ManualTimers(),
    kernel: { ...(ipvs ? { ipvs } : {}), ...(kernels && !('error' in kernels) ? { routes: kernels.routes, addresses: kernels.addresses } : {}) },
  });
  const first = await act.reconcile(desired(config, null, 1), { holdsVips: false });
  if (first.errors.length > 0) throw new Error(`initial reconcile failed: ${first.errors.map((e) => `${e.driver}: ${e.error.message}`).join('; ')}`);
  // The floor: one trivial command, at the load of the moment.
  const floor: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t = performance.now();
    await runner.run('true', []);
    floor.push(performance.now() - t);
  }
  const times: number[] = [];
  let reads = 0;
  let writes = 0;
  const tools = new Map<string, number>();
  const drivers = new Map<string, number>();
  for (let i = 0; i < changes; i++) {
    // Odd changes: fwK back up; even: fwK down.
    const k = Math.floor(i / 2) % firewalls;
    const down = i % 2 === 0 ? config.firewalls[k]!.name : null;
    runner.reset();
    const t = performance.now();
    const r = await act.reconcile(desired(config, down, i + 2), { holdsVips: false });
    times.push(performance.now() - t);
    if (r.errors.length > 0) throw new Error(`change ${i + 1} failed: ${r.errors.map((e) => `${e.driver}: ${e.error.message}`).join('; ')}`);
    const changed = r.results.filter((x) => x.commands.length > 0).map((x) => x.driver);
    const expected = role === 'egress' ? 'routes' : 'ipvs';
    if (!changed.includes(expected)) throw new Error(`change ${i + 1} changed no ${expected} (drivers that changed: ${changed.join(', ') || 'none'})`);
    reads += runner.reads;
    writes += runner.writes;
    for (const [tool, n] of runner.byTool) tools.set(tool, (tools.get(tool) ?? 0) + n);
    for (const x of r.results) drivers.set(x.driver, (drivers.get(x.driver) ?? 0) + x.durationMs);
  }
  act.close();
  return {
    kernel, times, readsPerChange: reads / changes, writesPerChange: writes / changes, commandsPerChange: (reads + writes) / changes,
    perTool: Object.fromEntries([...tools].map(([t, n]) => [t, n / changes])),
    perDriverMs: Object.fromEntries([...drivers].map(([d, ms]) => [d, ms / changes])), floorP50: pct(floor, 0.5), rssMb: process.memoryUsage().rss / 2 ** 20,
  };
}

function strOpt(name: string): string | null {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? null : (process.argv[i + 1] ?? null);
}

async function main(): Promise<void> {
  const changes = arg('changes', 200);
  const firewalls = arg('firewalls', 64);
  if (firewalls > 250) throw new Error(`--firewalls must be at most 250, not ${firewalls}`);
  const role = (strOpt('role') ?? 'egress') as Role;
  if (role !== 'egress' && role !== 'ingress') throw new Error(`--role must be egress or ingress, not "${strOpt('role') ?? ''}"`);
  const inside = strOpt('inside-kernel') as Kernel | null;
  if (inside) {
    process.stdout.write(`${JSON.stringify(await measure(role, firewalls, changes, inside))}\n`);
    return;
  }
  const kernelsArg = (strOpt('kernels') ?? 'commands,netlink').split(',') as Kernel[];
  if (kernelsArg.some((k) => k !== 'commands' && k !== 'netlink')) throw new Error(`--kernels: commands and/or netlink, not "${strOpt('kernels') ?? ''}"`);
  const node = role === 'egress' ? 'er1' : 'lb1';
  const ns = `rc${process.pid}-${node}`;
  const exec = new ExecRunner(10_000);
  const load = [loadavg()[0]!];
  console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const cleanup = () => void exec.run('ip', ['netns', 'del', ns]).catch(() => undefined).finally(() => process.exit(130));
  process.once('SIGINT', cleanup);
  process.once('SIGTERM', cleanup);
  await exec.run('ip', ['netns', 'add', ns]);
  try {
    await exec.run('ip', ['-n', ns, '-batch', '-'], {
      input: ['link set lo up', 'link add eth0 type veth peer name eth0p', 'link add eth1 type veth peer name eth1p', 'link set eth0p up', 'link set eth1p up', 'addr add 10.2.0.254/16 dev eth0', 'addr add 198.51.100.1/24 dev eth1',
        'link set eth0 up', 'link set eth1 up'].join('\n') + '\n',
    });
    if (role === 'ingress') await exec.run('ip', ['-n', ns, 'addr', 'replace', '10.1.0.254/16', 'dev', 'eth1']);
    const results: VariantResult[] = [];
    for (const kernel of kernelsArg) {
      const out = execFileSync('ip', ['netns', 'exec', ns, process.execPath, __filename, '--inside-kernel', kernel, '--role', role, '--changes', String(changes), '--firewalls', String(firewalls)],
        { encoding: 'utf8', timeout: 30 * 60_000, maxBuffer: 64 * 2 ** 20 });
      results.push(JSON.parse(out.trim().split('\n').pop()!) as VariantResult);
    }
    load.push(loadavg()[0]!);
    console.log(`\n${role} node, ${firewalls} firewalls, ${changes} changes per mode, load average ${load.map((x) => x.toFixed(2)).join(' → ')}`);
    console.log(`\n| kernel access | p50 | p99 | max | processes per change (reads + changes) | per tool per change | mean ms per change by driver | one trivial process (p50) | bench process RSS |`);
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const r of results) {
      console.log(`| ${r.kernel} | ${f(pct(r.times, 0.5))} ms | ${f(pct(r.times, 0.99))} ms | ${f(Math.max(...r.times))} ms | ${f(r.commandsPerChange)} (${f(r.readsPerChange)} + ${f(r.writesPerChange)}) | ` +
        `${Object.entries(r.perTool).map(([t, n]) => `${t} ${f(n)}`).join(', ') || 'none'} | ${Object.entries(r.perDriverMs).map(([d, ms]) => `${d} ${f(ms)}`).join(', ')} | ${f(r.floorP50)} ms | ${f(r.rssMb, 0)} MB |`);
    }
    const [a, b] = results;
    if (a && b) console.log(`\np99 ${a.kernel} ÷ ${b.kernel}: ${f(pct(a.times, 0.99) / pct(b.times, 0.99))}×; p50: ${f(pct(a.times, 0.5) / pct(b.times, 0.5))}×`);
  } finally {
    await exec.run('ip', ['netns', 'del', ns]).catch(() => undefined);
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exitCode = 1;
});
