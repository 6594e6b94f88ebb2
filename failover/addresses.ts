// Interface addresses (probe sources, VIPs): read them (rtnetlink, or `ip -j addr show dev X`), add what is missing,
// delete what must go; every change is reported as the `ip addr …` command it equals.
import { isIPv4, isIPv6 } from 'node:net';
import { CommandFailedError, formatCommand, type CommandRunner } from './runner';
import {
  DriverInputError,
  KernelParseError,
  KernelUnavailableError,
  KernelVerifyError,
  parseJsonArray,
  timer,
  stderrOf,
  wrapCommandError,
  type DriverOptions,
  type ReconcileResult,
} from './types';

const DRIVER = 'addresses';
const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

export interface AddressWant {
  readonly dev: string;
  /** With prefix length, e.g. "192.0.2.254/24". */
  readonly address: string;
  /** IPv6: add with `nodad` (usable at once, never tentative; the kernel sends no neighbour advertisement for it). */
  readonly nodad?: boolean;
}

export interface AddressesWant {
  /** Must be on their interface with exactly this prefix length. */
  readonly present: readonly AddressWant[];
  /** Must not be on their interface (any prefix length). Addresses in neither list are left alone. */
  readonly absent: readonly AddressWant[];
}

export interface KernelAddress {
  readonly family: 'inet' | 'inet6';
  readonly local: string;
  readonly prefixlen: number;
}

export function parseAddresses(json: string, dev: string, command: string): KernelAddress[] {
  const links = parseJsonArray(DRIVER, command, json);
  const out: KernelAddress[] = [];
  links.forEach((l, i) => {
    const fail = (reason: string): never => {
      throw new KernelParseError(DRIVER, command, JSON.stringify(l), reason, i + 1);
    };
    if (typeof l !== 'object' || l === null) fail('link is not an object');
    const o = l as Record<string, unknown>;
    // `ip -j addr show dev X` also prints an empty object for links filtered out on some versions.
    if (o.ifname === undefined && Object.keys(o).length === 0) return;
    if (o.ifname !== dev) fail(`expected interface ${dev}`);
    const info = o.addr_info ?? [];
    if (!Array.isArray(info)) fail('addr_info is not a list');
    for (const a of info as unknown[]) {
      const x = a as Record<string, unknown>;
      if (typeof x !== 'object' || x === null || typeof x.local !== 'string' || typeof x.prefixlen !== 'number' || (x.family !== 'inet' && x.family !== 'inet6')) {
        fail(`address entry ${JSON.stringify(a)} lacks family/local/prefixlen`);
      }
      out.push({ family: x.family as 'inet' | 'inet6', local: x.local as string, prefixlen: x.prefixlen as number });
    }
  });
  return out;
}

export async function readAddresses(runner: CommandRunner, dev: string): Promise<KernelAddress[]> {
  const args = ['-j', 'addr', 'show', 'dev', dev];
  try {
    return parseAddresses((await runner.run('ip', args)).stdout, dev, formatCommand('ip', args));
  } catch (e) {
    if (e instanceof CommandFailedError && /does not exist/.test(stderrOf(e))) throw new KernelUnavailableError(DRIVER, `${DRIVER}: interface ${dev} does not exist`);
    throw wrapCommandError(DRIVER, 'ip', args, e);
  }
}

/** One change; `addressArgs` gives the `ip` arguments it equals. */
export interface AddressOp {
  readonly op: 'add' | 'del';
  readonly dev: string;
  /** With prefix length. */
  readonly address: string;
  /** IPv6 add only. */
  readonly nodad?: boolean;
}

export function addressArgs(op: AddressOp): string[] {
  return ['addr', op.op, op.address, 'dev', op.dev, ...(op.nodad ? ['nodad'] : [])];
}

/** How an AddressesDriver reads and changes the kernel: `ip` commands (ExecAddressesKernel) or rtnetlink (failover/netlink). */
export interface AddressesKernel {
  /** The addresses on `dev`; KernelUnavailableError when there is no such interface. */
  read(dev: string): Promise<KernelAddress[]>;
  /** 'exists': an add found the address already there (another writer raced us; the verify decides). Errors name `driver`. */
  apply(op: AddressOp, driver: string): Promise<'done' | 'exists'>;
}

export class ExecAddressesKernel implements AddressesKernel {
  constructor(private readonly runner: CommandRunner) {}
  read(dev: string): Promise<KernelAddress[]> {
    return readAddresses(this.runner, dev);
  }
  async apply(op: AddressOp, driver: string): Promise<'done' | 'exists'> {
    const args = addressArgs(op);
    try {
      await this.runner.run('ip', args);
      return 'done';
    } catch (e) {
      if (op.op === 'add' && e instanceof CommandFailedError && /File exists/.test(stderrOf(e))) return 'exists';
      throw wrapCommandError(driver, 'ip', args, e);
    }
  }
}

export function split(cidr: string): { ip: string; len: number } {
  const [ip = '', len = ''] = cidr.split('/');
  // iproute2 prints IPv6 compressed and lower-case.
  return { ip: isIPv6(ip) ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip, len: Number(len) };
}

function validate(want: AddressesWant): void {
  for (const a of [...want.present, ...want.absent]) {
    if (!IFNAME_RE.test(a.dev)) throw new DriverInputError(DRIVER, `"${a.dev}" is not an interface name`);
    const { ip, len } = split(a.address);
    const max = isIPv4(ip) ? 32 : isIPv6(ip) ? 128 : -1;
    if (max < 0 || !/^\d+$/.test(a.address.split('/')[1] ?? '') || len > max) throw new DriverInputError(DRIVER, `"${a.address}" is not an address with a prefix length`);
  }
}

function plan(state: Map<string, KernelAddress[]>, want: AddressesWant): { differences: string[]; ops: AddressOp[] } {
  const differences: string[] = [];
  const adds: AddressOp[] = [];
  const dels: AddressOp[] = [];
  for (const w of want.present) {
    const { ip, len } = split(w.address);
    const cur = (state.get(w.dev) ?? []).filter((k) => k.local === ip);
    if (cur.some((k) => k.prefixlen === len)) continue;
    differences.push(`${w.dev}: ${w.address} ${cur.length ? `present as /${cur.map((k) => k.prefixlen).join(', /')}` : 'missing'}`);
    adds.push({ op: 'add', address: w.address, dev: w.dev, ...(w.nodad && isIPv6(ip) ? { nodad: true } : {}) });
    // Same address with another prefix: remove it after the right one is in place.
    for (const k of cur) dels.push({ op: 'del', address: `${k.local}/${k.prefixlen}`, dev: w.dev });
  }
  for (const w of want.absent) {
    const { ip } = split(w.address);
    for (const k of (state.get(w.dev) ?? []).filter((x) => x.local === ip)) {
      differences.push(`${w.dev}: ${k.local}/${k.prefixlen} present, want absent`);
      dels.push({ op: 'del', address: `${k.local}/${k.prefixlen}`, dev: w.dev });
    }
  }
  return { differences, ops: [...adds, ...dels] };
}

export class AddressesDriver {
  private readonly kernel: AddressesKernel;
  /** `kernel`: an AddressesKernel, or a CommandRunner for the `ip` command implementation. */
  constructor(kernel: AddressesKernel | CommandRunner, private readonly opts: DriverOptions = {}) {
    this.kernel = 'run' in kernel ? new ExecAddressesKernel(kernel) : kernel;
  }

  private async read(want: AddressesWant): Promise<Map<string, KernelAddress[]>> {
    const devs = [...new Set([...want.present, ...want.absent].map((a) => a.dev))];
    const state = new Map<string, KernelAddress[]>();
    for (const d of devs) state.set(d, await this.kernel.read(d));
    return state;
  }

  /** `driver` names the result (e.g. "vip:ingress"); the default is "addresses". */
  async reconcile(want: AddressesWant, driver = DRIVER): Promise<ReconcileResult> {
    const elapsed = timer();
    validate(want);
    const p = plan(await this.read(want), want);
    const commands: string[] = [];
    for (const op of p.ops) {
      commands.push(formatCommand('ip', addressArgs(op)));
      await this.kernel.apply(op, driver);
    }
    if (commands.length && (this.opts.verify ?? true)) {
      const again = plan(await this.read(want), want);
      if (again.differences.length) throw new KernelVerifyError(driver, again.differences, commands);
    }
    return { driver, differences: p.differences, commands, durationMs: elapsed() };
  }
}
