// One node's act step: desired state → kernel wants → drivers, in takeover order; plus release and plan.
import type { Config, FirewallConfig, NodeConfig, Role, ServiceConfig } from '../controller/config';
import { nodeByName, pathGroupsOf, probeTable } from '../controller/config';
import type { Desired } from '../controller/types';
import type { AddressWant, AddressesKernel, AddressesWant } from './addresses';
import { AddressesDriver } from './addresses';
import type { Announcer } from './announcer';
import { ConntrackDriver } from './conntrack';
import { ArpFence } from './fence';
import { IpvsDriver, type IpvsServiceWant, type IpvsWant } from './ipvs';
import type { IpvsKernel } from './ipvs-ops';
import { RoutesDriver, type RoutesKernel, type RouteWant, type RoutesResult, type RoutesWant, type RuleWant } from './routes';
import { PlanAddressesKernel, PlanRoutesKernel } from './plan-kernels';
import { interestAddress, type KernelInterest } from './netlink/kernel-watch';
import { PlanRunner, type CommandRunner, type ProcessSpawner } from './runner';
import { SysctlDriver, type SysctlWant } from './sysctl';
import { ManualTimers, type Timers } from './timers';
import { DriverError, DriverInputError, silentLog, timer, type DriverLog, type ReconcileResult } from './types';
import { VipGroup, type VipGroupWant } from './vip';

/** Netlink backends of the drivers (failover/netlink/). */
export interface ActuatorKernels {
  readonly ipvs?: IpvsKernel;
  readonly routes?: RoutesKernel;
  readonly addresses?: AddressesKernel;
  readonly announcer?: Announcer;
}

export interface ActuatorOptions {
  timers?: Timers;
  /** The leader's validity check (design §4), asked before every gratuitous ARP. Default: always true. */
  canAnnounce?: () => boolean;
  log?: DriverLog;
  /** Let the IPVS driver restore real-server order by delete + re-add (default false). */
  fixOrder?: boolean;
  /** Re-read after every change (default true; plan turns it off). */
  verify?: boolean;
  /**
   * The leader's validity deadline (monotonic ms). When given, the VIP groups are guarded by the kernel
   * ARP fence (failover/fence.ts), whose elements expire at this deadline unless refreshFence() extends them.
   */
  fenceUntil?: () => number;
  /** The fence's transactions go to one long-lived `nft -i` started through this (default: one nft each). */
  spawner?: ProcessSpawner;
  /** Active-active groups: asked before every gratuitous ARP for a path address (default: always true). */
  canAnnouncePaths?: () => boolean;
  /**
   * Active-active groups: the monotonic deadline until which the kernel may answer ARP for this node's path
   * addresses (their own fence table). Without it, or with pathFenceMs 0, path addresses are not fenced.
   */
  pathFenceUntil?: () => number;
  /**
   * Kernel access without processes (netlink); each absent part goes through commands on the runner:
   * `ipvs` instead of ipvsadm, `routes` (rules and routes) and `addresses` (probe sources, VIPs, path
   * addresses) instead of `ip`, `announcer` (gratuitous ARP / NA frames) instead of arping and IPv6 re-adds.
   */
  kernel?: ActuatorKernels;
}

/** nftables table of the path addresses' fence (the leader VIPs' fence is DEFAULT_FENCE_TABLE). */
export const PATH_FENCE_TABLE = 'sandwich_paths';

export interface ReconcileOptions {
  /** This node holds its role's VIP groups (it is the leader for its role). */
  readonly holdsVips: boolean;
  /**
   * Asked again when the VIP step runs (it may wait in the VIP queue behind a takeover): the VIPs are
   * released only if still not wanted, and added only if still wanted. Default: holdsVips.
   */
  readonly wantVips?: () => boolean;
  /** Active-active groups: this node holds its path addresses (it is healthy). Default false. */
  readonly holdsPaths?: boolean;
  /** Asked again when the path step runs, like wantVips. Default: holdsPaths. */
  readonly wantPaths?: () => boolean;
}

export interface NodeWants {
  readonly sysctls: SysctlWant;
  /** Ingress nodes only. */
  readonly ipvs: IpvsWant | null;
  readonly addresses: AddressesWant;
  readonly routes: RoutesWant;
  /** IPv6 rules and routes (`ip -6`); null on a node without IPv6 services, probes, egress tables or VIPs. */
  readonly routes6: RoutesWant | null;
  /** Egress nodes: firewall table → the firewall whose next hop it uses. */
  readonly egressVia: ReadonlyMap<string, string>;
}

export interface AppliedState {
  readonly node: string;
  readonly role: Role;
  /** Revision of the desired state this pass worked from; null without one (configured weights). */
  readonly revision: number | null;
  /** Null when the IPVS driver failed this pass (or the node is not an ingress node: []). */
  readonly ipvs: { service: string; fwmark: number; ipv6: boolean; scheduler: string; flags: string[]; realServers: { firewall: string; address: string; weight: number }[] }[] | null;
  /** Null when the routes driver failed this pass. */
  readonly egressTables: { firewall: string; table: number; via: string; nextHop: string }[] | null;
  /** Leader-mode groups, and this node's path addresses of active-active groups (mode 'active-active'). */
  readonly vips: { group: string; mode?: 'leader' | 'active-active'; held: boolean; addresses: string[] }[];
}

export interface DriverFailure {
  readonly driver: string;
  readonly error: Error;
}

export interface ActuatorResult {
  readonly results: ReconcileResult[];
  /** Drivers that failed this pass; the others still ran. */
  readonly errors: DriverFailure[];
  readonly applied: AppliedState;
  readonly durationMs: number;
}

/** Commands `sandwich plan` treats as reads (run for real); everything else is printed. */
export function isReadCommand(file: string, args: readonly string[]): boolean {
  switch (file) {
    case 'ipvsadm':
      return args.length === 1 && /^-(S|L)n?$/.test(args[0]!) || (args[0] === '-Ln' && args[1] === '--exact');
    case 'cat':
      return args.length === 1 && args[0] === '/proc/net/ip_vs';
    case 'sysctl':
      return args[0] === '-n';
    case 'ip': {
      // `ip [-6] -j …` only shows (including `ip -j -batch -` of show commands); changes never use -j.
      const rest = args[0] === '-6' ? args.slice(1) : args;
      return rest[0] === '-j';
    }
    case 'conntrack':
      return args[0] === '-L';
    default:
      return false;
  }
}

function linuxIf(node: NodeConfig, logical: string): string {
  const dev = node.interfaces[logical];
  if (!dev) throw new DriverInputError('actuator', `node "${node.name}" has no interface "${logical}"`);
  return dev;
}

function fallbackFlag(scheduler: string): string {
  return `${scheduler}-fallback`;
}

/** The desired entry that sets a firewall's weight in a service: its own when it has checks of its own. */
function serviceEntry(desired: Desired | null, svc: ServiceConfig, fw: FirewallConfig) {
  return desired?.services?.[svc.name]?.[fw.name] ?? desired?.firewalls[fw.name];
}

/** The pure mapping from config + desired state to what this node's kernel should hold (VIP groups aside). */
export function nodeWants(config: Config, node: NodeConfig, desired: Desired | null): NodeWants {
  const sysctls: Record<string, string> = { 'net.ipv4.ip_forward': '1' };
  const present: AddressWant[] = [];
  const rules: RuleWant[] = [];
  const tables: Record<number, RouteWant[]> = {};
  const rules6: RuleWant[] = [];
  const tables6: Record<number, RouteWant[]> = {};
  const managedPriorities: number[] = [];
  const egressVia = new Map<string, string>();
  let ipvs: IpvsWant | null = null;
  let uses6 = false;
  let forwards6 = false;

  // Probe routing (both roles): source address per firewall, policy-routed through that firewall.
  if (node.probe) {
    const dev = linuxIf(node, node.probe.interface);
    managedPriorities.push(node.probe.rulePriority);
    config.firewalls.forEach((fw, i) => {
      const t = probeTable(node, i);
      const src = node.probe!.sources[fw.name];
      if (src) {
        present.push({ dev, address: `${src}/32` });
        rules.push({ priority: node.probe!.rulePriority, from: src, table: t });
        tables[t] = [{ dst: 'default', via: node.role === 'ingress' ? fw.ingressAddress : fw.egressAddress, dev }];
      }
      const src6 = node.probe!.sources6?.[fw.name];
      const via6 = node.role === 'ingress' ? fw.ingressAddress6 : fw.egressAddress6;
      if (src6 && via6) {
        uses6 = true;
        // nodad: usable at once (duplicate address detection would keep it tentative for a second or more).
        present.push({ dev, address: `${src6}/128`, nodad: true });
        rules6.push({ priority: node.probe!.rulePriority, from: src6, table: t });
        tables6[t] = [{ dst: 'default', via: via6, dev }];
      }
    });
  }

  if (node.role === 'ingress') {
    const s = config.ipvsSysctls;
    sysctls['net.ipv4.vs.expire_nodest_conn'] = s.expireNodestConn ? '1' : '0';
    sysctls['net.ipv4.vs.expire_quiescent_template'] = s.expireQuiescentTemplate ? '1' : '0';
    sysctls['net.ipv4.vs.sloppy_tcp'] = s.sloppyTcp ? '1' : '0';
    const remove = config.policy.downAction === 'remove';
    const realServers = (svc: ServiceConfig, v6: boolean) => config.firewalls.flatMap((fw) => {
      const d = serviceEntry(desired, svc, fw);
      if (d && d.state === 'down' && remove) return [];
      const address = v6 ? fw.ingressAddress6 : fw.ingressAddress;
      if (!address) throw new DriverInputError('actuator', `service "${svc.name}" is ${svc.family}: firewall "${fw.name}" has no ingressAddress6`);
      return [{ name: fw.name, address, weight: d ? d.weight : fw.weight }];
    });
    const services: IpvsServiceWant[] = config.services.flatMap((svc) => familiesOf(svc).map((fam) => ({
      fwmark: svc.fwmark,
      ...(fam === 6 ? { ipv6: true } : {}),
      scheduler: svc.scheduler,
      // Weight 0 (drain in either mode, down in quiesce mode) drops the clients hashed to it unless the fallback flag is set.
      flags: [fallbackFlag(svc.scheduler)],
      realServers: realServers(svc, fam === 6),
    })));
    ipvs = { services, downAction: config.policy.downAction };
    for (const svc of config.services) {
      managedPriorities.push(svc.rulePriority);
      if (familiesOf(svc).includes(4)) {
        rules.push({ priority: svc.rulePriority, fwmark: svc.fwmark, table: svc.localTable });
        tables[svc.localTable] = [{ dst: 'default', type: 'local', dev: 'lo' }];
      }
      if (familiesOf(svc).includes(6)) {
        uses6 = forwards6 = true;
        rules6.push({ priority: svc.rulePriority, fwmark: svc.fwmark, table: svc.localTable });
        tables6[svc.localTable] = [{ dst: 'default', type: 'local', dev: 'lo' }];
      }
    }
  } else {
    const fwIf = linuxIf(node, config.egress.firewallInterface);
    const serverIf = linuxIf(node, config.egress.serverInterface);
    const egress6 = config.firewalls.every((fw) => fw.egressAddress6 !== undefined);
    if (egress6) uses6 = forwards6 = true;
    managedPriorities.push(config.egress.rulePriority, config.egress.rulePriority - 1);
    config.firewalls.forEach((fw, i) => {
      const via = viaFirewall(config, fw, desired);
      egressVia.set(fw.name, via.name);
      tables[fw.table] = config.egress.routes.map((dst) => ({ dst, via: via.egressAddress, dev: fwIf }));
      rules.push({ priority: config.egress.rulePriority, fwmark: fw.mark, iif: serverIf, table: fw.table });
      // Replies to the ingress nodes' probes for this firewall always go back through it, even while
      // its table is re-pointed: otherwise a firewall once declared down could never be seen recovering.
      const pinned = probeTable(node, i);
      tables[pinned] = [{ dst: 'default', via: fw.egressAddress, dev: fwIf }];
      for (const n of config.nodes) {
        const src = n.role === 'ingress' ? n.probe?.sources[fw.name] : undefined;
        if (src) rules.push({ priority: config.egress.rulePriority - 1, to: src, iif: serverIf, table: pinned });
      }
      if (egress6) {
        tables6[fw.table] = config.egress.routes6.map((dst) => ({ dst, via: via.egressAddress6!, dev: fwIf }));
        rules6.push({ priority: config.egress.rulePriority, fwmark: fw.mark, iif: serverIf, table: fw.table });
        tables6[pinned] = [{ dst: 'default', via: fw.egressAddress6!, dev: fwIf }];
        for (const n of config.nodes) {
          const src6 = n.role === 'ingress' ? n.probe?.sources6?.[fw.name] : undefined;
          if (src6) rules6.push({ priority: config.egress.rulePriority - 1, to: src6, iif: serverIf, table: pinned });
        }
      }
    });
  }
  if (forwards6) sysctls['net.ipv6.conf.all.forwarding'] = '1';
  const routes: RoutesWant = { rules, tables, managedPriorities };
  const routes6: RoutesWant | null = uses6 ? { rules: rules6, tables: tables6, managedPriorities } : null;
  return { sysctls, ipvs, addresses: { present, absent: [] }, routes, routes6, egressVia };
}

function familiesOf(svc: ServiceConfig): (4 | 6)[] {
  return svc.family === 'dual' ? [4, 6] : svc.family === 'ipv6' ? [6] : [4];
}

function viaFirewall(config: Config, fw: FirewallConfig, desired: Desired | null): FirewallConfig {
  const name = desired?.firewalls[fw.name]?.egressVia ?? fw.name;
  const via = config.firewalls.find((f) => f.name === name);
  if (!via) throw new DriverInputError('actuator', `desired state re-points ${fw.name}'s egress table via unknown firewall "${name}"`);
  return via;
}

function vipGroupsFor(config: Config, node: NodeConfig): VipGroupWant[] {
  return config.vipGroups
    .filter((g) => g.role === node.role && g.mode === 'leader')
    .map((g) => ({ name: g.name, addresses: g.addresses.map((a) => ({ dev: linuxIf(node, a.interface), address: a.address })), garp: g.garp }));
}

/** This node's path addresses, one VIP-group driver per active-active group (announced by ARP when added). */
function pathGroupsFor(config: Config, node: NodeConfig): VipGroupWant[] {
  return pathGroupsOf(config, node)
    .map(({ group, paths }) => ({ name: group.name, addresses: paths.map((p) => ({ dev: linuxIf(node, p.interface), address: p.address })), garp: group.garp }));
}

export class Actuator {
  readonly node: NodeConfig;
  private readonly sysctl: SysctlDriver;
  private readonly ipvs: IpvsDriver;
  private readonly addresses: AddressesDriver;
  private readonly routes: RoutesDriver;
  private readonly routes6: RoutesDriver;
  private readonly conntrack: ConntrackDriver;
  /** Flushes that failed ("ipv4:fw1"): retried on the next passes while that firewall's table still points away from it. */
  private readonly pendingFlush = new Set<string>();
  private readonly vips: VipGroup[];
  /** Active-active groups: this node's path addresses. */
  private readonly paths: VipGroup[];
  private readonly log: DriverLog;
  private queue: Promise<unknown> = Promise.resolve();
  /** VIP addresses and the fence have their own queue: a takeover or release never waits for IPVS or routes. */
  private vipQueue: Promise<unknown> = Promise.resolve();
  /** Null without fenceUntil or without an IPv4 VIP. */
  readonly fence: ArpFence | null;
  /** The path addresses' fence; null without pathFenceUntil, with pathFenceMs 0 or without an IPv4 path address. */
  readonly pathFence: ArpFence | null;

  constructor(private readonly config: Config, nodeName: string, runner: CommandRunner, opts: ActuatorOptions = {}) {
    this.node = nodeByName(config, nodeName);
    this.log = opts.log ?? silentLog;
    const d = { verify: opts.verify ?? true, log: this.log };
    this.sysctl = new SysctlDriver(runner, d);
    // On by default: both LBs must keep the config's real-server order, or an LB failover re-hashes every flow.
    this.ipvs = new IpvsDriver(runner, { ...d, fixOrder: opts.fixOrder ?? true, ...(opts.kernel?.ipvs ? { kernel: opts.kernel.ipvs } : {}) });
    this.addresses = new AddressesDriver(opts.kernel?.addresses ?? runner, d);
    this.routes = new RoutesDriver(opts.kernel?.routes ?? runner, d);
    this.routes6 = new RoutesDriver(opts.kernel?.routes ?? runner, { ...d, family: 6 });
    this.conntrack = new ConntrackDriver(runner);
    this.vips = vipGroupsFor(config, this.node).map((g) => new VipGroup(runner, g, { ...d, timers: opts.timers, canAnnounce: opts.canAnnounce, addressesKernel: opts.kernel?.addresses, ...(opts.kernel?.announcer ? { announcer: opts.kernel.announcer } : {}) }));
    const fast = config.store.kind === 'etcd' && config.store.leadership.mode === 'fast' ? config.store.leadership : null;
    const windowMs = config.store.kind !== 'etcd' ? 0 : fast ? fast.takeoverAfterMs - fast.marginMs : config.store.leaseTtlS * 1000 * 0.75;
    // Fast profile: refresh when at least a third of the validity window is gained (not on every ~100 ms renewal).
    // Both: end the elements early by the host's recent nft latency, at most a quarter of the window.
    const fenceOpts = {
      maxLeadMs: Math.floor(windowMs / 4),
      ...(fast ? { minExtendMs: Math.floor(windowMs / 3) } : {}),
      ...(opts.spawner ? { spawner: opts.spawner, sessionTimeoutMs: config.timing.commandTimeoutMs } : {}),
    };
    const fence = opts.fenceUntil ? new ArpFence(runner, this.vips.flatMap((v) => v.group.addresses.map((a) => a.address)), opts.fenceUntil, fenceOpts) : null;
    this.fence = fence && !fence.empty ? fence : null;
    this.paths = pathGroupsFor(config, this.node).map((g) => new VipGroup(runner, g, { ...d, timers: opts.timers, canAnnounce: opts.canAnnouncePaths, kind: 'path', addressesKernel: opts.kernel?.addresses, ...(opts.kernel?.announcer ? { announcer: opts.kernel.announcer } : {}) }));
    // One fence table for every active-active group of the node; the shortest pathFenceMs sets its refresh pace.
    const fenced = pathGroupsOf(config, this.node).filter(({ group }) => group.pathFenceMs > 0);
    const holdMs = Math.min(...fenced.map(({ group }) => group.pathFenceMs));
    const pathFence = opts.pathFenceUntil && fenced.length > 0
      ? new ArpFence(runner, fenced.flatMap(({ paths }) => paths.map((p) => p.address)), opts.pathFenceUntil, {
          table: PATH_FENCE_TABLE,
          driver: 'path-fence',
          // Refreshed from a 100 ms timer: one nft about every third of the hold time is enough.
          minExtendMs: Math.floor(holdMs / 3),
          maxLeadMs: Math.floor(holdMs / 4),
          ...(opts.spawner ? { spawner: opts.spawner, sessionTimeoutMs: config.timing.commandTimeoutMs } : {}),
        })
      : null;
    this.pathFence = pathFence && !pathFence.empty ? pathFence : null;
  }

  /** The kernel objects this node manages (tables, rule priorities, addresses and their interfaces): the drift filter. */
  kernelInterest(): KernelInterest {
    const w = nodeWants(this.config, this.node, null);
    const addrs = [...w.addresses.present, ...[...this.vips, ...this.paths].flatMap((v) => v.group.addresses)];
    const routeDevs = [w.routes, w.routes6].flatMap((r) => (r ? Object.values(r.tables).flatMap((t) => t.map((x) => x.dev)) : []));
    return {
      tables4: new Set(Object.keys(w.routes.tables).map(Number)),
      tables6: new Set(Object.keys(w.routes6?.tables ?? {}).map(Number)),
      rulePriorities: new Set([...w.routes.rules, ...(w.routes6?.rules ?? [])].map((r) => r.priority).concat(w.routes.managedPriorities ?? [])),
      devs: new Set([...addrs.map((a) => a.dev), ...routeDevs].filter((d): d is string => d !== undefined && d !== 'lo')),
      addresses: new Set(addrs.map((a) => interestAddress(a.address.split('/')[0] ?? ''))),
    };
  }

  /** Active-active groups: this node's path addresses, with their current state. */
  get pathGroups(): readonly VipGroup[] {
    return this.paths;
  }

  /** VIP groups this node can hold, with their current state. */
  get vipGroups(): readonly VipGroup[] {
    return this.vips;
  }

  /**
   * Brings the kernel to `desired` (null: configured weights, every table via its own firewall).
   * Calls are serialised. Order: sysctls, IPVS, rules/routes (+ conntrack flush), probe addresses; on takeover
   * the VIP addresses and ARP come last;
   * on losing the VIPs, the VIP addresses go first.
   */
  reconcile(desired: Desired | null, opts: ReconcileOptions): Promise<ActuatorResult> {
    return this.serial(() => this.run(desired, opts));
  }

  /** Shutdown: release the VIP groups (addresses removed, announcements stopped); the data path stays (fail-static). */
  release(): Promise<ActuatorResult> {
    return this.vipSerial(async () => {
      const elapsed = timer();
      const results: ReconcileResult[] = [];
      const errors: DriverFailure[] = [];
      await this.releaseVips(results, errors);
      return { results, errors, applied: this.summary(null, null, null), durationMs: elapsed() };
    });
  }

  /**
   * Extends the ARP fence to the current validity deadline (on each acknowledged lease renewal). Not
   * queued behind a reconcile: it must not wait for the kernel's slower steps. False when skipped.
   */
  async refreshFence(): Promise<boolean> {
    return this.fence ? this.fence.refresh() : false;
  }

  /** Time left on the ARP fence as last set (ms), or null when it is not installed. */
  fenceRemainingMs(): number | null {
    return this.fence?.state === 'installed' ? this.fence.remainingMs() : null;
  }

  /** Active-active: extends the path addresses' fence while the node is healthy. False when skipped. */
  async refreshPathFence(): Promise<boolean> {
    return this.pathFence && this.paths.some((p) => p.held) ? this.pathFence.refresh() : false;
  }

  /** Active-active: withdraw this node's path addresses now (shutdown, health lost); nothing else changes. */
  releasePaths(): Promise<ActuatorResult> {
    return this.vipSerial(async () => {
      const elapsed = timer();
      const results: ReconcileResult[] = [];
      const errors: DriverFailure[] = [];
      await this.withdrawPaths(results, errors);
      return { results, errors, applied: this.summary(null, null, null), durationMs: elapsed() };
    });
  }

  /** Stops ARP timers and the fences' long-lived nft without touching the kernel (shutdown, tests, plan). */
  close(): void {
    for (const v of [...this.vips, ...this.paths]) v.close();
    void this.fence?.close();
    void this.pathFence?.close();
  }

  /** Resolves when background ARP runs have finished. */
  async settled(): Promise<void> {
    await Promise.all([...this.vips, ...this.paths].map((v) => v.settled()));
  }

  /**
   * `sandwich plan`: the commands a reconcile would run, reading the real kernel through `reader` (and through
   * `kernels` for the drivers that have a kernel seam, e.g. rtnetlink).
   */
  static async plan(config: Config, nodeName: string, reader: CommandRunner, desired: Desired | null, opts: ReconcileOptions, kernels: { routes?: RoutesKernel; addresses?: AddressesKernel } = {}): Promise<{ commands: string[]; errors: DriverFailure[] }> {
    const planner = new PlanRunner(reader, isReadCommand);
    const record = (line: string) => void planner.planned.push(line);
    const a = new Actuator(config, nodeName, planner, {
      verify: false,
      timers: new ManualTimers(),
      kernel: {
        ...(kernels.routes ? { routes: new PlanRoutesKernel(kernels.routes, record) } : {}),
        ...(kernels.addresses ? { addresses: new PlanAddressesKernel(kernels.addresses, record) } : {}),
      },
    });
    try {
      const r = await a.reconcile(desired, opts);
      return { commands: [...planner.planned], errors: r.errors };
    } finally {
      a.close();
    }
  }

  /**
   * Takeover fast path: fence, VIP addresses and gratuitous ARP now, without the data-path drivers
   * (the reconcile that follows finds them done). Only while canAnnounce() says so, like every ARP.
   */
  takeVips(): Promise<ActuatorResult> {
    return this.vipSerial(async () => {
      const elapsed = timer();
      const results: ReconcileResult[] = [];
      const errors: DriverFailure[] = [];
      await this.holdVips(results, errors);
      return { results, errors, applied: this.summary(null, null, null), durationMs: elapsed() };
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private vipSerial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.vipQueue.then(fn, fn);
    this.vipQueue = next.catch(() => undefined);
    return next;
  }

  private async holdVips(results: ReconcileResult[], errors: DriverFailure[]): Promise<void> {
    // Fence first: the addresses never appear on the interface unguarded.
    const fence = this.fence;
    const fenced = fence ? await this.step('fence', results, errors, () => fence.hold()) : true;
    if (fenced) for (const v of this.vips) await this.step(v.driver, results, errors, () => v.reconcile(true), true);
  }

  /** The want each driver last applied successfully (JSON), to tell drift from a change of want. */
  private readonly lastWant = new Map<string, string>();

  /** Runs one driver; `want` (when given) lets a change found with an unchanged want be reported as drift. */
  private async step<T extends ReconcileResult>(driver: string, results: ReconcileResult[], errors: DriverFailure[], fn: () => Promise<T>, want?: unknown): Promise<T | null> {
    const key = want === undefined ? undefined : JSON.stringify(want);
    try {
      const r = await fn();
      const drift = key !== undefined && r.commands.length > 0 && this.lastWant.get(driver) === key;
      if (key === undefined) this.lastWant.delete(driver);
      else this.lastWant.set(driver, key);
      // Results and errors are returned to the caller, which logs them; drivers log only what happens in the background (ARP).
      results.push(drift ? { ...r, drift } : r);
      return r;
    } catch (e) {
      // The want it last applied stays recorded: a fix after a failed pass with the same want is still drift.
      const error = e instanceof Error ? e : new Error(String(e));
      errors.push({ driver: e instanceof DriverError ? e.driver : driver, error });
      return null;
    }
  }

  private async holdPaths(results: ReconcileResult[], errors: DriverFailure[]): Promise<void> {
    const fence = this.pathFence;
    const fenced = fence ? await this.step('path-fence', results, errors, () => fence.hold()) : true;
    if (fenced) for (const p of this.paths) await this.step(p.driver, results, errors, () => p.reconcile(true), true);
  }

  private async withdrawPaths(results: ReconcileResult[], errors: DriverFailure[]): Promise<void> {
    for (const p of this.paths) await this.step(p.driver, results, errors, () => p.release(), false);
    const fence = this.pathFence;
    if (fence && !errors.some((e) => e.driver.startsWith('path:'))) await this.step('path-fence', results, errors, () => fence.release());
  }

  private async releaseVips(results: ReconcileResult[], errors: DriverFailure[]): Promise<void> {
    for (const v of this.vips) await this.step(v.driver, results, errors, () => v.release(), false);
    // The fence goes only once the addresses are gone: with an address left, it still guards it.
    const fence = this.fence;
    if (fence && !errors.some((e) => e.driver.startsWith('vip:'))) await this.step('fence', results, errors, () => fence.release());
  }

  private async run(desired: Desired | null, opts: ReconcileOptions): Promise<ActuatorResult> {
    const elapsed = timer();
    const results: ReconcileResult[] = [];
    const errors: DriverFailure[] = [];
    const want = opts.wantVips ?? (() => opts.holdsVips);
    const holdsPaths = opts.holdsPaths ?? false;
    const wantPaths = opts.wantPaths ?? (() => holdsPaths);
    // Path addresses: withdrawn first (like VIPs being given up), held last (after IPVS follows the desired state).
    const withdraw = async () => {
      if (!opts.holdsVips) await this.vipSerial(async () => (want() ? undefined : this.releaseVips(results, errors)));
      if (!holdsPaths && this.paths.length > 0) await this.vipSerial(async () => (wantPaths() ? undefined : this.withdrawPaths(results, errors)));
    };
    let wants: NodeWants;
    try {
      wants = nodeWants(this.config, this.node, desired);
    } catch (e) {
      errors.push({ driver: 'actuator', error: e as Error });
      await withdraw();
      return { results, errors, applied: this.summary(desired, null, null), durationMs: elapsed() };
    }
    await withdraw();
    await this.step('sysctl', results, errors, () => this.sysctl.reconcile(wants.sysctls), wants.sysctls);
    const ipvs = wants.ipvs ? await this.step('ipvs', results, errors, () => this.ipvs.reconcile(wants.ipvs!), wants.ipvs) : null;
    const routes = await this.step<RoutesResult>('routes', results, errors, () => this.routes.reconcile(wants.routes), wants.routes);
    const routes6 = wants.routes6 ? await this.step<RoutesResult>('routes6', results, errors, () => this.routes6.reconcile(wants.routes6!), wants.routes6) : null;
    if (this.node.role === 'egress' && this.config.egress.flushConntrack) {
      // A table that just moved away from its own firewall: that firewall's marked flows must be re-marked.
      // A flush that failed is tried again on the next passes, as long as the table still points away.
      for (const [r, family] of [[routes, 'ipv4'], [routes6, 'ipv6']] as const) {
        for (const fw of this.config.firewalls) {
          const key = `${family}:${fw.name}`;
          if (wants.egressVia.get(fw.name) === fw.name) {
            this.pendingFlush.delete(key);
          } else if (r && (r.changedTables.includes(fw.table) || this.pendingFlush.has(key))) {
            const done = await this.step('conntrack', results, errors, () => this.conntrack.flushMark(fw.mark, family));
            if (done) this.pendingFlush.delete(key);
            else this.pendingFlush.add(key);
          }
        }
      }
    }
    // Probe source addresses last among the data-path steps: nothing urgent depends on them.
    await this.step('addresses', results, errors, () => this.addresses.reconcile(wants.addresses), wants.addresses);
    if (opts.holdsVips) await this.vipSerial(async () => (want() ? this.holdVips(results, errors) : undefined));
    // Not while IPVS failed this pass: a node whose table may differ from the others' must not attract flows.
    if (holdsPaths && this.paths.length > 0) {
      if (wants.ipvs && ipvs === null) {
        for (const p of this.paths) errors.push({ driver: p.driver, error: new DriverError(p.driver, `${p.driver}: path not taken: the IPVS step failed this pass (this node's table may differ from the other nodes')`) });
      } else {
        await this.vipSerial(async () => (wantPaths() ? this.holdPaths(results, errors) : undefined));
      }
    }
    return {
      results,
      errors,
      applied: this.summary(desired, wants.ipvs && ipvs ? wants.ipvs : null, routes && (routes6 || !wants.routes6) ? wants : null),
      durationMs: elapsed(),
    };
  }

  private summary(desired: Desired | null, ipvs: IpvsWant | null, wants: NodeWants | null): AppliedState {
    const byAddress = new Map(this.config.firewalls.flatMap((f) => [[f.ingressAddress, f.name], ...(f.ingressAddress6 ? [[f.ingressAddress6, f.name]] : [])] as [string, string][]));
    const isIngress = this.node.role === 'ingress';
    return {
      node: this.node.name,
      role: this.node.role,
      revision: desired?.revision ?? null,
      ipvs: !isIngress
        ? []
        : ipvs
          ? ipvs.services.map((s) => ({
              service: this.config.services.find((c) => c.fwmark === s.fwmark)?.name ?? String(s.fwmark),
              fwmark: s.fwmark,
              ipv6: s.ipv6 ?? false,
              scheduler: s.scheduler,
              flags: [...s.flags],
              realServers: s.realServers.map((r) => ({ firewall: byAddress.get(r.address) ?? r.address, address: r.address, weight: r.weight })),
            }))
          : null,
      egressTables: isIngress
        ? []
        : wants
          ? this.config.firewalls.map((fw) => {
              const via = wants.egressVia.get(fw.name) ?? fw.name;
              return { firewall: fw.name, table: fw.table, via, nextHop: this.config.firewalls.find((f) => f.name === via)?.egressAddress ?? '' };
            })
          : null,
      vips: [
        ...this.vips.map((v) => ({ group: v.group.name, held: v.held, addresses: v.group.addresses.map((a) => `${a.address} dev ${a.dev}`) })),
        ...this.paths.map((v) => ({ group: v.group.name, mode: 'active-active' as const, held: v.held, addresses: v.group.addresses.map((a) => `${a.address} dev ${a.dev}`) })),
      ],
    };
  }
}
