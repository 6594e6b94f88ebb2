// In-memory CoordinationStore: standalone mode (one controller) and unit tests.
// Atomicity is trivial here: every method runs to completion on the event loop.
import type { Role } from './config';
import type { CoordinationStore, Leadership, LeaderRecord, NodeStatus, StoreEvent, SwitchoverRequest, Versioned } from './store';
import type { Desired, Drain, Maintenance, Observation } from './types';

export class MemoryStore implements CoordinationStore {
  private readonly observations = new Map<string, Observation>();
  private desired: Versioned<Desired> | null = null;
  private readonly drains = new Map<string, Drain>();
  private readonly maintenance = new Map<string, Maintenance>();
  private readonly leaders = new Map<Role, LeaderRecord & { token: string; lose: () => void }>();
  private readonly switchovers = new Map<Role, SwitchoverRequest>();
  private readonly statuses = new Map<string, NodeStatus>();
  private readonly watchers = new Set<(e: StoreEvent) => void>();
  private version = 0;
  private tokens = 0;

  constructor(private readonly now: () => number = Date.now) {}

  private emit(e: StoreEvent): void {
    for (const w of this.watchers) queueMicrotask(() => w(e));
  }

  async putObservation(o: Observation): Promise<void> {
    this.observations.set(`${o.node}/${o.firewall}/${o.check}`, o);
    this.emit('observations');
  }
  async putObservations(os: readonly Observation[]): Promise<void> {
    for (const o of os) this.observations.set(`${o.node}/${o.firewall}/${o.check}`, o);
    if (os.length > 0) this.emit('observations');
  }
  async listObservations(): Promise<Observation[]> {
    return [...this.observations.values()];
  }

  async getDesired(): Promise<Versioned<Desired> | null> {
    return this.desired;
  }
  async putDesired(desired: Desired, expectedVersion: number | null, l: Leadership): Promise<boolean> {
    const cur = this.leaders.get(l.role);
    if (!cur || cur.token !== l.token) return false;
    if ((this.desired?.version ?? null) !== expectedVersion) return false;
    this.desired = { value: desired, version: ++this.version };
    this.emit('desired');
    return true;
  }

  async listDrains(): Promise<Drain[]> {
    return [...this.drains.values()];
  }
  async putDrain(d: Drain): Promise<void> {
    this.drains.set(d.firewall, d);
    this.emit('drains');
  }
  async deleteDrain(firewall: string): Promise<boolean> {
    const had = this.drains.delete(firewall);
    if (had) this.emit('drains');
    return had;
  }

  async listMaintenance(): Promise<Maintenance[]> {
    return [...this.maintenance.values()];
  }
  async putMaintenance(m: Maintenance): Promise<void> {
    this.maintenance.set(m.name, m);
    this.emit('maintenance');
  }
  async deleteMaintenance(name: string): Promise<boolean> {
    const had = this.maintenance.delete(name);
    if (had) this.emit('maintenance');
    return had;
  }

  async campaign(role: Role, node: string): Promise<Leadership | null> {
    if (this.leaders.has(role)) return null;
    const token = String(++this.tokens);
    const since = this.now();
    let lose!: () => void;
    const lost = new Promise<void>((r) => (lose = r));
    this.leaders.set(role, { role, node, since, token, lose });
    this.emit('leader');
    return { role, node, since, token, lost, validUntil: () => Number.POSITIVE_INFINITY };
  }
  async resign(l: Leadership): Promise<void> {
    const cur = this.leaders.get(l.role);
    if (cur?.token === l.token) {
      this.leaders.delete(l.role);
      cur.lose();
      this.emit('leader');
    }
  }
  async getLeader(role: Role): Promise<LeaderRecord | null> {
    const cur = this.leaders.get(role);
    return cur ? { role: cur.role, node: cur.node, since: cur.since } : null;
  }

  async putSwitchover(r: SwitchoverRequest): Promise<void> {
    this.switchovers.set(r.role, r);
    this.emit('switchover');
  }
  async getSwitchover(role: Role): Promise<SwitchoverRequest | null> {
    return this.switchovers.get(role) ?? null;
  }
  async deleteSwitchover(role: Role): Promise<void> {
    this.switchovers.delete(role);
  }

  async putNodeStatus(s: NodeStatus): Promise<void> {
    this.statuses.set(s.node, s);
    this.emit('status');
  }
  async listNodeStatus(): Promise<NodeStatus[]> {
    return [...this.statuses.values()];
  }

  watch(fn: (e: StoreEvent) => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }
  async close(): Promise<void> {
    this.watchers.clear();
    for (const l of this.leaders.values()) l.lose();
    this.leaders.clear();
  }
}
