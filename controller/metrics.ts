// Prometheus metrics (prom-client 15), fed from what the daemon already sees: every probe result,
// every event, every reconcile result. The NodeController needs no change to be measured. Plus prom-client's
// process and Node.js metrics (resident memory, heap, event-loop lag, GC), read at scrape time.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { processStarts as allProcessStarts, type ProcessStarts } from '../failover/runner';
import type { Config, Role } from './config';
import { pathGroupsOf } from './config';
import type { EventLog, SandwichEvent } from './events';
import type { ActResult, NodeActuator } from './node';
import type { Desired, FirewallState, Observation } from './types';

const FIREWALL_STATES: readonly FirewallState[] = ['up', 'draining', 'down'];
const ROLES: readonly Role[] = ['ingress', 'egress'];

/** What a scrape asks the running node (read at scrape time). */
export interface MetricsSource {
  isLeader(): boolean;
  /** Active-active VIP groups: this node holds its path addresses. */
  holdsPaths?(): boolean;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly checkUp: Gauge;
  private readonly checkResults: Counter;
  private readonly checkRtt: Histogram;
  private readonly firewallState: Gauge;
  private readonly firewallWeight: Gauge;
  private readonly firewallFailovers: Counter;
  private readonly leader: Gauge;
  private readonly leadershipAcquired: Counter;
  private readonly leadershipLost: Counter;
  private readonly switchovers: Counter;
  private readonly reconcileSeconds: Histogram;
  private readonly driftCorrections: Counter;
  private readonly driverErrors: Counter;
  private readonly desiredRevision: Gauge;
  private readonly lastState = new Map<string, FirewallState>();
  private source: MetricsSource | null = null;

  /** processStarts: the process-wide count (failover/runner.ts); tests pass their own. */
  constructor(private readonly config: Config, private readonly node: string, processStarts: ProcessStarts = allProcessStarts) {
    const self = config.nodes.find((n) => n.name === node);
    if (!self) throw new Error(`metrics: node "${node}" is not in the config`);
    const role = self.role;
    const registers = [this.registry];
    this.registry.setDefaultLabels({ cluster: config.cluster, node });
    this.checkUp = new Gauge({ name: 'sandwich_check_up', help: 'Rise/fall state of a check through a firewall as this node sees it: 1 up, 0 down, -1 unknown', labelNames: ['firewall', 'check'], registers });
    this.checkResults = new Counter({ name: 'sandwich_check_results_total', help: 'Probe results by outcome (success or failure)', labelNames: ['firewall', 'check', 'result'], registers });
    this.checkRtt = new Histogram({
      name: 'sandwich_check_rtt_seconds', help: 'Round-trip time of successful probes', labelNames: ['firewall', 'check'], registers,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    });
    this.firewallState = new Gauge({ name: 'sandwich_firewall_state', help: 'Desired state of each firewall (1 for its current state)', labelNames: ['firewall', 'state'], registers });
    this.firewallWeight = new Gauge({ name: 'sandwich_firewall_weight', help: 'Desired IPVS weight of each firewall', labelNames: ['firewall'], registers });
    this.firewallFailovers = new Counter({ name: 'sandwich_firewall_failovers_total', help: 'Times a firewall left service (up → down or draining) in the desired state this node applied', labelNames: ['firewall', 'to'], registers });
    this.desiredRevision = new Gauge({ name: 'sandwich_desired_revision', help: 'Revision of the desired state this node last applied', registers });
    this.leader = new Gauge({
      name: 'sandwich_leader', help: 'This node leads its role (1) or not (0)', labelNames: ['role'], registers,
      collect: () => {
        for (const r of ROLES) this.leader.set({ role: r }, r === role && this.source?.isLeader() ? 1 : 0);
      },
    });
    const pathGroups = pathGroupsOf(config, self).filter((g) => g.paths.length > 0).map((g) => g.group.name);
    const pathHeld: Gauge = new Gauge({
      name: 'sandwich_path_held', help: 'Active-active VIP groups: this node holds its path addresses (1) or has withdrawn them (0); no series on a node without such a group', labelNames: ['group'], registers,
      collect: () => {
        const held = this.source?.holdsPaths?.() ?? false;
        for (const group of pathGroups) pathHeld.set({ group }, held ? 1 : 0);
      },
    });
    this.leadershipAcquired = new Counter({ name: 'sandwich_leadership_acquired_total', help: 'Times this node became leader of its role', labelNames: ['role'], registers });
    this.leadershipLost = new Counter({ name: 'sandwich_leadership_lost_total', help: 'Times this node lost leadership (lease, fencing, key changed) without resigning', labelNames: ['role'], registers });
    this.switchovers = new Counter({ name: 'sandwich_switchovers_total', help: 'Manual switchovers in which this node handed over leadership', labelNames: ['role'], registers });
    this.reconcileSeconds = new Histogram({
      name: 'sandwich_reconcile_duration_seconds', help: 'Duration of one reconcile pass (read kernel, diff, apply)', labelNames: ['outcome'], registers,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    });
    this.driftCorrections = new Counter({ name: 'sandwich_drift_corrections_total', help: 'Reconcile passes that corrected drift, per driver', labelNames: ['driver'], registers });
    const starts: Counter = new Counter({
      name: 'sandwich_process_starts_total', help: 'Processes this controller started (ip, ipvsadm, ping, …), by program; 0 per minute in steady state is the goal', labelNames: ['program'], registers,
      collect: () => {
        starts.reset();
        for (const [program, n] of processStarts.byProgram()) starts.inc({ program }, n);
      },
    });
    this.driverErrors = new Counter({ name: 'sandwich_driver_errors_total', help: 'Reconcile passes in which a driver failed', labelNames: ['driver'], registers });
    // process_resident_memory_bytes, nodejs_heap_size_used_bytes, nodejs_eventloop_lag_seconds, …: issue 6 sets
    // the controller an RSS goal (docs/benchmarks.md, bench/controller-rss.ts), so operators can watch it too.
    collectDefaultMetrics({ register: this.registry });
    for (const r of ROLES) {
      this.leadershipAcquired.inc({ role: r }, 0);
      this.leadershipLost.inc({ role: r }, 0);
      this.switchovers.inc({ role: r }, 0);
    }
  }

  /** The running node, asked at scrape time. */
  attach(source: MetricsSource): void {
    this.source = source;
  }

  /** Every probe result (changed or not). */
  observation(o: Observation): void {
    this.checkUp.set({ firewall: o.firewall, check: o.check }, o.state === 'up' ? 1 : o.state === 'down' ? 0 : -1);
    const success = o.lastError === null && o.rttMs !== null;
    this.checkResults.inc({ firewall: o.firewall, check: o.check, result: success ? 'success' : 'failure' });
    if (success && o.rttMs !== null) this.checkRtt.observe({ firewall: o.firewall, check: o.check }, o.rttMs / 1000);
  }

  /** Every event this node logs. Only this node's own leadership events are counted. */
  event(e: SandwichEvent): void {
    if (e.node !== this.node) return;
    const role = this.config.nodes.find((n) => n.name === this.node)!.role;
    if (e.event === 'leader') {
      if (e.reason.includes(` is now ${role} leader`)) this.leadershipAcquired.inc({ role });
      else if (e.reason.includes(` is no longer ${role} leader`)) this.leadershipLost.inc({ role });
    } else if (e.event === 'switchover' && e.level !== 'warn' && e.reason.startsWith(`switchover of ${role} leadership from ${this.node} `)) {
      this.switchovers.inc({ role });
    }
  }

  /** One reconcile pass: the desired state it applied, how long it took, what it did. */
  reconcile(desired: Desired | null, seconds: number, r: ActResult | null): void {
    this.reconcileSeconds.observe({ outcome: r === null ? 'exception' : (r.errors?.length ?? 0) > 0 ? 'partial' : 'ok' }, seconds);
    if (r) {
      for (const res of r.results) if (res.drift && res.commands.length > 0) this.driftCorrections.inc({ driver: res.driver });
      for (const e of r.errors ?? []) this.driverErrors.inc({ driver: e.driver });
    }
    if (!desired) return;
    this.desiredRevision.set(desired.revision);
    for (const [fw, d] of Object.entries(desired.firewalls)) {
      for (const s of FIREWALL_STATES) this.firewallState.set({ firewall: fw, state: s }, s === d.state ? 1 : 0);
      this.firewallWeight.set({ firewall: fw }, d.weight);
      const before = this.lastState.get(fw);
      if (before === 'up' && d.state !== 'up') this.firewallFailovers.inc({ firewall: fw, to: d.state });
      this.lastState.set(fw, d.state);
    }
  }

  /** An EventLog that also feeds these metrics. */
  tapEvents(log: EventLog): EventLog {
    return {
      emit: (e) => {
        this.event(e);
        log.emit(e);
      },
      close: () => log.close(),
    };
  }

  /** The same actuator, its reconcile passes measured (other methods pass through untouched). */
  tapActuator<A extends NodeActuator>(a: A): A {
    const reconcile: NodeActuator['reconcile'] = async (desired, opts) => {
      const started = performance.now();
      try {
        const r = await a.reconcile(desired, opts);
        this.reconcile(desired, (performance.now() - started) / 1000, r);
        return r;
      } catch (e) {
        this.reconcile(desired, (performance.now() - started) / 1000, null);
        throw e;
      }
    };
    return new Proxy(a, {
      get(target, prop, receiver) {
        if (prop === 'reconcile') return reconcile;
        const v: unknown = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(target) : v;
      },
    });
  }

  /** Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
