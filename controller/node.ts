// One controller per host: observe (probes) → decide (leader only, pure decide()) → act (every node reconciles its kernel).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathDrainFile, pathVerdict, readPathDrain, type PathDrain, type PathVerdict } from './active-active';
import type { Config, NodeConfig, Role } from './config';
import { pathGroupsOf } from './config';
import { decide, desiredEqual } from './decide';
import type { EventLog } from './events';
import type { CoordinationStore, Leadership, NodeStatus, SwitchoverRequest } from './store';
import { targetProblem } from './switchover';
import type { Desired, Observation } from './types';

export type Lifecycle = 'STARTING' | 'RUNNING' | 'STOPPING' | 'STOPPED';

/** What the loop needs from failover/ (the Actuator implements it). */
export interface NodeActuator {
  reconcile(desired: Desired | null, opts: { holdsVips: boolean; wantVips?: () => boolean; holdsPaths?: boolean; wantPaths?: () => boolean }): Promise<ActResult>;
  /** Remove the VIP group's addresses at once (fencing, shutdown); nothing else changes. */
  releaseVips(): Promise<void>;
  /** Active-active groups: withdraw this node's path addresses at once (shutdown); nothing else changes. */
  releasePaths?(): Promise<void>;
  /** Active-active groups: extend the path addresses' kernel ARP fence (the node is healthy); false when skipped. */
  refreshPathFence?(): Promise<boolean>;
  /** Extend the kernel ARP fence to the validity deadline (fenceUntil); false when skipped. */
  refreshFence?(): Promise<boolean>;
  /** Takeover fast path: fence, VIP addresses and ARP only (the next reconcile does the rest). */
  takeVips?(): Promise<ActResult>;
  /** Time left on the kernel ARP fence (ms), or null when none is installed. */
  fenceRemainingMs?(): number | null;
}

export interface ActResult {
  readonly results: readonly { driver: string; differences: readonly string[]; commands: readonly string[]; durationMs: number; drift?: boolean }[];
  /** Drivers that failed this pass; the others still applied. */
  readonly errors?: readonly { driver: string; error: Error }[];
  readonly applied: unknown;
}

/** What the loop needs from checks/ (the ProbeEngine implements it). */
export interface Prober {
  start(): void;
  stop(): Promise<void>;
  snapshot(): Observation[];
}

export interface NodeDeps {
  config: Config;
  node: string;
  store: CoordinationStore;
  actuator: NodeActuator;
  /** Built with a callback into the node: see `onObservation`. */
  prober: (onObservation: (o: Observation, changed: boolean) => void) => Prober;
  events: EventLog;
  now?: () => number;
  /** Monotonic clock in ms (performance.now()). */
  mono?: () => number;
  /** Write a status file in config.runtimeDir (off in unit tests). */
  statusFile?: boolean;
}

export class NodeController {
  readonly config: Config;
  readonly self: NodeConfig;
  private lifecycle: Lifecycle = 'STARTING';
  private leadership: Leadership | null = null;
  /** The switchover this node resigned for (target, local wall time): honoured even if the request is withdrawn meanwhile. */
  private resignedFor: { to: string; at: number } | null = null;
  private holdsVips = false;
  private desired: { value: Desired; version: number } | null = null;
  private appliedRevision: number | null = null;
  private lastApplied: unknown = null;
  private lastDrift: string[] = [];
  private prober!: Prober;
  private timers: NodeJS.Timeout[] = [];
  private unwatch: (() => void) | null = null;
  private reconcileRunning: Promise<void> | null = null;
  private reconcileAgain = false;
  private lastPublished = new Map<string, number>();
  private readonly now: () => number;
  private readonly mono: () => number;
  private stopping = false;
  /** Active-active VIP groups: this node has path addresses; whether they are held. */
  private readonly hasPaths: boolean;
  private readonly pathFenceMs: number;
  private pathsHeld = false;
  /** `sandwich drain-node` on this host, read by the 100 ms timer (a file in runtimeDir). */
  private pathDrain: PathDrain | null = null;

  constructor(private readonly deps: NodeDeps) {
    this.config = deps.config;
    const self = deps.config.nodes.find((n) => n.name === deps.node);
    if (!self) throw new Error(`node "${deps.node}" is not in the config (known: ${deps.config.nodes.map((n) => n.name).join(', ')})`);
    this.self = self;
    const groups = pathGroupsOf(deps.config, self).filter((g) => g.paths.length > 0);
    this.hasPaths = groups.length > 0;
    // The same window as the Actuator's path fence: the shortest of the fenced groups (pathFenceMs 0: no fence).
    this.pathFenceMs = Math.min(...groups.map((g) => g.group.pathFenceMs).filter((ms) => ms > 0));
    this.now = deps.now ?? Date.now;
    this.mono = deps.mono ?? (() => performance.now());
  }

  get role(): Role {
    return this.self.role;
  }
  get state(): Lifecycle {
    return this.lifecycle;
  }
  get isLeader(): boolean {
    return this.leadership !== null && this.mono() < this.leadership.validUntil();
  }
  /** True while the VIP group may be announced: leadership provable right now. */
  canAnnounce = (): boolean => this.isLeader && !this.stopping;
  /** Monotonic deadline until which the kernel may answer ARP for the VIPs (the ARP fence's expiry). */
  fenceUntil = (): number => (this.leadership && !this.stopping ? this.leadership.validUntil() : Number.NEGATIVE_INFINITY);

  /** Active-active: whether this node should hold its path addresses now, and why (controller/active-active.ts). */
  pathVerdict(): PathVerdict {
    return pathVerdict({
      config: this.config, node: this.self, lifecycle: this.lifecycle, stopping: this.stopping,
      hasDesired: this.desired !== null, observations: this.prober?.snapshot() ?? [], drain: this.pathDrain,
    });
  }
  /** Asked before every path-address step and gratuitous ARP. */
  wantPaths = (): boolean => this.hasPaths && this.pathVerdict().hold;
  /** Monotonic deadline until which the kernel may answer ARP for the path addresses: pathFenceMs from now while healthy. */
  pathFenceUntil = (): number => (this.wantPaths() ? this.mono() + this.pathFenceMs : Number.NEGATIVE_INFINITY);
  get holdsPaths(): boolean {
    return this.pathsHeld;
  }

  /** On each acknowledged lease renewal: the leader extends its kernel ARP fence. */
  leaseRenewed = (): void => {
    if (!this.deps.actuator.refreshFence || !this.canAnnounce()) return;
    this.deps.actuator.refreshFence().catch((e: unknown) => this.error('ARP fence refresh', e));
  };

  private emit(e: Parameters<EventLog['emit']>[0]): void {
    this.deps.events.emit(e);
  }

  async start(): Promise<void> {
    const c = this.config;
    this.emit({ event: 'lifecycle', node: this.self.name, reason: `${this.self.name} starting as ${this.role} node (store ${c.store.kind})` });
    this.prober = this.deps.prober((o, changed) => this.onObservation(o, changed));
    this.unwatch = this.deps.store.watch((e) => {
      if (e === 'desired') void this.refreshDesired().then(() => this.kickReconcile(), (err) => this.storeTrouble('read desired', err));
      if (e === 'observations' || e === 'drains' || e === 'maintenance') this.requestDecide();
      // A resigned or expired leader key: a standby campaigns now rather than at its next tick.
      if (e === 'switchover') void this.tick(true);
      if (e === 'leader' && !this.leadership) {
        // Fast profile: a renewal by the leader only re-arms the takeover timer; a deleted or unseen key: campaign now.
        // After a resignation for a switchover, a tick sees the target lead and ends the switchover (yieldsToSwitchover).
        const due = this.deps.store.takeoverDueInMs?.(this.role);
        if (typeof due === 'number' && due > 0 && !this.resignedFor) this.scheduleTakeover();
        else void this.tick(true);
      }
    });
    await this.refreshDesired().catch((e) => this.storeTrouble('read desired', e));
    // Probe sources and their policy routing must exist before the first probe, or every probe
    // fails at start-up ("cannot assign requested address") and firewalls are judged on nothing.
    await this.requestReconcile();
    this.prober.start();
    if (this.hasPaths) this.pathDrain = readPathDrain(pathDrainFile(this.config, this.self.name));
    this.lifecycle = 'RUNNING';
    this.every(c.timing.decideIntervalMs, () => this.tick());
    this.every(c.timing.reconcileIntervalMs, () => this.requestReconcile());
    this.every(Math.max(50, Math.floor(c.timing.observationStaleMs / 4)), () => this.refreshObservations());
    this.every(100, () => this.fenceCheck());
    await this.tick();
    // Not awaited: under load, reconcile requests can keep one reconcile loop running for long.
    this.kickReconcile();
  }

  private every(ms: number, fn: () => unknown): void {
    const t = setInterval(() => void Promise.resolve().then(fn).catch((e) => this.error('timer', e)), ms);
    this.timers.push(t);
  }

  private error(where: string, e: unknown): void {
    this.emit({ event: 'error', level: 'error', node: this.self.name, reason: `${where}: ${e instanceof Error ? e.message : String(e)}` });
  }

  private storeTrouble(what: string, e: unknown): void {
    this.emit({ event: 'error', level: 'warn', node: this.self.name, reason: `store: ${what} failed: ${e instanceof Error ? e.message : String(e)}; data path left as it is` });
  }

  // --- observe ---

  private onObservation(o: Observation, changed: boolean): void {
    // Active-active: a probe state change may make this node take or withdraw its path.
    if (changed && this.hasPaths && this.lifecycle === 'RUNNING') this.pathCheck();
    if (changed) {
      this.emit({
        event: 'probe', node: o.node, firewall: o.firewall, check: o.check, state: o.state,
        reason: `${o.check} via ${o.firewall} ${o.state}${o.lastError ? `: ${o.lastError}` : o.rttMs !== null ? ` (rtt ${o.rttMs.toFixed(1)} ms)` : ''}`,
      });
      void this.publish(o);
    }
  }

  private async publish(o: Observation): Promise<void> {
    if (this.stopping) return;
    try {
      await this.deps.store.putObservation(o);
      this.lastPublished.set(`${o.firewall}/${o.check}`, o.updatedAt);
    } catch (e) {
      this.storeTrouble(`publish ${o.firewall}/${o.check}`, e);
    }
  }

  /** Keep every observation fresh in the store (they go stale after observationStaleMs). */
  private async refreshObservations(): Promise<void> {
    if (this.stopping) return;
    const refreshMs = this.config.timing.observationStaleMs / 4;
    const due = this.prober.snapshot().filter((o) => o.updatedAt - (this.lastPublished.get(`${o.firewall}/${o.check}`) ?? 0) >= refreshMs);
    if (due.length === 0) return;
    try {
      // One request for all of them (one etcd write), not one per observation.
      await this.deps.store.putObservations(due);
      for (const o of due) this.lastPublished.set(`${o.firewall}/${o.check}`, o.updatedAt);
    } catch (e) {
      this.storeTrouble(`refresh ${due.length} observations`, e);
    }
  }

  // --- leadership and decide ---

  /** The deciding node: the ingress leader, or the egress leader when the cluster has no ingress leader. */
  private async isDecider(): Promise<boolean> {
    if (!this.isLeader) return false;
    if (this.role === 'ingress') return true;
    return (await this.deps.store.getLeader('ingress')) === null;
  }

  private ticking = false;
  /** An event asked for a tick while one ran (a switchover or leader-key event): run another right after. */
  private tickAgain = false;
  /** @param event asked for by an event, not the periodic timer: never dropped, at most one queued. */
  private async tick(event = false): Promise<void> {
    if (this.lifecycle !== 'RUNNING' || this.stopping) return;
    if (this.ticking) {
      this.tickAgain ||= event;
      return;
    }
    this.ticking = true;
    try {
      do {
        this.tickAgain = false;
        try {
          await this.handleSwitchover();
          if (this.leadership) await this.confirmLeadership(this.leadership);
          if (!this.leadership) await this.campaign();
          await this.decideNow();
        } catch (e) {
          this.storeTrouble('tick', e);
        }
      } while (this.tickAgain && this.lifecycle === 'RUNNING' && !this.stopping);
    } finally {
      this.ticking = false;
    }
  }

  private async campaign(): Promise<void> {
    const sw = await this.deps.store.getSwitchover(this.role);
    if (await this.yieldsToSwitchover(sw)) return;
    const l = await this.deps.store.campaign(this.role, this.self.name);
    if (!l) {
      this.scheduleTakeover();
      return;
    }
    this.resignedFor = null;
    if (sw?.to === this.self.name) await this.deps.store.deleteSwitchover(this.role);
    this.leadership = l;
    this.emit({ event: 'leader', node: this.self.name, reason: `${this.self.name} is now ${this.role} leader${sw ? ` (switchover requested by ${sw.requestedBy})` : ''}` });
    void l.lost.then(() => this.onLeadershipLost(l, 'leadership lost in the store'));
    void this.takeVips();
    this.kickReconcile();
  }

  /**
   * Whether a switchover to another node is still under way, so this node must not campaign: requested
   * and younger than switchoverTimeoutMs, or this node resigned for it less than that long ago. The
   * resignation counts even when the request is gone: the CLI withdraws it after its wait, possibly after
   * the leader read it (seen in the lab VM), and campaigning at once would hand leadership straight back.
   * It is over as soon as another node leads (the target, normally): from then on the normal takeover
   * rules apply, so a kill -9 of the new leader is taken over like any other.
   */
  private async yieldsToSwitchover(sw: SwitchoverRequest | null): Promise<boolean> {
    const wait = this.config.timing.switchoverTimeoutMs;
    const forOther = (to: string | null, at: number) => to !== null && to !== this.self.name && this.now() - at < wait;
    const r = this.resignedFor;
    if (r && !forOther(r.to, r.at)) this.resignedFor = null;
    if (!(sw && forOther(sw.to, sw.at)) && !this.resignedFor) return false;
    const leader = await this.deps.store.getLeader(this.role);
    if (leader === null || leader.node === this.self.name) return true;
    this.resignedFor = null;
    return false;
  }

  private takeoverTimer: NodeJS.Timeout | null = null;
  /**
   * Fast profile: campaign again the moment the leader key's revision seen may be taken over, not at
   * the next decide tick (which would add up to decideIntervalMs to every failover).
   */
  private scheduleTakeover(): void {
    const due = this.deps.store.takeoverDueInMs?.(this.role);
    if (due === null || due === undefined || !Number.isFinite(due) || this.stopping) return;
    if (this.takeoverTimer) clearTimeout(this.takeoverTimer);
    const attempt = (): void => {
      this.takeoverTimer = null;
      if (this.stopping || this.leadership) return;
      void this.tick(true); // runs right after a tick already running
    };
    this.takeoverTimer = setTimeout(attempt, due + 1);
  }

  /** Takeover: the VIP group first, before the (slower) full reconcile. */
  private async takeVips(): Promise<void> {
    if (!this.deps.actuator.takeVips || !this.canAnnounce()) return;
    try {
      const r = await this.deps.actuator.takeVips();
      this.reportResults(r, this.desired?.value.revision ?? null);
      // Reported here, not through reportDriverErrors: this pass ran only the VIP drivers.
      for (const f of r.errors ?? []) this.error(`take VIPs: ${f.driver}`, f.error);
      await this.afterVipStep(true, 'leadership lapsed while taking the VIPs');
    } catch (e) {
      this.error('take VIPs', e);
    }
  }

  /** The VIP groups this node's role moves with its leadership (none on an egress node, usually). */
  private leaderVipGroups() {
    return this.config.vipGroups.filter((g) => g.role === this.role && g.mode === 'leader');
  }

  /** After a pass that wanted the VIPs held (or not): undo if leadership lapsed meanwhile, else record and announce. */
  private async afterVipStep(wantVips: boolean, lapsed: string): Promise<void> {
    if (wantVips && !this.canAnnounce()) {
      await this.dropVips(lapsed);
    } else if (wantVips !== this.holdsVips) {
      this.holdsVips = wantVips;
      const groups = this.leaderVipGroups();
      if (wantVips && groups.length > 0) this.emit({ event: 'vip', node: this.self.name, reason: `holding VIP group${groups.map((g) => ` ${g.name}`).join(',')}; gratuitous ARP sent` });
    }
  }

  /** The leader key can vanish without the session ending (deleted by hand): re-read it each tick. */
  private async confirmLeadership(l: Leadership): Promise<void> {
    const rec = await this.deps.store.getLeader(this.role);
    if (this.leadership === l && (rec === null || rec.node !== this.self.name)) {
      await this.onLeadershipLost(l, `the leader key now names ${rec?.node ?? 'nobody'}`);
    }
  }

  private async onLeadershipLost(l: Leadership, why: string): Promise<void> {
    if (this.leadership !== l) return;
    this.leadership = null;
    this.emit({ event: 'leader', level: 'warn', node: this.self.name, reason: `${this.self.name} is no longer ${this.role} leader: ${why}` });
    await this.dropVips(why);
  }

  /** Fencing: drop the VIP group as soon as leadership can no longer be proven (docs/coordination.md). */
  private async fenceCheck(): Promise<void> {
    const l = this.leadership;
    if (l && this.mono() >= l.validUntil()) await this.onLeadershipLost(l, 'lease not renewed in time (validity expired)');
    if (!this.hasPaths || this.stopping) return;
    this.pathDrain = readPathDrain(pathDrainFile(this.config, this.self.name));
    // Active-active: the path fence lives while this timer finds the node healthy.
    if (!this.pathCheck() && this.pathsHeld && this.deps.actuator.refreshPathFence) {
      await this.deps.actuator.refreshPathFence().catch((e: unknown) => this.error('path fence refresh', e));
    }
  }

  /**
   * Active-active: acts on a change of verdict. Withdrawal goes straight to the path addresses (it must not
   * wait behind a slow reconcile); taking the path needs a reconcile (IPVS must follow the desired state
   * first). Returns true when it started something.
   */
  private pathCheck(): boolean {
    const v = this.pathVerdict();
    if (v.hold === this.pathsHeld) return false;
    // A pass that tried to take the path and failed is retried at most once a second, not every 100 ms.
    if (v.hold && this.mono() - this.lastPathTry < 1000) return false;
    if (v.hold) this.kickReconcile();
    else void this.withdrawPaths(v);
    return true;
  }

  private withdrawing = false;
  /** When a reconcile pass last set out to take the path (monotonic ms). */
  private lastPathTry = Number.NEGATIVE_INFINITY;
  private async withdrawPaths(v: PathVerdict): Promise<void> {
    if (this.withdrawing || !this.deps.actuator.releasePaths) {
      if (!this.deps.actuator.releasePaths) this.kickReconcile();
      return;
    }
    this.withdrawing = true;
    try {
      await this.deps.actuator.releasePaths();
      if (this.pathsHeld && !this.wantPaths()) this.afterPathStep(v, { results: [], applied: null });
    } catch (e) {
      this.error('withdraw path', e);
    } finally {
      this.withdrawing = false;
    }
  }

  /** Idempotent: also runs when a reconcile that was adding the VIPs is still in flight. */
  private async dropVips(why: string): Promise<void> {
    const held = this.holdsVips;
    this.holdsVips = false;
    try {
      await this.deps.actuator.releaseVips();
      if (held && this.leaderVipGroups().length > 0) this.emit({ event: 'vip', node: this.self.name, reason: `released VIP group: ${why}` });
    } catch (e) {
      this.error('release VIPs', e);
    }
  }

  private async handleSwitchover(): Promise<void> {
    if (!this.leadership) return;
    const sw = await this.deps.store.getSwitchover(this.role);
    if (!sw || sw.to === this.self.name) return;
    const problem = sw.to ? await targetProblem(this.config, this.deps.store, this.role, sw.to, this.now()) : null;
    if (problem) {
      await this.deps.store.deleteSwitchover(this.role);
      this.emit({ event: 'switchover', level: 'warn', node: this.self.name, reason: `switchover to ${sw.to} refused by ${this.self.name}: ${problem}` });
      return;
    }
    const l = this.leadership;
    this.emit({ event: 'switchover', node: this.self.name, reason: `switchover of ${this.role} leadership from ${this.self.name} to ${sw.to ?? 'any healthy node'} requested by ${sw.requestedBy}` });
    this.leadership = null;
    if (sw.to !== null) this.resignedFor = { to: sw.to, at: this.now() };
    await this.dropVips('switchover');
    await this.deps.store.resign(l);
    this.emit({ event: 'leader', node: this.self.name, reason: `${this.self.name} resigned ${this.role} leadership for switchover` });
  }

  private deciding = false;
  /** An event asked for a decide pass that has not started yet. */
  private decidePending = false;
  private decideTimer: NodeJS.Timeout | null = null;
  private lastDecideStart = Number.NEGATIVE_INFINITY;
  private lastDecideMs = 0;

  /**
   * Store events ask for a decide pass: one starts at once when none runs; a request during a pass
   * causes one more pass after it. Never dropped; a burst costs one trailing pass. No fixed delay: the
   * next pass waits only as long as the last one took, so a stream of changes keeps this node and etcd
   * deciding at most half of the time.
   */
  private requestDecide(): void {
    this.decidePending = true;
    if (this.deciding || this.decideTimer || this.stopping) return;
    const wait = this.lastDecideStart + 2 * this.lastDecideMs - this.mono();
    if (wait > 0) {
      this.decideTimer = setTimeout(() => {
        this.decideTimer = null;
        this.requestDecide();
      }, wait);
      return;
    }
    void this.decideNow();
  }

  private async decideNow(): Promise<void> {
    if (this.deciding || this.stopping) return;
    this.deciding = true;
    this.decidePending = false;
    const started = (this.lastDecideStart = this.mono());
    try {
      if (!(await this.isDecider())) return;
      const store = this.deps.store;
      const [observations, drains, maintenance, current] = await Promise.all([
        store.listObservations(), store.listDrains(), store.listMaintenance(), store.getDesired(),
      ]);
      const now = this.now();
      const d = decide({ config: this.config, now, leader: this.self.name, observations, drains, maintenance, previous: current?.value ?? null });
      // Written whenever anything changed, hold-down bookkeeping included, so a new leader continues it.
      if (current && desiredEqual(current.value, d.desired)) return;
      // State is written before it is acted on: the CAS fails if someone else decided meanwhile.
      const ok = await store.putDesired(d.desired, current?.version ?? null, this.leadership!);
      if (!ok) return;
      // decide() starts each sentence with the firewall it is about.
      for (const reason of d.reasons) {
        const fw = this.config.firewalls.find((f) => reason.startsWith(`${f.name} `))?.name;
        this.emit({ event: 'verdict', node: this.self.name, ...(fw ? { firewall: fw } : {}), reason, revision: d.desired.revision });
      }
      await this.refreshDesired();
      this.kickReconcile();
    } catch (e) {
      this.storeTrouble('decide', e);
    } finally {
      this.deciding = false;
      this.lastDecideMs = this.mono() - started;
      if (this.decidePending) this.requestDecide();
    }
  }

  private async refreshDesired(): Promise<void> {
    const d = await this.deps.store.getDesired();
    if (d && (!this.desired || d.version !== this.desired.version)) this.desired = d;
  }

  // --- act ---

  /** Starts a reconcile without waiting for it: deciding and campaigning must never wait on the kernel. */
  private kickReconcile(): void {
    void this.requestReconcile();
  }

  /** Serialised: one reconcile at a time; a request during a run causes one more run. Never rejects. */
  requestReconcile(): Promise<void> {
    if (this.reconcileRunning) {
      this.reconcileAgain = true;
      return this.reconcileRunning;
    }
    this.reconcileRunning = (async () => {
      do {
        this.reconcileAgain = false;
        await this.reconcileOnce();
      } while (this.reconcileAgain && !this.stopping);
    })().finally(() => (this.reconcileRunning = null));
    return this.reconcileRunning;
  }

  private async reconcileOnce(): Promise<void> {
    if (this.stopping) return;
    const desired = this.desired?.value ?? null;
    const wantVips = this.canAnnounce();
    const verdict = this.hasPaths ? this.pathVerdict() : null;
    const started = this.mono();
    if (verdict?.hold) this.lastPathTry = started;
    try {
      const r = await this.deps.actuator.reconcile(desired, {
        holdsVips: wantVips, wantVips: () => this.canAnnounce(),
        ...(verdict ? { holdsPaths: verdict.hold, wantPaths: () => this.wantPaths() } : {}),
      });
      if (verdict) this.afterPathStep(verdict, r);
      const revision = desired?.revision ?? null;
      const drift = this.reportResults(r, revision);
      // Became leader while this pass ran: the takeover path (takeVips) owns the VIPs now.
      if (wantVips || !this.canAnnounce()) await this.afterVipStep(wantVips, 'leadership lapsed during reconcile');
      this.reportDriverErrors(r.errors ?? []);
      this.appliedRevision = revision;
      this.lastApplied = r.applied;
      this.lastDrift = drift;
    } catch (e) {
      this.error('reconcile', e);
    }
    await this.writeStatus(this.mono() - started);
  }

  /** Active-active: record whether the path addresses are held now; one event per hold/withdraw. */
  private afterPathStep(v: PathVerdict, r: ActResult): void {
    // A failed path step is reported by reportDriverErrors; the next pass retries. A verdict that turned while
    // the pass ran differs from pathsHeld at the next fence check, which starts another pass.
    if ((r.errors ?? []).some((e) => e.driver.startsWith('path'))) return;
    const held = v.hold;
    if (held === this.pathsHeld) return;
    this.pathsHeld = held;
    const groups = pathGroupsOf(this.config, this.self).filter((g) => g.paths.length > 0);
    const what = groups.map((g) => `${g.group.name} (${g.paths.map((p) => p.address).join(', ')})`).join(', ');
    this.emit({ event: 'vip', level: held ? 'info' : 'warn', node: this.self.name, reason: held ? `${v.reason}; path addresses of ${what} added, gratuitous ARP sent` : `${v.reason}; path addresses of ${what} removed` });
  }

  /** One event per driver that changed the kernel; returns the drift found (changes behind our back). */
  private reportResults(r: ActResult, revision: number | null): string[] {
    const drift: string[] = [];
    for (const res of r.results) {
      if (res.commands.length === 0) continue;
      // Drift: the kernel differed although what we want had not changed (someone changed it behind us).
      const kind = res.drift ? 'drift' : 'kernel';
      if (kind === 'drift') drift.push(...res.differences.map((d) => `${res.driver}: ${d}`));
      this.emit({
        event: kind, level: kind === 'drift' ? 'warn' : 'info', node: this.self.name, driver: res.driver,
        reason: kind === 'drift'
          ? `drift corrected (${res.driver}): ${res.differences.join('; ')}`
          : `applied ${res.driver}: ${res.differences.join('; ')}`,
        commands: res.commands, durationMs: res.durationMs, revision,
      });
    }
    return drift;
  }

  /** One event when a driver starts failing or its error changes, one when it recovers (no spam every pass). */
  private driverErrors = new Map<string, string>();
  private reportDriverErrors(errors: readonly { driver: string; error: Error }[]): void {
    const now = new Map(errors.map((e) => [e.driver, e.error.message]));
    for (const [driver, msg] of now) {
      if (this.driverErrors.get(driver) !== msg) this.emit({ event: 'error', level: 'error', node: this.self.name, driver, reason: `${driver}: ${msg}` });
    }
    for (const driver of this.driverErrors.keys()) {
      if (!now.has(driver)) this.emit({ event: 'kernel', node: this.self.name, driver, reason: `${driver}: working again` });
    }
    this.driverErrors = now;
  }

  private async writeStatus(_reconcileMs: number): Promise<void> {
    const s: NodeStatus = {
      node: this.self.name, role: this.role, lifecycle: this.lifecycle, updatedAt: this.now(),
      appliedRevision: this.appliedRevision, holdsVips: this.holdsVips, applied: this.lastApplied, drift: this.lastDrift,
      errors: [...this.driverErrors].map(([driver, message]) => `${driver}: ${message}`),
      ...(this.deps.actuator.fenceRemainingMs ? { fenceRemainingMs: this.deps.actuator.fenceRemainingMs() } : {}),
      ...(this.hasPaths ? { paths: { held: this.pathsHeld, reason: this.pathVerdict().reason } } : {}),
    };
    if (this.deps.statusFile !== false) {
      try {
        mkdirSync(this.config.runtimeDir, { recursive: true });
        const file = join(this.config.runtimeDir, `${this.self.name}.status.json`);
        const body = { ...s, leader: this.isLeader, desired: this.desired?.value ?? null, observations: this.prober?.snapshot() ?? [] };
        writeFileSync(`${file}.tmp`, JSON.stringify(body, null, 2));
        renameSync(`${file}.tmp`, file);
      } catch (e) {
        this.error('status file', e);
      }
    }
    // Written when it changed, else as often as observations are refreshed (it goes stale like them).
    const { updatedAt: _u, fenceRemainingMs: _f, ...content } = s;
    const same = JSON.stringify(content) === this.lastStatus.content;
    if (same && this.now() - this.lastStatus.at < this.config.timing.observationStaleMs / 4) return;
    try {
      await this.deps.store.putNodeStatus(s);
      this.lastStatus = { content: JSON.stringify(content), at: s.updatedAt };
    } catch (e) {
      this.storeTrouble('publish status', e);
    }
  }
  /** The last status written to the store, without its timestamps. */
  private lastStatus = { content: '', at: Number.NEGATIVE_INFINITY };

  // --- stop ---

  /** Clean stop: probes stopped, VIP group released, leadership resigned, events flushed by the caller. */
  async stop(why = 'stop requested'): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.lifecycle = 'STOPPING';
    this.emit({ event: 'lifecycle', node: this.self.name, reason: `${this.self.name} stopping: ${why}` });
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.takeoverTimer) clearTimeout(this.takeoverTimer);
    if (this.decideTimer) clearTimeout(this.decideTimer);
    this.unwatch?.();
    // Active-active: the path goes first, so the router moves this node's flows to the others while its IPVS still
    // forwards. It does not wait for a running reconcile pass (seconds on a slow host): that pass asks wantPaths()
    // (false from now on) before each path step, and the release queues behind a path step already under way.
    if (this.hasPaths && this.deps.actuator.releasePaths) {
      try {
        await this.deps.actuator.releasePaths();
        if (this.pathsHeld) this.emit({ event: 'vip', level: 'warn', node: this.self.name, reason: `${this.self.name} withdraws its path: controller stopping (${why})` });
        this.pathsHeld = false;
      } catch (e) {
        this.error('withdraw path', e);
      }
    }
    await this.reconcileRunning?.catch(() => undefined);
    await this.prober?.stop();
    await this.dropVips('controller stopping');
    const l = this.leadership;
    this.leadership = null;
    if (l) await this.deps.store.resign(l).catch((e) => this.storeTrouble('resign', e));
    this.lifecycle = 'STOPPED';
    this.emit({ event: 'lifecycle', node: this.self.name, reason: `${this.self.name} stopped; data path left as it is` });
  }
}
