// Policy rules and routes in managed tables: read them (rtnetlink, or `ip -j rule show` / `ip -j route show table N`),
// apply the difference as typed operations, each equal to one `ip` command line.
import { isIPv4, isIPv6 } from 'node:net';
import { formatCommand, type CommandRunner } from './runner';
import {
  DriverInputError,
  KernelParseError,
  KernelVerifyError,
  parseJsonArray,
  runFor,
  timer,
  type DriverOptions,
  type ReconcileResult,
} from './types';

const DRIVER = 'routes';
const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

export interface RuleWant {
  readonly priority: number;
  /** Source address or prefix ("10.1.0.21" = /32). */
  readonly from?: string;
  /** Destination address or prefix. */
  readonly to?: string;
  readonly fwmark?: number;
  readonly iif?: string;
  readonly table: number;
}

export interface RouteWant {
  /** "default", "203.0.113.0/24" or a host address. */
  readonly dst: string;
  readonly via?: string;
  readonly dev?: string;
  readonly type?: 'local';
}

export interface RoutesWant {
  /** Every rule at a managed priority (see managedPriorities) that is not listed here is deleted. */
  readonly rules: readonly RuleWant[];
  /** Managed tables and their complete contents (in the driver's family); other tables are not read or touched. */
  readonly tables: Readonly<Record<number, readonly RouteWant[]>>;
  /** Priorities we own besides those of `rules` (so rules there can be removed when none is wanted). */
  readonly managedPriorities?: readonly number[];
}

/** 4: `ip …` (IPv4 rules and routes); 6: `ip -6 …`. Each family has its own rules and routes, also in a shared table number. */
export type Family = 4 | 6;

export interface RoutesDriverOptions extends DriverOptions {
  /** Default 4. */
  family?: Family;
}

export interface FamilyRules {
  readonly isAddr: (s: string) => boolean;
  readonly hostLen: number;
  readonly any: string;
  /** The metric the kernel gives a route added without one (IPv6: 1024). */
  readonly metric: number;
  /** Leading `ip` options. */
  readonly opt: readonly string[];
  readonly name: string;
  /** Names results and errors: routes, routes6. */
  readonly driver: string;
}

export const FAMILIES: Record<Family, FamilyRules> = {
  4: { isAddr: isIPv4, hostLen: 32, any: '0.0.0.0/0', metric: 0, opt: [], name: 'IPv4', driver: DRIVER },
  6: { isAddr: isIPv6, hostLen: 128, any: '::/0', metric: 1024, opt: ['-6'], name: 'IPv6', driver: `${DRIVER}6` },
};

export interface RoutesResult extends ReconcileResult {
  /** Tables whose routes were changed in this pass. */
  readonly changedTables: number[];
}

// --- parsed kernel state ---

export interface KernelRule {
  readonly priority: number;
  readonly from?: string;
  readonly to?: string;
  readonly fwmark?: number;
  readonly fwmask?: number;
  readonly iif?: string;
  readonly oif?: string;
  /** Number, or a name from rt_tables that is not one of local/main/default. */
  readonly table?: number | string;
  readonly action?: string;
  readonly not: boolean;
  /** Selectors we do not manage (their presence makes the rule "not ours"). */
  readonly other: readonly string[];
}

export interface KernelRoute {
  readonly type: string;
  /** Normalised: "0.0.0.0/0", "10.0.0.0/8", "10.1.0.5/32". */
  readonly dst: string;
  /** As printed, for commands. */
  readonly dstText: string;
  readonly gateway?: string;
  readonly dev?: string;
  readonly metric: number;
  readonly multipath: boolean;
}

const NAMED_TABLES: Record<string, number> = { local: 255, main: 254, default: 253, unspec: 0 };
const RULE_KEYS = new Set(['priority', 'src', 'srclen', 'dst', 'dstlen', 'fwmark', 'fwmask', 'iif', 'oif', 'table', 'action', 'not', 'flags', 'protocol']);

function tableOf(v: unknown): number | string | undefined {
  if (v === undefined) return undefined;
  const s = String(v);
  if (/^\d+$/.test(s)) return Number(s);
  return NAMED_TABLES[s] ?? s;
}

export function normPrefix(p: string, f: FamilyRules = FAMILIES[4]): string {
  if (p === 'default') return f.any;
  return p.includes('/') ? p : `${p}/${f.hostLen}`;
}

export function hostOrPrefix(p: string, f: FamilyRules = FAMILIES[4]): string {
  const host = `/${f.hostLen}`;
  return p.endsWith(host) ? p.slice(0, -host.length) : p;
}

export function parseRules(json: string, command = 'ip -j rule show', family: Family = 4): KernelRule[] {
  const f = FAMILIES[family];
  return parseJsonArray(f.driver, command, json).map((r, i) => {
    const fail = (reason: string): never => {
      throw new KernelParseError(f.driver, command, JSON.stringify(r), reason, i + 1);
    };
    if (typeof r !== 'object' || r === null) fail('rule is not an object');
    const o = r as Record<string, unknown>;
    if (typeof o.priority !== 'number') fail('rule without numeric priority');
    const src = o.src;
    if (src !== undefined && typeof src !== 'string') fail('src is not a string');
    const from = src === undefined || src === 'all' ? undefined : hostOrPrefix(`${src}/${typeof o.srclen === 'number' ? o.srclen : f.hostLen}`, f);
    const dst = o.dst;
    if (dst !== undefined && typeof dst !== 'string') fail('dst is not a string');
    const to = dst === undefined || dst === 'all' ? undefined : hostOrPrefix(`${dst}/${typeof o.dstlen === 'number' ? o.dstlen : f.hostLen}`, f);
    const hex = (k: string): number | undefined => {
      const v = o[k];
      if (v === undefined) return undefined;
      if (typeof v !== 'string' || !/^0x[0-9a-f]+$/i.test(v)) fail(`${k} "${String(v)}" is not hex`);
      return parseInt(v as string, 16);
    };
    return {
      priority: o.priority as number,
      from,
      to,
      fwmark: hex('fwmark'),
      fwmask: hex('fwmask'),
      iif: typeof o.iif === 'string' ? o.iif : undefined,
      oif: typeof o.oif === 'string' ? o.oif : undefined,
      table: tableOf(o.table),
      action: typeof o.action === 'string' ? o.action : undefined,
      not: 'not' in o,
      other: Object.keys(o).filter((k) => !RULE_KEYS.has(k)),
    };
  });
}

export function parseRoutes(json: string, command: string, family: Family = 4): KernelRoute[] {
  const f = FAMILIES[family];
  return parseJsonArray(f.driver, command, json).map((r, i) => {
    const fail = (reason: string): never => {
      throw new KernelParseError(f.driver, command, JSON.stringify(r), reason, i + 1);
    };
    if (typeof r !== 'object' || r === null) fail('route is not an object');
    const o = r as Record<string, unknown>;
    if (typeof o.dst !== 'string') fail('route without dst');
    return {
      type: typeof o.type === 'string' ? o.type : 'unicast',
      dst: normPrefix(o.dst as string, f),
      dstText: o.dst as string,
      gateway: typeof o.gateway === 'string' ? o.gateway : undefined,
      dev: typeof o.dev === 'string' ? o.dev : undefined,
      metric: typeof o.metric === 'number' ? o.metric : 0,
      multipath: Array.isArray(o.nexthops),
    };
  });
}

function ruleMatches(k: KernelRule, w: RuleWant, f: FamilyRules): boolean {
  return (
    k.priority === w.priority &&
    k.from === (w.from === undefined ? undefined : hostOrPrefix(normPrefix(w.from, f), f)) &&
    k.to === (w.to === undefined ? undefined : hostOrPrefix(normPrefix(w.to, f), f)) &&
    k.fwmark === w.fwmark &&
    (k.fwmask === undefined || k.fwmask === 0xffffffff) &&
    k.iif === w.iif &&
    k.oif === undefined &&
    k.table === w.table &&
    k.action === undefined &&
    !k.not &&
    k.other.length === 0
  );
}

function ruleSelectors(r: RuleSpec): string[] {
  const a = ['priority', String(r.priority)];
  if (r.not) a.push('not');
  if (r.from !== undefined) a.push('from', r.from);
  if (r.to !== undefined) a.push('to', r.to);
  if (r.fwmark !== undefined) a.push('fwmark', r.fwmask !== undefined && r.fwmask !== 0xffffffff ? `0x${r.fwmark.toString(16)}/0x${r.fwmask.toString(16)}` : String(r.fwmark));
  if (r.iif !== undefined) a.push('iif', r.iif);
  if (r.oif !== undefined) a.push('oif', r.oif);
  return a;
}

function describeRule(r: KernelRule | RuleWant): string {
  const k = r as Partial<KernelRule>;
  const parts = [k.not ? 'not' : '', r.from ? `from ${r.from}` : 'from all', r.to ? `to ${r.to}` : '', r.fwmark !== undefined ? `fwmark ${r.fwmark}` : '', r.iif ? `iif ${r.iif}` : '', k.oif ? `oif ${k.oif}` : ''];
  parts.push(k.action ? k.action : `lookup ${r.table}`);
  return parts.filter((p) => p).join(' ');
}

function describeRoute(r: { via?: string; gateway?: string; dev?: string; type?: string }): string {
  const via = r.via ?? r.gateway;
  return [r.type && r.type !== 'unicast' ? r.type : '', via ? `via ${via}` : '', r.dev ? `dev ${r.dev}` : ''].filter((p) => p).join(' ') || 'no next hop';
}

function routeMatches(k: KernelRoute, w: RouteWant): boolean {
  return k.type === (w.type ?? 'unicast') && k.gateway === w.via && (w.dev === undefined || k.dev === w.dev) && !k.multipath;
}

function validate(want: RoutesWant, f: FamilyRules): void {
  const bad = (m: string): never => {
    throw new DriverInputError(f.driver, m);
  };
  const addr = f.isAddr;
  const prio = (p: number) => Number.isInteger(p) && p >= 0 && p <= 32767;
  for (const r of want.rules) {
    if (!prio(r.priority)) bad(`rule priority ${r.priority} is not 0..32767`);
    if (r.from !== undefined && !addr(r.from.split('/')[0] ?? '')) bad(`rule from "${r.from}" is not an ${f.name} address or prefix`);
    if (r.to !== undefined && !addr(r.to.split('/')[0] ?? '')) bad(`rule to "${r.to}" is not an ${f.name} address or prefix`);
    if (r.iif !== undefined && !IFNAME_RE.test(r.iif)) bad(`rule iif "${r.iif}" is not an interface name`);
    if (r.fwmark !== undefined && (!Number.isInteger(r.fwmark) || r.fwmark < 0 || r.fwmark > 0xffffffff)) bad(`rule fwmark ${r.fwmark} is not a mark`);
    if (!Number.isInteger(r.table) || r.table < 1) bad(`rule table ${r.table} is not a table number`);
  }
  for (const p of want.managedPriorities ?? []) if (!prio(p)) bad(`managed priority ${p} is not 0..32767`);
  for (const [t, routes] of Object.entries(want.tables)) {
    if (!/^\d+$/.test(t) || Number(t) < 1) bad(`table "${t}" is not a table number`);
    const dsts = new Set<string>();
    for (const r of routes) {
      const d = normPrefix(r.dst, f);
      if (!addr(d.split('/')[0] ?? '')) bad(`table ${t}: dst "${r.dst}" is not an ${f.name} prefix or "default"`);
      if (dsts.has(d)) bad(`table ${t}: dst ${r.dst} wanted twice`);
      dsts.add(d);
      if (r.via !== undefined && !addr(r.via)) bad(`table ${t}: via "${r.via}" is not an ${f.name} address`);
      if (r.dev !== undefined && !IFNAME_RE.test(r.dev)) bad(`table ${t}: dev "${r.dev}" is not an interface name`);
    }
  }
}

export interface RoutesKernelState {
  readonly rules: KernelRule[];
  readonly tables: Map<number, KernelRoute[]>;
}

/** A rule as a selector list (for `rule add` a want, for `rule del` a rule read from the kernel); `action`: not "lookup" (unreachable, blackhole, prohibit, goto, nop). */
export type RuleSpec = Omit<KernelRule, 'not' | 'other'> & { readonly not?: boolean };

/** One change, in apply order; each equals one `ip [-6] …` command line (opArgs). */
export type RoutesOp =
  | { readonly op: 'route-replace'; readonly table: number; readonly dst: string; readonly via?: string; readonly dev?: string; readonly type?: 'local' }
  | { readonly op: 'route-del'; readonly table: number; readonly dst: string; readonly type: string; readonly metric: number }
  | { readonly op: 'rule-add' | 'rule-del'; readonly rule: RuleSpec };

/** The `ip` arguments (after the family option) that make the same change as `op`. */
export function opArgs(op: RoutesOp): string[] {
  switch (op.op) {
    case 'route-replace':
      return ['route', 'replace', ...(op.type ? [op.type] : []), op.dst, ...(op.via ? ['via', op.via] : []), ...(op.dev ? ['dev', op.dev] : []), 'table', String(op.table)];
    case 'route-del':
      return ['route', 'del', ...(op.type !== 'unicast' ? [op.type] : []), op.dst, ...(op.metric ? ['metric', String(op.metric)] : []), 'table', String(op.table)];
    case 'rule-add':
    case 'rule-del': {
      const r = op.rule;
      return ['rule', op.op === 'rule-add' ? 'add' : 'del', ...ruleSelectors(r), ...(r.action ? [r.action] : r.table !== undefined ? ['lookup', String(r.table)] : [])];
    }
  }
}

/** The command line an operator reads for `op` (events, `plan`, `status`), whatever carried it to the kernel. */
export function opCommand(op: RoutesOp, family: Family): string {
  return formatCommand('ip', [...FAMILIES[family].opt, ...opArgs(op)]);
}

/** The driver's result and error name for a family: routes, routes6. */
export function routesDriverName(family: Family): string {
  return FAMILIES[family].driver;
}

/** How a RoutesDriver reads and changes the kernel: `ip` commands (ExecRoutesKernel) or rtnetlink (failover/netlink). */
export interface RoutesKernel {
  /** All policy rules of the family, and the routes of each table in `tables`. */
  read(family: Family, tables: readonly number[]): Promise<RoutesKernelState>;
  /** Applies `ops` in order, stopping at the first that fails (a DriverError naming it). */
  apply(family: Family, ops: readonly RoutesOp[]): Promise<void>;
}

/** One exec: `ip -j -batch -` with `rule show` and one `route show table N` per managed table (one JSON array per line). */
export async function readRoutes(runner: CommandRunner, tables: readonly number[], family: Family = 4): Promise<RoutesKernelState> {
  const f = FAMILIES[family];
  const cmds = ['rule show', ...tables.map((t) => `route show table ${t}`)];
  const args = [...f.opt, '-j', '-batch', '-'];
  const ip = `ip ${[...f.opt, '-j'].join(' ')}`;
  const out = await runFor(f.driver, runner, 'ip', args, { input: cmds.join('\n') + '\n' });
  const lines = out.split('\n').filter((l) => l.trim() !== '');
  if (lines.length !== cmds.length) {
    throw new KernelParseError(f.driver, `${ip} -batch - (${cmds.join('; ')})`, lines[lines.length - 1] ?? '', `expected ${cmds.length} JSON line(s), one per command, got ${lines.length}`);
  }
  const rules = parseRules(lines[0]!, `${ip} rule show`, family);
  const routes = new Map<number, KernelRoute[]>();
  tables.forEach((t, i) => routes.set(t, parseRoutes(lines[i + 1]!, `${ip} route show table ${t}`, family)));
  return { rules, tables: routes };
}

/** The `ip` command implementation: one `ip -j -batch -` to read, one `ip -batch -` for all changes. */
export class ExecRoutesKernel implements RoutesKernel {
  constructor(private readonly runner: CommandRunner) {}
  read(family: Family, tables: readonly number[]): Promise<RoutesKernelState> {
    return readRoutes(this.runner, tables, family);
  }
  async apply(family: Family, ops: readonly RoutesOp[]): Promise<void> {
    const f = FAMILIES[family];
    // It stops at the first failing line (and says which).
    if (ops.length) await runFor(f.driver, this.runner, 'ip', [...f.opt, '-batch', '-'], { input: ops.map((o) => opArgs(o).join(' ')).join('\n') + '\n' });
  }
}

interface RoutesPlan {
  differences: string[];
  /** In apply order. */
  ops: RoutesOp[];
  /** The ops as `ip` arguments (without the family option). */
  steps: string[][];
  changedTables: number[];
}

export function planRoutes(state: RoutesKernelState, want: RoutesWant, family: Family = 4): RoutesPlan {
  const f = FAMILIES[family];
  validate(want, f);
  const differences: string[] = [];
  const routeAdds: RoutesOp[] = [];
  const ruleAdds: RoutesOp[] = [];
  const ruleDels: RoutesOp[] = [];
  const routeDels: RoutesOp[] = [];
  const changed = new Set<number>();
  for (const [t, wanted] of Object.entries(want.tables)) {
    const table = Number(t);
    const kernel = [...(state.tables.get(table) ?? [])];
    for (const w of wanted) {
      const dst = normPrefix(w.dst, f);
      const idx = kernel.findIndex((k) => k.dst === dst && k.metric === f.metric);
      const k = idx >= 0 ? kernel.splice(idx, 1)[0] : undefined;
      if (k && routeMatches(k, w)) continue;
      differences.push(`table ${table}: ${w.dst} ${k ? describeRoute(k) : 'missing'}, want ${describeRoute(w)}`);
      routeAdds.push({ op: 'route-replace', table, dst, ...(w.type ? { type: w.type } : {}), ...(w.via ? { via: w.via } : {}), ...(w.dev ? { dev: w.dev } : {}) });
      changed.add(table);
    }
    for (const k of kernel) {
      differences.push(`table ${table}: ${k.dstText} ${describeRoute(k)}${k.metric !== f.metric ? ` metric ${k.metric}` : ''} present, not wanted`);
      routeDels.push({ op: 'route-del', table, dst: k.dst, type: k.type, metric: k.metric });
      changed.add(table);
    }
  }
  const managed = new Set([...want.rules.map((r) => r.priority), ...(want.managedPriorities ?? [])]);
  const kernelRules = state.rules.filter((r) => managed.has(r.priority));
  for (const w of want.rules) {
    const idx = kernelRules.findIndex((k) => ruleMatches(k, w, f));
    if (idx >= 0) {
      kernelRules.splice(idx, 1);
      continue;
    }
    differences.push(`rule ${w.priority}: ${describeRule(w)} missing`);
    ruleAdds.push({ op: 'rule-add', rule: w });
  }
  for (const k of kernelRules) {
    differences.push(`rule ${k.priority}: ${describeRule(k)} present, not wanted`);
    ruleDels.push({ op: 'rule-del', rule: k });
  }
  const ops = [...routeAdds, ...ruleAdds, ...ruleDels, ...routeDels];
  return { differences, ops, steps: ops.map(opArgs), changedTables: [...changed].sort((a, b) => a - b) };
}

export class RoutesDriver {
  private readonly family: Family;
  private readonly kernel: RoutesKernel;
  /** `kernel`: a RoutesKernel, or a CommandRunner for the `ip` command implementation. */
  constructor(kernel: RoutesKernel | CommandRunner, private readonly opts: RoutesDriverOptions = {}) {
    this.family = opts.family ?? 4;
    this.kernel = 'run' in kernel ? new ExecRoutesKernel(kernel) : kernel;
  }

  async reconcile(want: RoutesWant): Promise<RoutesResult> {
    const elapsed = timer();
    const tables = Object.keys(want.tables).map(Number);
    const f = FAMILIES[this.family];
    validate(want, f);
    const plan = planRoutes(await this.kernel.read(this.family, tables), want, this.family);
    const commands = plan.ops.map((op) => opCommand(op, this.family));
    if (plan.ops.length) await this.kernel.apply(this.family, plan.ops);
    if (commands.length && (this.opts.verify ?? true)) {
      const again = planRoutes(await this.kernel.read(this.family, tables), want, this.family);
      if (again.differences.length) throw new KernelVerifyError(f.driver, again.differences, commands);
    }
    return { driver: f.driver, differences: plan.differences, commands, durationMs: elapsed(), changedTables: plan.changedTables };
  }
}
