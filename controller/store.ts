// CoordinationStore: the narrow seam between the controller and etcd (or the in-memory store).
// Each method states what it promises to be atomic. Implementations put a deadline on every call.
import type { Role } from './config';
import type { Desired, Drain, Maintenance, Observation } from './types';

export interface Versioned<T> {
  readonly value: T;
  /** Opaque, increases on every write of this key (etcd: mod revision). */
  readonly version: number;
}

export interface LeaderRecord {
  readonly role: Role;
  readonly node: string;
  /** When this node became leader (ms since epoch). */
  readonly since: number;
}

/** Proof of leadership held by this process. */
export interface Leadership {
  readonly role: Role;
  readonly node: string;
  readonly since: number;
  /** Store-specific token compared in leader-only writes (etcd: the lease id). */
  readonly token: string;
  /**
   * Monotonic deadline (performance.now() ms) after which this process must act as if it has
   * lost leadership, unless a renewal has moved it. Computed from the *send* time of the last
   * acknowledged renewal + TTL − safety margin.
   */
  validUntil(): number;
  /** Resolves when leadership is known lost or resigned. */
  readonly lost: Promise<void>;
}

export interface SwitchoverRequest {
  readonly role: Role;
  /** Target node, or null for "any other healthy node". */
  readonly to: string | null;
  readonly from: string;
  readonly requestedBy: string;
  readonly at: number;
}

/** What a node reports about itself (status, applied kernel state, drift). */
export interface NodeStatus {
  readonly node: string;
  readonly role: Role;
  readonly lifecycle: string;
  readonly updatedAt: number;
  readonly appliedRevision: number | null;
  readonly holdsVips: boolean;
  readonly applied: unknown;
  readonly drift: readonly string[];
  /** Drivers failing right now ("ipvs: IPVS not available …"). */
  readonly errors?: readonly string[];
  /** Time left on the kernel ARP fence when the status was written (at updatedAt); null: no fence installed. */
  readonly fenceRemainingMs?: number | null;
  /** Active-active VIP groups: whether this node holds its path addresses, and the verdict's sentence. */
  readonly paths?: { readonly held: boolean; readonly reason: string };
}

export type StoreEvent = 'observations' | 'desired' | 'drains' | 'maintenance' | 'leader' | 'switchover' | 'status';

export interface CoordinationStore {
  /** Write one observation (atomic per key). It disappears when this node's session ends. */
  putObservation(o: Observation): Promise<void>;
  /** Write several observations of this node in as few requests as the store allows (refreshes); atomic per key. */
  putObservations(os: readonly Observation[]): Promise<void>;
  /** Every observation, read in one consistent snapshot. */
  listObservations(): Promise<Observation[]>;

  getDesired(): Promise<Versioned<Desired> | null>;
  /**
   * Compare-and-swap of the desired state, atomic with a check that `leadership` is still the
   * current leader record: succeeds only if the stored version equals `expectedVersion`
   * (null = key absent) AND the leader key still belongs to this leadership. False otherwise.
   */
  putDesired(desired: Desired, expectedVersion: number | null, leadership: Leadership): Promise<boolean>;

  /** Drains are cluster-wide; put/delete are atomic per firewall. */
  listDrains(): Promise<Drain[]>;
  putDrain(d: Drain): Promise<void>;
  deleteDrain(firewall: string): Promise<boolean>;

  listMaintenance(): Promise<Maintenance[]>;
  putMaintenance(m: Maintenance): Promise<void>;
  deleteMaintenance(name: string): Promise<boolean>;

  /**
   * Try once to become leader of `role`: atomic create-if-absent of the leader key, bound to
   * this node's session. Null if another node holds it.
   */
  campaign(role: Role, node: string): Promise<Leadership | null>;
  /**
   * Fast leadership profile, after a failed campaign: ms until the leader key's revision that
   * campaign saw may be taken over (campaign again then), or null (lease profile: the key's
   * deletion is watched instead).
   */
  takeoverDueInMs?(role: Role): number | null;
  /** Give up leadership: the leader key is deleted only if it is still ours (atomic). */
  resign(l: Leadership): Promise<void>;
  getLeader(role: Role): Promise<LeaderRecord | null>;

  /** One pending switchover per role; put overwrites, take deletes and returns it atomically. */
  putSwitchover(r: SwitchoverRequest): Promise<void>;
  getSwitchover(role: Role): Promise<SwitchoverRequest | null>;
  deleteSwitchover(role: Role): Promise<void>;

  /** Node status, bound to the node's session. */
  putNodeStatus(s: NodeStatus): Promise<void>;
  listNodeStatus(): Promise<NodeStatus[]>;

  /** Calls `fn` after any change under the cluster's prefix. Returns an unsubscribe function. */
  watch(fn: (e: StoreEvent) => void): () => void;
  close(): Promise<void>;
}

export class StoreError extends Error {
  override name = 'StoreError';
}

/** A value read from the store failed validation: names the key and what is wrong. */
export class StoreDataError extends StoreError {
  override name = 'StoreDataError';
  constructor(readonly key: string, message: string) {
    super(`${key}: ${message}`);
  }
}
