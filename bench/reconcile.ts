// Reconcile latency (issue 6 part 2): decision → kernel applied for one firewall change with F firewalls
// configured, through the real Actuator against a network namespace this bench creates and deletes.
//   egress (default; the host): F firewall tables + F probe tables, their rules, conntrack flush. Each
//     change takes one firewall down (its table re-pointed via the next firewall) or back up.
//   ingress (needs IPVS: the lab VM, lab/bench-reconcile.sh): an IPVS fwmark service with F real servers
//     + F probe tables. Each change puts one firewall at weight 0 (down, `quiesce`) or back to 100.
// The time is Actuator.reconcile() from call to return (read, diff, apply, verify). Commands are counted per change.
//   npx tsc -p tsconfig.json && node dist/bench/reconcile.js [--changes 200] [--firewalls 64] [--role egress|ingress]
import { cpus, loadavg } from 'node:os';
import { stringify } from 'yaml';
import { parseConfig, type Config } from '../controller/config';
import type { Desired, DesiredFirewall } from '../controller/types';
import { Actuator, isReadCommand } from '../failover/actuator';
import { ExecRunner, NetnsRunner, type CommandResult, type CommandRunner, type RunOptions } from '../failover/runner';
import { ManualTimers } from '../failover/timers';

/** Counts the commands it passes on, reads and changes apart. */
class CountingRunner implements CommandRunner {
  reads = 0;
  writes = 0;
  readonly byTool = new Map<string, number>();
  constructor(private readonly inner: CommandRunner) {}
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

async function main(): Promise<void> {
  const changes = arg('changes', 200);
  const firewalls = arg('firewalls', 64);
  if (firewalls > 250) throw new Error(`--firewalls must be at most 250, not ${firewalls}`);
  const ri = process.argv.indexOf('--role');
  const role = (ri < 0 ? 'egress' : process.argv[ri + 1]) as Role;
  if (role !== 'egress' && role !== 'ingress') throw new Error(`--role must be egress or ingress, not "${process.argv[ri + 1] ?? ''}"`);
  const node = role === 'egress' ? 'er1' : 'lb1';
  const config = benchConfig(firewalls);
  const ns = `rc${process.pid}-${node}`;
  const exec = new ExecRunner(10_000);
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
    const runner = new CountingRunner(new NetnsRunner(exec, ns));
    if (role === 'ingress') await exec.run('ip', ['-n', ns, 'addr', 'replace', '10.1.0.254/16', 'dev', 'eth1']);
    const act = new Actuator(config, node, runner, { timers: new ManualTimers() });
    const first = await act.reconcile(desired(config, null, 1), { holdsVips: false });
    if (first.errors.length > 0) throw new Error(`initial reconcile failed: ${first.errors.map((e) => `${e.driver}: ${e.error.message}`).join('; ')}`);
    const { stdout: rules } = await exec.run('ip', ['-n', ns, 'rule', 'show']);
    const initialCommands = runner.reads + runner.writes;
    const { stdout: svc } = role === 'ingress' ? await exec.run('ip', ['netns', 'exec', ns, 'ipvsadm', '-Sn']) : { stdout: '' };
    if (role === 'ingress') console.log(`IPVS: ${svc.trim().split('\n').filter((l) => l.startsWith('-a')).length} real servers`);
    console.log(`${role} node: ${firewalls} firewalls, ${rules.trim().split('\n').length} rules, ${Object.keys(first.results).length > 0 ? 'built' : ''} in ${f(first.durationMs)} ms with ${initialCommands} commands`);
    // The floor: one trivial command through the same runner, at the load of the moment.
    const floor: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      await runner.run('sysctl', ['-n', 'net.ipv4.ip_forward']);
      floor.push(performance.now() - t);
    }
    const times: number[] = [];
    const reads: number[] = [];
    const writes: number[] = [];
    const tools = new Map<string, number>();
    const rss0 = process.memoryUsage().rss;
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
      reads.push(runner.reads);
      writes.push(runner.writes);
      for (const [tool, n] of runner.byTool) tools.set(tool, (tools.get(tool) ?? 0) + n);
    }
    const rss = process.memoryUsage().rss;
    act.close();
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(`\n| role | firewalls | changes | p50 | p99 | max | commands per change (reads + changes) | per tool per change | one trivial command (p50) | bench process RSS |`);
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    console.log(`| ${role} | ${firewalls} | ${changes} | ${f(pct(times, 0.5))} ms | ${f(pct(times, 0.99))} ms | ${f(Math.max(...times))} ms | ${f(mean(reads) + mean(writes))} (${f(mean(reads))} + ${f(mean(writes))}) | ` +
      `${[...tools].map(([t, n]) => `${t} ${f(n / changes)}`).join(', ')} | ${f(pct(floor, 0.5))} ms | ${f(rss / 2 ** 20, 0)} MB (${f(rss0 / 2 ** 20, 0)} MB before the changes) |`);
    console.log(`\nload average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  } finally {
    await exec.run('ip', ['netns', 'del', ns]).catch(() => undefined);
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exitCode = 1;
});
