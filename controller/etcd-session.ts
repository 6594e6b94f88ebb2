// One etcd lease per store instance (the node's session), kept alive by our own loop.
//
// Why not etcd3's Lease: its `lost` event fires only ~2×TTL after the last acknowledged keepalive
// (a window in which another node may already lead), and `client.close()` does not stop it.
// Here every keepalive is a short stream with a deadline; we record the *send* time of each one
// etcd acknowledges. The lease cannot expire before `send time + TTL` (etcd starts the new TTL when
// it receives the request, which is after we sent it), so that is a safe lower bound of its expiry.
import type { LeaseClient } from 'etcd3';

export type SessionState = 'alive' | 'lost';

export interface SessionOptions {
  /** Interval between keepalives (ms); default TTL/3. */
  keepaliveIntervalMs: number;
  /** Deadline of one keepalive (ms). */
  keepaliveTimeoutMs: number;
  onLost: (session: LeaseSession, reason: string) => void;
  onKeepaliveError: (session: LeaseSession, error: Error) => void;
  /** After each acknowledged keepalive that moved lastAckSendTime (the ARP fence is refreshed here). */
  onRenewed?: (session: LeaseSession, sendTimeMono: number) => void;
}

/** A granted lease and its keepalive loop. Created by EtcdStore; never re-used after `lost`. */
export class LeaseSession {
  state: SessionState = 'alive';
  /** performance.now() when the session was found lost (or closed). */
  lostAt = Number.POSITIVE_INFINITY;
  lostReason = '';
  readonly lost: Promise<void>;
  private resolveLost!: () => void;
  private timer: NodeJS.Timeout | null = null;
  private suspended = false;
  private lastSent = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly leases: LeaseClient,
    /** Lease id, decimal (etcd's int64 as a string). */
    readonly id: string,
    /** TTL etcd granted (ms); updated from each keepalive answer. */
    public ttlMs: number,
    /** Send time (performance.now()) of the grant or of the last acknowledged keepalive. */
    public lastAckSendTime: number,
    private readonly opts: SessionOptions,
  ) {
    this.lost = new Promise((r) => (this.resolveLost = r));
    this.schedule();
  }

  /** Latest monotonic time at which the lease is certainly still alive in etcd. */
  provenUntil(): number {
    return this.state === 'alive' ? this.lastAckSendTime + this.ttlMs : Math.min(this.lostAt, this.lastAckSendTime + this.ttlMs);
  }

  /** Stops sending keepalives without telling etcd (fault injection: a stalled process). */
  suspend(): void {
    this.suspended = true;
  }

  /** Marks the session lost (idempotent) and stops the loop. */
  markLost(reason: string): void {
    if (this.state === 'lost') return;
    this.state = 'lost';
    this.lostAt = performance.now();
    this.lostReason = reason;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.resolveLost();
    this.opts.onLost(this, reason);
  }

  /** Next tick: the next keepalive, or the moment the lease can no longer be proven alive if sooner. */
  private schedule(): void {
    const untilUnproven = this.lastAckSendTime + this.ttlMs - performance.now();
    this.timer = setTimeout(() => this.tick(), Math.max(0, Math.min(this.opts.keepaliveIntervalMs, untilUnproven)));
    this.timer.unref();
  }

  private tick(): void {
    if (this.state !== 'alive') return;
    if (performance.now() >= this.lastAckSendTime + this.ttlMs) {
      this.markLost(`no keepalive acknowledged within the lease TTL (${this.ttlMs} ms)`);
      return;
    }
    const now = performance.now();
    if (!this.suspended && now - this.lastSent >= this.opts.keepaliveIntervalMs - 1) {
      this.lastSent = now;
      void this.keepaliveOnce();
    }
    this.schedule();
  }

  /** One keepalive on its own stream. Keepalives overlap if one hangs: a stuck one never delays the next. */
  private async keepaliveOnce(): Promise<void> {
    const sent = performance.now();
    try {
      const ttlS = await this.send();
      if (this.state !== 'alive') return;
      if (ttlS <= 0) {
        this.markLost('etcd says the lease expired or was revoked');
        return;
      }
      this.ttlMs = ttlS * 1000;
      if (sent > this.lastAckSendTime) {
        this.lastAckSendTime = sent;
        this.opts.onRenewed?.(this, sent);
      }
    } catch (e) {
      if (this.state === 'alive') this.opts.onKeepaliveError(this, e instanceof Error ? e : new Error(String(e)));
    }
  }

  private async send(): Promise<number> {
    const timeoutMs = this.opts.keepaliveTimeoutMs;
    const stream = await this.leases.leaseKeepAlive({ deadline: Date.now() + timeoutMs });
    return new Promise<number>((resolve, reject) => {
      // Backstop in case the stream neither answers nor fails at its deadline.
      const backstop = setTimeout(() => reject(new Error(`keepalive: no answer within ${timeoutMs} ms`)), timeoutMs + 50);
      stream.on('data', (res) => {
        clearTimeout(backstop);
        // Half-close: the server then ends the stream cleanly (cancel() would count as a host failure).
        stream.end();
        resolve(Number(res.TTL));
      });
      stream.on('error', (err) => {
        clearTimeout(backstop);
        reject(err);
      });
      stream.write({ ID: this.id });
    });
  }
}
