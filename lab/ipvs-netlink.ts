// The IPVS generic netlink kernel against real IPVS (run inside the lab VM by lab/ipvs-netlink.sh):
// fwmark services created, edited and trimmed through netlink, each state compared with what ipvsadm
// (-Sn + /proc/net/ip_vs) reads; kernel refusals typed; then the cost of one change and one read,
// netlink vs an ipvsadm process. Prints a report; exit 1 when a check fails.
//   npx tsc -p tsconfig.json && node dist/lab/ipvs-netlink.js [--ops 200] [--out DIR]
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { isDeepStrictEqual } from 'node:util';
import { IpvsDriver, IpvsadmKernel, type IpvsKernelState, type IpvsWant } from '../failover/ipvs';
import type { IpvsOp } from '../failover/ipvs-ops';
import { openIpvsGenl } from '../failover/netlink/ipvs-genl';
import { ExecRunner } from '../failover/runner';
import { KernelRejectedError } from '../failover/types';

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] ?? def : def;
};
const N = Number(arg('ops', '200'));
const OUT = arg('out', '');

const runner = new ExecRunner(10_000);
const ipvsadm = new IpvsadmKernel(runner);
const failures: string[] = [];
const lines: string[] = [];
const say = (s: string) => {
  lines.push(s);
  console.log(s);
};
const check = (ok: boolean, what: string) => {
  say(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
};

const want = (w11: number, opts: { drop12?: boolean } = {}): IpvsWant => ({
  downAction: 'remove',
  services: [
    // Added in this order (.12 first): sh walks the kernel list, so the order is part of the state.
    { fwmark: 1, scheduler: 'sh', flags: ['sh-fallback'], realServers: [
      ...(opts.drop12 ? [] : [{ address: '10.1.0.12', weight: 100 }]),
      { address: '10.1.0.11', weight: w11 },
      { address: '10.1.0.13', weight: 100 },
    ] },
    { fwmark: 6, ipv6: true, scheduler: 'mh', flags: ['mh-fallback', 'mh-port'], realServers: [{ address: '2001:db8:1::12', weight: 100 }, { address: '2001:db8:1::11', weight: 50 }] },
  ],
});

/** Both readers see the same table: every service (with options) and the fwmark order. */
function same(a: IpvsKernelState, b: IpvsKernelState, what: string): void {
  const sa = [...a.services].sort((x, y) => x.key.localeCompare(y.key));
  const sb = [...b.services].sort((x, y) => x.key.localeCompare(y.key));
  const ok = isDeepStrictEqual(sa, sb);
  check(ok, `${what}: netlink read = ipvsadm -Sn read (${sa.length} services)`);
  if (!ok) say(`  netlink: ${JSON.stringify(sa)}\n  ipvsadm: ${JSON.stringify(sb)}`);
  // ipvsadm's order comes from /proc/net/ip_vs (which leaves out fwmark services without real servers).
  const oa = Object.fromEntries([...a.order].filter(([, v]) => v.length > 0));
  const ob = Object.fromEntries([...b.order].filter(([, v]) => v.length > 0));
  check(isDeepStrictEqual(oa, ob), `${what}: GET_DEST order = /proc/net/ip_vs order ${JSON.stringify(oa)}`);
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
const fmt = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(3)} ms  p99 ${pct(xs, 99).toFixed(3)} ms  mean ${(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(3)} ms  (n=${xs.length})`;

async function time(n: number, f: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await f(i);
    out.push(performance.now() - t0);
  }
  return out;
}

async function main(): Promise<number> {
  say(`ipvs-netlink: kernel ${(await runner.run('uname', ['-r'])).stdout.trim()}, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  await runner.run('ipvsadm', ['-C']);
  const nl = await openIpvsGenl(10_000);
  const driver = new IpvsDriver(runner, { kernel: nl, fixOrder: true });

  // 1. Create through netlink; the driver verifies by reading back through netlink.
  const created = await driver.reconcile(want(100));
  say(`created: ${created.commands.length} changes:\n  ${created.commands.join('\n  ')}`);
  check(created.commands[0] === 'ipvsadm -A -f 1 -s sh -b sh-fallback', 'commands read as ipvsadm lines');
  // An unmanaged TCP service with persistence and a masqueraded server, made by ipvsadm: both readers agree on it.
  await runner.run('ipvsadm', ['-A', '-t', '192.0.2.10:80', '-s', 'wrr', '-p', '300']);
  await runner.run('ipvsadm', ['-a', '-t', '192.0.2.10:80', '-r', '10.1.0.12:80', '-m', '-w', '5']);
  await runner.run('ipvsadm', ['-A', '-u', '[2001:db8::10]:53', '-s', 'rr']);
  say((await runner.run('ipvsadm', ['-Sn'])).stdout.trimEnd());
  same(await nl.read(), await ipvsadm.read(), 'after create');
  check(isDeepStrictEqual((await nl.read()).order.get('-f 1'), ['10.1.0.12', '10.1.0.11', '10.1.0.13']), 'insertion order is the want\'s order');

  // 2. Weights: quiesce .11.
  const quiesced = await driver.reconcile(want(0));
  check(isDeepStrictEqual(quiesced.commands, ['ipvsadm -e -f 1 -r 10.1.0.11:0 -g -w 0']), `weight edit: ${quiesced.commands.join('; ')}`);
  same(await nl.read(), await ipvsadm.read(), 'after weight edit');

  // 3. Delete a real server, then add it back: it lands at the head of the kernel list, fixOrder restores the order.
  const dropped = await driver.reconcile(want(0, { drop12: true }));
  check(isDeepStrictEqual(dropped.commands, ['ipvsadm -d -f 1 -r 10.1.0.12:0']), `delete: ${dropped.commands.join('; ')}`);
  same(await nl.read(), await ipvsadm.read(), 'after delete');
  const readded = await new IpvsDriver(runner, { kernel: nl }).reconcile(want(0));
  check(readded.differences.some((d) => d.includes('real-server order 10.1.0.11, 10.1.0.13, 10.1.0.12')), `re-added server at the end of the insertion order: ${readded.differences.join('; ')}`);
  same(await nl.read(), await ipvsadm.read(), 'after re-add');
  const fixed = await driver.reconcile(want(0));
  say(`order fix: ${fixed.commands.join('; ')}`);
  same(await nl.read(), await ipvsadm.read(), 'after order fix');
  check(isDeepStrictEqual((await nl.read()).order.get('-f 1'), ['10.1.0.12', '10.1.0.11', '10.1.0.13']), 'order restored');

  // 4. Kernel refusals come back typed, naming the object.
  const refused = async (op: IpvsOp, code: string) => {
    const e = await nl.apply([op]).then(() => null, (x: unknown) => x);
    check(e instanceof KernelRejectedError && e.code === code, `refused ${code}: ${e instanceof Error ? e.message : 'no error'}`);
  };
  await refused({ kind: 'add-dest', fwmark: 1, ipv6: false, address: '10.1.0.11', weight: 1 }, 'EEXIST');
  await refused({ kind: 'del-dest', fwmark: 1, ipv6: false, address: '10.1.0.99' }, 'ENOENT');
  await refused({ kind: 'edit-dest', fwmark: 77, ipv6: false, address: '10.1.0.11', weight: 1 }, 'ESRCH');
  await refused({ kind: 'add-service', fwmark: 1, ipv6: false, scheduler: 'sh', flags: [] }, 'EEXIST');
  await refused({ kind: 'add-service', fwmark: 9, ipv6: false, scheduler: 'nosuch', flags: [] }, 'ENOENT');

  // 5. Cost of one weight change and one full read: netlink vs ipvsadm processes.
  const exec = await time(Math.min(N, 50), () => runner.run('true', []));
  const nlEdit = await time(N, (i) => nl.apply([{ kind: 'edit-dest', fwmark: 1, ipv6: false, address: '10.1.0.13', weight: 100 - (i % 2) }]));
  const admEdit = await time(N, (i) => runner.run('ipvsadm', ['-e', '-f', '1', '-r', '10.1.0.13:0', '-g', '-w', String(100 - (i % 2))]));
  const reads = Math.max(10, Math.floor(N / 4));
  const nlRead = await time(reads, () => nl.read());
  const admRead = await time(reads, () => ipvsadm.read());
  say(`load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  say(`exec floor (true)        ${fmt(exec)}`);
  say(`weight edit, netlink     ${fmt(nlEdit)}`);
  say(`weight edit, ipvsadm -e  ${fmt(admEdit)}`);
  say(`read, netlink (4 svc)    ${fmt(nlRead)}`);
  say(`read, ipvsadm -Sn + proc ${fmt(admRead)}`);
  same(await nl.read(), await ipvsadm.read(), 'after the timing runs');
  nl.close();
  await runner.run('ipvsadm', ['-C']);
  say(failures.length ? `FAILED: ${failures.length} check(s)` : 'PASS');
  if (OUT) writeFileSync(`${OUT}/report.txt`, lines.join('\n') + '\n');
  return failures.length ? 1 : 0;
}

main().then((rc) => process.exit(rc), (e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  if (OUT) writeFileSync(`${OUT}/report.txt`, [...lines, `ERROR ${e instanceof Error ? e.message : String(e)}`].join('\n') + '\n');
  process.exit(2);
});
