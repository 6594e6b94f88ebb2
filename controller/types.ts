// The data that flows observe → decide → act. Plain, serialisable, immutable by convention.
import type { Config, Role } from './config';

/** Result of rise/fall counting for one (observer node, firewall, check). */
export type ProbeState = 'unknown' | 'up' | 'down';

export interface Observation {
  readonly node: string;
  readonly role: Role;
  readonly firewall: string;
  readonly check: string;
  readonly state: ProbeState;
  /** When `state` began (ms since epoch). */
  readonly since: number;
  /** When this observation was last refreshed (ms since epoch). */
  readonly updatedAt: number;
  /** Consecutive results of the current kind (successes while up, failures while down). */
  readonly streak: number;
  /** Last failure message, e.g. "timeout after 800 ms"; null after a success. */
  readonly lastError: string | null;
  /** Round-trip time of the last successful probe. */
  readonly rttMs: number | null;
}

export type FirewallState = 'up' | 'draining' | 'down';

export interface DesiredFirewall {
  readonly state: FirewallState;
  /** IPVS weight to apply (0 while draining or down). */
  readonly weight: number;
  /** Which firewall's next hop the egress table of this firewall uses (itself unless down). */
  readonly egressVia: string;
  /** One sentence: why this firewall is in this state. */
  readonly reason: string;
  /** When `state` began. */
  readonly since: number;
  /** While down: when the evidence turned healthy (hold-down start), else null. */
  readonly healthySince: number | null;
  /** Up although failing: kept in service only by policy allDown fail-open. decide() always sets it. */
  readonly failOpen?: boolean;
}

export interface Desired {
  /** Increases by one on every change of `firewalls`. */
  readonly revision: number;
  /** Node that decided it. */
  readonly decidedBy: string;
  readonly decidedAt: number;
  readonly firewalls: Readonly<Record<string, DesiredFirewall>>;
  /**
   * Services judged by checks of their own (services[].checks): service → firewall → entry, decided like
   * `firewalls` on the firewall checks plus the service's. Their egressVia is unused (always the firewall).
   * Absent when no service has checks of its own.
   */
  readonly services?: Readonly<Record<string, Readonly<Record<string, DesiredFirewall>>>>;
}

export interface Drain {
  readonly firewall: string;
  readonly by: string;
  readonly reason: string;
  readonly since: number;
}

export interface Maintenance {
  readonly name: string;
  readonly firewall: string;
  /** Active until (ms since epoch). */
  readonly until: number;
}

/** Everything decide() may look at; built once per cycle, never mutated. */
export interface Snapshot {
  readonly config: Config;
  readonly now: number;
  /** The node deciding (the cluster leader for its role, or the only node). */
  readonly leader: string;
  readonly observations: readonly Observation[];
  readonly drains: readonly Drain[];
  readonly maintenance: readonly Maintenance[];
  readonly previous: Desired | null;
}

export interface Decision {
  readonly desired: Desired;
  /** One sentence per change, printed verbatim by events and status. Empty when nothing changed. */
  readonly reasons: readonly string[];
  /** True when `desired.firewalls` or `desired.services` differs from the previous one. */
  readonly changed: boolean;
}
