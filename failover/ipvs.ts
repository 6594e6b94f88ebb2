// IPVS fwmark services: read the kernel's table, diff, apply typed changes. Two kernels behind one seam
// (IpvsKernel): generic netlink (failover/netlink/ipvs-genl.ts), and the fallback here: read `ipvsadm -Sn`
// (+ /proc/net/ip_vs for list order), apply one `ipvsadm -R` batch.
//
// Order of real servers: `ipvsadm -Sn`/`-Ln` print them sorted by address, not in the kernel's list order,
// so the order is read from /proc/net/ip_vs. The kernel inserts each new real server at the head of the
// list (list_add_rcu; /proc shows newest first), and sh/mh walk that list. We speak of *insertion order*
// (the reverse of /proc): the want's order is the order real servers are added in, so both LBs, built
// from the same config, get identical lists. A removed and re-added server goes to the end of it.
import { isIPv4, isIPv6 } from 'node:net';
import { formatIpvsOp, fwmarkArg, type IpvsApplied, type IpvsKernel, type IpvsOp } from './ipvs-ops';
import { CommandFailedError, formatCommand, type CommandRunner } from './runner';
import {
  DriverInputError,
  KernelParseError,
  KernelUnavailableError,
  KernelVerifyError,
  readProcFile,
  stderrOf,
  timer,
  wrapCommandError,
  type DriverOptions,
  type ReconcileResult,
} from './types';

const DRIVER = 'ipvs';
const SAVE_ARGS = ['-Sn'] as const;
const PROC_FILE = '/proc/net/ip_vs';

export type IpvsScheduler = 'sh' | 'mh';

export interface IpvsRealServerWant {
  /** Address of the real server (port 0 for fwmark services): IPv4, or IPv6 for an ipv6 service. */
  readonly address: string;
  readonly weight: number;
  /** Label for messages, e.g. the firewall name. */
  readonly name?: string;
}

export interface IpvsServiceWant {
  readonly fwmark: number;
  /** An IPv6 fwmark service (`-f N -6`): the kernel keeps it apart from the IPv4 one with the same mark. */
  readonly ipv6?: boolean;
  readonly scheduler: IpvsScheduler;
  /** Scheduler flags, e.g. ['sh-fallback']. Compared as a set. */
  readonly flags: readonly string[];
  /** In insertion order (config order). Real servers not listed are deleted. */
  readonly realServers: readonly IpvsRealServerWant[];
}

export interface IpvsWant {
  readonly services: readonly IpvsServiceWant[];
  /** How down firewalls are expressed in realServers (informational here; the actuator maps it). */
  readonly downAction: 'quiesce' | 'remove';
}

export interface IpvsDriverOptions extends DriverOptions {
  /** Restore the wanted real-server order by deleting and re-adding servers (expires their connections). Default false. */
  fixOrder?: boolean;
  /** How to reach the kernel; default: ipvsadm through the driver's runner (IpvsadmKernel). */
  kernel?: IpvsKernel;
}

// --- the kernel's table as parsed ---

export interface IpvsRealServer {
  /** As printed by ipvsadm: "10.1.0.11:0", "[2001:db8::1]:80". */
  readonly target: string;
  /** g (direct routing), m (masquerading), i (tunnel). */
  readonly forwarding: string;
  readonly weight: number;
  /** Options we do not manage, e.g. ['-x', '100']. */
  readonly extra: readonly string[];
}

export interface IpvsService {
  /** "-f 1", "-f 1 -6", "-t 192.0.2.10:80": identifies the service. */
  readonly key: string;
  readonly protocol: 'fwmark' | 'tcp' | 'udp' | 'sctp';
  readonly fwmark: number | null;
  readonly ipv6: boolean;
  readonly scheduler: string;
  readonly flags: readonly string[];
  /** Options we do not manage (persistence, netmask, …) as printed. */
  readonly extra: readonly string[];
  /** In the order ipvsadm printed them (sorted by address). */
  readonly realServers: IpvsRealServer[];
}

const SERVICE_OPT: Record<string, IpvsService['protocol']> = { '-t': 'tcp', '-u': 'udp', '--sctp-service': 'sctp', '-f': 'fwmark' };
const FORWARDING: Record<string, string> = { '-g': 'g', '-m': 'm', '-i': 'i' };

/** Parse `ipvsadm -Sn` output (every service, managed or not). */
export function parseIpvsSave(text: string, command = formatCommand('ipvsadm', SAVE_ARGS)): IpvsService[] {
  const services: IpvsService[] = [];
  const byKey = new Map<string, IpvsService>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const fail = (reason: string): never => {
      throw new KernelParseError(DRIVER, command, raw, reason, i + 1);
    };
    const tok = line.split(/\s+/);
    const op = tok[0];
    if (op !== '-A' && op !== '-a') fail('expected a line starting with -A or -a');
    let protocol: IpvsService['protocol'] | undefined;
    let addr = '';
    let ipv6 = false;
    let scheduler = '';
    let flags: string[] = [];
    let target = '';
    let forwarding = '';
    let weight: number | undefined;
    const extra: string[] = [];
    for (let j = 1; j < tok.length; j++) {
      const t = tok[j]!;
      const next = (): string => tok[++j] ?? fail(`option ${t} has no value`);
      if (t in SERVICE_OPT) {
        protocol = SERVICE_OPT[t];
        addr = next();
      } else if (t === '-6') ipv6 = true;
      else if (t === '-s' && op === '-A') scheduler = next();
      else if (t === '-b' && op === '-A') flags = next().split(',').filter((f) => f !== '');
      else if (t === '-r' && op === '-a') target = next();
      else if (t in FORWARDING && op === '-a') forwarding = FORWARDING[t]!;
      else if (t === '-w' && op === '-a') {
        const w = next();
        if (!/^\d+$/.test(w)) fail(`weight "${w}" is not a number`);
        weight = Number(w);
      } else extra.push(t);
    }
    if (!protocol) return fail('no service (-t, -u, --sctp-service or -f)');
    // ipvsadm prints -6 for fwmark services only; an address service's family is its address's.
    if (protocol !== 'fwmark' && addr.startsWith('[')) ipv6 = true;
    let fwmark: number | null = null;
    if (protocol === 'fwmark') {
      // ipvsadm prints marks as signed 32-bit: 4294967295 is "-1".
      if (!/^-?\d+$/.test(addr)) fail(`fwmark "${addr}" is not a number`);
      fwmark = Number(addr) >>> 0;
    }
    const key = protocol === 'fwmark' ? fwmarkKey(fwmark!, ipv6) : `-${protocol[0]} ${addr}`;
    if (op === '-A') {
      if (!scheduler) fail('service without scheduler (-s)');
      if (byKey.has(key)) fail(`service ${key} listed twice`);
      const svc: IpvsService = { key, protocol, fwmark, ipv6, scheduler, flags, extra, realServers: [] };
      services.push(svc);
      byKey.set(key, svc);
    } else {
      const svc = byKey.get(key) ?? fail(`real server for service ${key}, which was not listed before`);
      if (!target) fail('real server without -r');
      if (weight === undefined) fail('real server without weight (-w)');
      svc.realServers.push({ target, forwarding: forwarding || 'g', weight: weight!, extra });
    }
  });
  return services;
}

/**
 * From /proc/net/ip_vs: fwmark service key ("-f 1", "-f 1 -6") → real-server addresses in the kernel's list
 * order (newest first). /proc does not say a fwmark service's family: its real servers' address format does,
 * so a fwmark service without real servers is left out.
 */
export function parseIpvsProc(text: string, command = formatCommand('cat', [PROC_FILE])): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let mark: number | null = null;
  let current: string[] | null = null;
  text.split('\n').forEach((raw, i) => {
    const fail = (reason: string): never => {
      throw new KernelParseError(DRIVER, command, raw, reason, i + 1);
    };
    if (i < 3 || raw.trim() === '') return; // version, two header lines
    const svc = /^(TCP|UDP|SCTP|FWM)\s+(\S+)\s+\S+/.exec(raw);
    if (svc) {
      mark = null;
      current = null;
      if (svc[1] !== 'FWM') return;
      if (!/^[0-9A-Fa-f]{8}$/.test(svc[2]!)) fail('fwmark is not 8 hex digits');
      mark = parseInt(svc[2]!, 16);
      return;
    }
    const dest = /^\s+->\s+(\S+)\s+\S+\s+\d+/.exec(raw);
    if (!dest) fail('neither a service nor a real-server line');
    const target = dest![1]!;
    const v4 = /^([0-9A-Fa-f]{8}):[0-9A-Fa-f]{4}$/.exec(target);
    const v6 = /^\[([0-9A-Fa-f:]+)\]:[0-9A-Fa-f]{4}$/.exec(target);
    if (!v4 && !(v6 && isIPv6(v6[1]!))) fail('real-server address is neither IPv4 hex nor [IPv6]');
    if (mark === null) return; // a TCP/UDP/SCTP service: not ours
    if (current === null) {
      const key = fwmarkKey(mark, !v4);
      current = out.get(key) ?? [];
      out.set(key, current);
    }
    current.push(v4 ? hexToIPv4(v4[1]!) : canonicalIPv6(v6![1]!));
  });
  return out;
}

/** The service key of a fwmark service, as parseIpvsSave and parseIpvsProc name it. */
export function fwmarkKey(mark: number, ipv6: boolean): string {
  return fwmarkArg({ fwmark: mark, ipv6 });
}

/** The compressed lower-case form ipvsadm and iproute2 print ("2001:db8::11"). */
export function canonicalIPv6(a: string): string {
  return new URL(`http://[${a}]/`).hostname.slice(1, -1);
}

function hexToIPv4(h: string): string {
  return [0, 2, 4, 6].map((o) => parseInt(h.slice(o, o + 2), 16)).join('.');
}

export interface IpvsKernelState {
  readonly services: IpvsService[];
  /** fwmark service key ("-f 1", "-f 1 -6") → real-server addresses in insertion order (oldest first). */
  readonly order: Map<string, string[]>;
}

const UNAVAILABLE_RE = /Protocol not available|Can't initialize ipvs|IP Virtual Server is built/i;

export async function readIpvs(runner: CommandRunner): Promise<IpvsKernelState> {
  let save: string;
  try {
    save = (await runner.run('ipvsadm', SAVE_ARGS)).stdout;
  } catch (e) {
    const err = stderrOf(e);
    if (e instanceof CommandFailedError && UNAVAILABLE_RE.test(err)) {
      const why = err.trim().split('\n')[0] ?? '';
      throw new KernelUnavailableError(DRIVER, `IPVS not available in this kernel: modprobe ip_vs (ipvsadm: ${why})`);
    }
    throw wrapCommandError(DRIVER, 'ipvsadm', SAVE_ARGS, e);
  }
  const services = parseIpvsSave(save);
  const proc = parseIpvsProc(await readProcFile(DRIVER, runner, PROC_FILE));
  const order = new Map<string, string[]>();
  for (const s of services) {
    if (s.protocol !== 'fwmark' || s.fwmark === null) continue;
    const present = s.realServers.map((r) => stripPort(r.target));
    const listed = [...(proc.get(s.key) ?? [])].reverse().filter((a) => present.includes(a));
    // Anything /proc did not show (changed between the two reads) goes last; the next pass sees it right.
    order.set(s.key, [...listed, ...present.filter((a) => !listed.includes(a))]);
  }
  return { services, order };
}

/** "10.1.0.11:0" → "10.1.0.11"; "[2001:db8::11]:0" → "2001:db8::11". */
function stripPort(target: string): string {
  const v6 = /^\[(.+)\]:0$/.exec(target);
  return v6 && isIPv6(v6[1]!) ? canonicalIPv6(v6[1]!) : target.replace(/:0$/, '');
}

export interface IpvsPlan {
  /** Every difference, including order differences. */
  readonly differences: string[];
  /** The order differences alone (left in place unless fixOrder). */
  readonly orderDifferences: string[];
  /** The changes in apply order: adds and edits, then deletes, then order fixes. */
  readonly ops: IpvsOp[];
  /** The same changes as lines for `ipvsadm -R` (formatIpvsOp). */
  readonly batch: string[];
}

function fmtFlags(flags: readonly string[]): string {
  return flags.length ? flags.join(',') : 'none';
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/** The pure diff: kernel state + want → differences and the batch that fixes them. */
export function planIpvs(state: IpvsKernelState, want: IpvsWant, fixOrder = false): IpvsPlan {
  validateWant(want);
  const differences: string[] = [];
  const orderDifferences: string[] = [];
  const addEdit: IpvsOp[] = [];
  const deletes: IpvsOp[] = [];
  const reorder: IpvsOp[] = [];
  for (const w of want.services) {
    const ipv6 = w.ipv6 ?? false;
    const ref = { fwmark: w.fwmark, ipv6 };
    const svcArg = fwmarkKey(w.fwmark, ipv6);
    const svcOp = (kind: 'add-service' | 'edit-service'): IpvsOp => ({ kind, ...ref, scheduler: w.scheduler, flags: [...w.flags] });
    const rsOp = (kind: 'add-dest' | 'edit-dest', r: IpvsRealServerWant): IpvsOp => ({ kind, ...ref, address: r.address, weight: r.weight });
    const delOp = (address: string): IpvsOp => ({ kind: 'del-dest', ...ref, address });
    const label = (r: { address: string; name?: string }) => (r.name ? `${r.name} (${r.address})` : r.address);
    const p = `fwmark ${w.fwmark}${ipv6 ? ' (IPv6)' : ''}: `;
    const k = state.services.find((s) => s.protocol === 'fwmark' && s.ipv6 === ipv6 && s.fwmark === w.fwmark);
    if (!k) {
      differences.push(`${p}service missing, want ${w.scheduler} (${fmtFlags(w.flags)}) with ${w.realServers.map((r) => `${label(r)} weight ${r.weight}`).join(', ') || 'no real servers'}`);
      addEdit.push(svcOp('add-service'), ...w.realServers.map((r) => rsOp('add-dest', r)));
      continue;
    }
    const svcDiff: string[] = [];
    if (k.scheduler !== w.scheduler) svcDiff.push(`scheduler ${k.scheduler}, want ${w.scheduler}`);
    if (!sameSet(k.flags, w.flags)) svcDiff.push(`flags ${fmtFlags(k.flags)}, want ${fmtFlags(w.flags)}`);
    if (k.extra.length) svcDiff.push(`options ${k.extra.join(' ')}, want none`);
    if (svcDiff.length) {
      differences.push(...svcDiff.map((d) => p + d));
      addEdit.push(svcOp('edit-service'));
    }
    const kernelBy = new Map(k.realServers.map((r) => [stripPort(r.target), r]));
    const wanted = new Set(w.realServers.map((r) => r.address));
    const deleted = k.realServers.map((r) => stripPort(r.target)).filter((a) => !wanted.has(a));
    // Insertion order after this batch, before any order fix.
    const kernelOrder = state.order.get(svcArg) ?? [];
    const after = [...kernelOrder.filter((a) => wanted.has(a)), ...w.realServers.filter((r) => !kernelBy.has(r.address)).map((r) => r.address)];
    const wantOrder = w.realServers.map((r) => r.address);
    let fixFrom = wantOrder.length;
    if (after.join() !== wantOrder.join()) {
      orderDifferences.push(`${p}real-server order ${after.join(', ')}, want ${wantOrder.join(', ')}${fixOrder ? '' : ' (left as is: fixOrder is off)'}`);
      if (fixOrder) fixFrom = wantOrder.findIndex((a, i) => after[i] !== a);
    }
    w.realServers.forEach((r, i) => {
      const cur = kernelBy.get(r.address);
      if (!cur) differences.push(`${p}${label(r)} missing, want weight ${r.weight}`);
      else {
        if (cur.weight !== r.weight) differences.push(`${p}${label(r)} weight ${cur.weight}, want ${r.weight}`);
        if (cur.forwarding !== 'g') differences.push(`${p}${label(r)} forwarding -${cur.forwarding}, want -g (direct routing)`);
        if (cur.extra.length) differences.push(`${p}${label(r)} options ${cur.extra.join(' ')}, want none`);
      }
      const changed = !cur || cur.weight !== r.weight || cur.forwarding !== 'g' || cur.extra.length > 0;
      if (i >= fixFrom) {
        if (cur) reorder.push(delOp(r.address));
        reorder.push(rsOp('add-dest', r));
      } else if (!cur) addEdit.push(rsOp('add-dest', r));
      else if (changed) addEdit.push(rsOp('edit-dest', r));
    });
    for (const a of deleted) {
      differences.push(`${p}${a} present, want absent`);
      deletes.push(delOp(a));
    }
  }
  differences.push(...orderDifferences);
  const ops = [...addEdit, ...deletes, ...reorder];
  return { differences, orderDifferences, ops, batch: ops.map(formatIpvsOp) };
}

function validateWant(want: IpvsWant): void {
  const marks = new Set<string>();
  for (const s of want.services) {
    if (!Number.isInteger(s.fwmark) || s.fwmark < 1 || s.fwmark > 0xffffffff) throw new DriverInputError(DRIVER, `fwmark ${s.fwmark} is not a mark (1..4294967295)`);
    const family = s.ipv6 ? 'IPv6' : 'IPv4';
    const key = fwmarkKey(s.fwmark, s.ipv6 ?? false);
    if (marks.has(key)) throw new DriverInputError(DRIVER, `${family} fwmark ${s.fwmark} wanted twice`);
    marks.add(key);
    const seen = new Set<string>();
    for (const r of s.realServers) {
      const ok = s.ipv6 ? isIPv6(r.address) && canonicalIPv6(r.address) === r.address : isIPv4(r.address);
      if (!ok) throw new DriverInputError(DRIVER, `fwmark ${s.fwmark}: real server "${r.address}" is not ${s.ipv6 ? 'an IPv6 address in canonical form (e.g. 2001:db8::11)' : 'an IPv4 address'}`);
      if (!Number.isInteger(r.weight) || r.weight < 0 || r.weight > 65535) throw new DriverInputError(DRIVER, `fwmark ${s.fwmark}: weight ${r.weight} of ${r.address} is not 0..65535`);
      if (seen.has(r.address)) throw new DriverInputError(DRIVER, `fwmark ${s.fwmark}: real server ${r.address} wanted twice`);
      seen.add(r.address);
    }
    for (const f of s.flags) if (!/^[a-z0-9-]+$/.test(f)) throw new DriverInputError(DRIVER, `fwmark ${s.fwmark}: flag "${f}" is not a scheduler flag`);
  }
}

/** The fallback kernel: `ipvsadm -Sn` + /proc/net/ip_vs to read, one `ipvsadm -R` batch to apply. */
export class IpvsadmKernel implements IpvsKernel {
  constructor(private readonly runner: CommandRunner) {}

  read(): Promise<IpvsKernelState> {
    return readIpvs(this.runner);
  }

  async apply(ops: readonly IpvsOp[]): Promise<IpvsApplied> {
    const input = ops.map(formatIpvsOp).join('\n') + '\n';
    const commands = [`${formatCommand('ipvsadm', ['-R'])} <<'EOF'\n${input}EOF`];
    let stderr = '';
    try {
      stderr = (await this.runner.run('ipvsadm', ['-R'], { input })).stderr;
    } catch (e) {
      throw wrapCommandError(DRIVER, 'ipvsadm', ['-R'], e);
    }
    // ipvsadm -R exits 0 even when a line fails ("Service not defined"): only the re-read tells.
    return { commands, note: stderr.trim() ? `ipvsadm -R said: ${stderr.trim().split('\n').join(' | ')}` : '' };
  }
}

/** Reconciles the managed fwmark services; other services are left alone. */
export class IpvsDriver {
  private readonly kernel: IpvsKernel;

  constructor(runner: CommandRunner, private readonly opts: IpvsDriverOptions = {}) {
    this.kernel = opts.kernel ?? new IpvsadmKernel(runner);
  }

  async reconcile(want: IpvsWant): Promise<ReconcileResult> {
    const elapsed = timer();
    const fixOrder = this.opts.fixOrder ?? false;
    const plan = planIpvs(await this.kernel.read(), want, fixOrder);
    const commands: string[] = [];
    if (plan.ops.length > 0) {
      const applied = await this.kernel.apply(plan.ops);
      commands.push(...applied.commands);
      if (this.opts.verify ?? true) {
        const again = planIpvs(await this.kernel.read(), want, fixOrder);
        const remaining = again.differences.filter((d) => fixOrder || !again.orderDifferences.includes(d));
        if (remaining.length) throw new KernelVerifyError(DRIVER, remaining, commands, applied.note);
      }
    }
    return { driver: DRIVER, differences: plan.differences, commands, durationMs: elapsed() };
  }
}
