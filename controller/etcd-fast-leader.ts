// The fast leadership profile (store.leadership.mode: fast; docs/coordination.md).
//
// No lease: the leader rewrites leader/<role> by compare-and-swap on its own mod revision every
// renewIntervalMs. A standby that has seen the same revision for takeoverAfterMs (on its own
// monotonic clock, from the moment it first saw it) takes the key over by compare-and-swap on that
// revision. The leader's validity ends at the send time of its last acknowledged renewal +
// takeoverAfterMs − marginMs. Why two leaders cannot act at once:
//   A renewal acknowledged at send time S was committed at C ≥ S. A standby can only see that
//   revision after C, so its takeover waits until ≥ C + takeoverAfterMs ≥ S + takeoverAfterMs; a
//   later renewal moves the revision and makes the standby's compare fail. The old leader stopped
//   (and its kernel fence expired, if nft applied it within marginMs) at S + takeoverAfterMs − marginMs.
// Unlike the lease profile, nothing here depends on etcd's lessor: every renewal and takeover is a
// raft-committed write (an etcd leader stalled by CPU starvation cannot revoke a lease early, etcd #15247).
import type { Role } from './config';
import type { Leadership } from './store';

export interface FastLeadershipOptions {
  renewIntervalMs: number;
  takeoverAfterMs: number;
  marginMs: number;
}

export type RenewResult =
  | { ok: true; revision: string }
  /** Compare failed: the key's current value and revision, or null when it is gone. */
  | { ok: false; current: { value: Buffer; revision: string } | null };

export interface FastLeadershipHooks {
  /** One CAS: put our value if the key's mod revision is still `revision`. */
  renew(revision: string): Promise<RenewResult>;
  /** After each acknowledged renewal, with its send time (performance.now()). Must not throw. */
  onRenewed?(sendTimeMono: number): void;
  onError?(e: Error): void;
  onLost?(reason: string): void;
}

export class FastLeadership implements Leadership {
  readonly lost: Promise<void>;
  private resolveLost!: () => void;
  private state: 'held' | 'lost' = 'held';
  private endedAt = Number.POSITIVE_INFINITY;
  lostReason = '';
  private timer: NodeJS.Timeout | null = null;
  private inflight = false;
  private suspended = false;

  constructor(
    readonly role: Role,
    readonly node: string,
    readonly since: number,
    /** Exact bytes of the leader key's value (compared in leader-only writes; unique per leadership). */
    readonly value: Buffer,
    /** Mod revision of our latest write of the key. */
    public revision: string,
    /** Send time (performance.now()) of the write that made us leader. */
    private lastAckSend: number,
    private readonly opts: FastLeadershipOptions,
    private readonly hooks: FastLeadershipHooks,
  ) {
    this.lost = new Promise((r) => (this.resolveLost = r));
    this.schedule();
  }

  get token(): string {
    return this.revision;
  }

  validUntil(): number {
    return Math.min(this.lastAckSend + this.opts.takeoverAfterMs - this.opts.marginMs, this.endedAt);
  }

  /** Stops renewing without telling etcd (fault injection: a stalled process). */
  suspend(): void {
    this.suspended = true;
  }

  /** Resigned (or store closed): stop renewing; validity ends now. */
  end(reason: string): void {
    if (this.state === 'lost') return;
    this.state = 'lost';
    this.endedAt = Math.min(this.endedAt, performance.now());
    this.lostReason = reason;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.resolveLost();
    this.hooks.onLost?.(reason);
  }

  private schedule(): void {
    const untilInvalid = this.validUntil() - performance.now();
    this.timer = setTimeout(() => this.tick(), Math.max(0, Math.min(this.opts.renewIntervalMs, untilInvalid)));
    this.timer.unref();
  }

  private tick(): void {
    if (this.state !== 'held') return;
    if (performance.now() >= this.validUntil()) {
      this.end(`not renewed within ${this.opts.takeoverAfterMs - this.opts.marginMs} ms (validity expired)`);
      return;
    }
    // One renewal at a time: two in flight on the same revision would make the second fail its compare.
    if (!this.inflight && !this.suspended) void this.renewOnce();
    this.schedule();
  }

  private async renewOnce(): Promise<void> {
    this.inflight = true;
    const sent = performance.now();
    try {
      const r = await this.hooks.renew(this.revision);
      if (this.state !== 'held') return;
      if (r.ok) {
        this.revision = r.revision;
        if (sent > this.lastAckSend) {
          this.lastAckSend = sent;
          this.hooks.onRenewed?.(sent);
        }
      } else if (r.current && r.current.value.equals(this.value)) {
        // An earlier renewal whose answer was lost did commit: keep renewing from its revision.
        // Its send time is unknown here, so validity is not extended.
        this.revision = r.current.revision;
      } else {
        this.end(r.current ? 'the leader key was taken over' : 'the leader key was deleted');
      }
    } catch (e) {
      if (this.state === 'held') this.hooks.onError?.(e instanceof Error ? e : new Error(String(e)));
    } finally {
      this.inflight = false;
    }
  }
}

/**
 * A standby's view of a leader key it does not hold: the revision it last saw and when it first saw
 * it (performance.now(), taken after the answer arrived, so after that revision was committed).
 */
export class TakeoverClock {
  private seen = new Map<Role, { revision: string; at: number }>();
  constructor(private readonly takeoverAfterMs: number) {}

  /** Records a reading; true once `revision` has been seen unchanged for takeoverAfterMs. */
  observe(role: Role, revision: string, at: number): boolean {
    const s = this.seen.get(role);
    if (!s || s.revision !== revision) {
      this.seen.set(role, { revision, at });
      return false;
    }
    return at - s.at >= this.takeoverAfterMs;
  }

  /** Ms from `now` until the revision last seen may be taken over (0: already), or null if none seen. */
  dueInMs(role: Role, now: number): number | null {
    const s = this.seen.get(role);
    return s ? Math.max(0, s.at + this.takeoverAfterMs - now) : null;
  }

  forget(role: Role): void {
    this.seen.delete(role);
  }
}
