// What one ICMP probe costs on this host: the `ping` package (the baseline) against `ping`
// through the CommandRunner and a TCP connect. Sequential probes to 127.0.0.1; Node's own CPU from
// process.cpuUsage(), the ping children's CPU from /proc/self/stat (cutime + cstime, 10 ms ticks).
//   npx tsc -p tsconfig.json && node dist/bench/ping-cost.js [count]
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { loadavg } from 'node:os';
import type { ProbeJob } from '../checks/jobs';
import { icmpPackageProbe, icmpRunnerProbe, tcpProbe, type ProbeFn } from '../checks/probes';
import type { CheckConfig } from '../controller/config';
import { ExecRunner } from '../failover/runner';

const TICK_MS = 10; // getconf CLK_TCK = 100 on Debian

function childCpuMs(): number {
  // Fields after the ")" of comm: state is field 3; cutime and cstime are fields 16 and 17.
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) * TICK_MS;
}

function job(kind: CheckConfig['kind'], port: number | null): ProbeJob {
  const check: CheckConfig = { name: 'bench', kind, scope: 'path', from: 'ingress', intervalMs: 1000, timeoutMs: 800, rise: 3, fall: 3, jitter: 0.1 };
  return { node: 'bench', role: 'ingress', firewall: 'fw1', check, kind, source: '127.0.0.1', target: '127.0.0.1', port, key: 'fw1/bench' };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;

async function measure(name: string, probe: ProbeFn, j: ProbeJob, count: number): Promise<void> {
  const signal = new AbortController().signal;
  for (let i = 0; i < 5; i++) await probe(j, signal); // warm-up
  const walls: number[] = [];
  let failures = 0;
  const cpu0 = process.cpuUsage();
  const child0 = childCpuMs();
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const s = performance.now();
    const r = await probe(j, signal);
    walls.push(performance.now() - s);
    if (!r.ok) failures++;
  }
  const total = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const childMs = childCpuMs() - child0;
  const f = (x: number) => x.toFixed(3);
  console.log(`${name.padEnd(22)} n=${count} fail=${failures}  wall/probe mean ${f(total / count)} ms p50 ${f(pct(walls, 0.5))} p99 ${f(pct(walls, 0.99))}` +
    `  node CPU/probe ${f((cpu.user + cpu.system) / 1000 / count)} ms (user ${f(cpu.user / 1000 / count)}, sys ${f(cpu.system / 1000 / count)})` +
    `  child CPU/probe ${f(childMs / count)} ms`);
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 200);
  if (!Number.isInteger(count) || count < 1) throw new Error(`count must be a positive integer, not "${process.argv[2]}"`);
  const server = net.createServer((s) => s.on('error', () => undefined));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  console.log(`node ${process.version}, ${count} sequential probes to 127.0.0.1 each, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  await measure('icmp: ping package', icmpPackageProbe, job('icmp', null), count);
  await measure('icmp: runner (execFile)', icmpRunnerProbe(new ExecRunner(5000)), job('icmp', null), count);
  await measure('tcp connect', tcpProbe, job('tcp', port), count);
  server.close();
  console.log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exitCode = 1;
});
