// CoordinationStore on etcd v3 (etcd3 1.1.2): our own lease session, txn-based election and fencing.
//
// Keys under the prefix (default `/sandwich/<cluster>/`; path segments URI-encoded):
//   leader/<role>                  {node, since}      created by txn `createRevision == 0`, node lease
//   observations/<node>/<fw>/<check>  Observation     node lease
//   desired                        Desired            CAS on mod revision + leader key value + lease
//   drain/<fw>, maintenance/<name>, switchover/<role>  no lease (operator intent outlives sessions)
//   status/<node>                  NodeStatus         node lease
//
// Every call has a deadline (callTimeoutMs) shared by etcd3's retries, plus a timer backstop, so
// a frozen member or a cluster without quorum makes calls reject, never hang.
import { Etcd3, GRPCDeadlineExceededError, GRPCUnavailableError, type IKeyValue, type IOptions, type IRequestOp, type ICompare, type Watcher, type IWatchResponse } from 'etcd3';
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import type { Config, Role } from './config';
import { FastLeadership, TakeoverClock, type FastLeadershipOptions, type RenewResult } from './etcd-fast-leader';
import { LeaseSession } from './etcd-session';
import { decode, DesiredValue, DrainValue, LeaderValue, MaintenanceValue, NodeStatusValue, ObservationValue, SwitchoverValue } from './etcd-values';
import { StoreDataError, StoreError, type CoordinationStore, type Leadership, type LeaderRecord, type NodeStatus, type StoreEvent, type SwitchoverRequest, type Versioned } from './store';
import type { Desired, Drain, Maintenance, Observation } from './types';

export interface EtcdStoreOptions {
  /** http(s)://host:port of each member. */
  endpoints: readonly string[];
  /** Cluster name; the prefix defaults to `/sandwich/<cluster>/`. */
  cluster: string;
  /** Key prefix (must start with `/`; a trailing `/` is added). */
  prefix?: string;
  /** Deadline of every etcd call, retries included. */
  callTimeoutMs: number;
  /** Lease TTL in whole seconds (etcd's floor is ~1.5 × election timeout, rounded up to 1 s). */
  leaseTtlS: number;
  /** Keepalive period; default TTL/3. */
  keepaliveIntervalMs?: number;
  /** validUntil = send time of last acknowledged keepalive + TTL − this; default max(100, 25 % of TTL). */
  validityMarginMs?: number;
  /** After a failure (unreachable, no answer in time), a member is skipped for this long (twice as long if it fails again); default callTimeoutMs. */
  memberCooldownMs?: number;
  auth?: { username: string; password: string };
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
  /** Diagnostics (lease changes, keepalive failures, skipped bad values, watch errors). */
  onEvent?: (e: EtcdStoreEvent) => void;
  /** Wall clock for `since` fields; default Date.now. */
  now?: () => number;
  /**
   * After each acknowledged renewal that can extend the ARP fence, with its send time (performance.now()):
   * keepalives of the live session (lease profile) or leader-key renewals (fast profile). Must not throw.
   */
  onRenewed?: (token: string, sendTimeMono: number) => void;
  /** The fast leadership profile (etcd-fast-leader.ts); absent = lease profile. */
  fastLeadership?: FastLeadershipOptions;
}

export type EtcdStoreEvent =
  | { type: 'lease-granted'; leaseId: string; ttlMs: number }
  | { type: 'lease-lost'; leaseId: string; reason: string }
  | { type: 'keepalive-failed'; leaseId: string; error: Error }
  | { type: 'renewal-failed'; role: Role; error: Error }
  | { type: 'leadership-lost'; role: Role; reason: string }
  | { type: 'bad-value'; error: StoreDataError }
  | { type: 'watch-error'; error: Error };

/** Builds store options from the validated config (reads the password and TLS files). */
export function etcdStoreOptionsFromConfig(config: Config, extra: Partial<EtcdStoreOptions> = {}): EtcdStoreOptions {
  const s = config.store;
  if (s.kind !== 'etcd') throw new StoreError(`store.kind is "${s.kind}", not "etcd"`);
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new StoreError(`store.${what}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  };
  const opts: EtcdStoreOptions = { endpoints: s.endpoints, cluster: config.cluster, callTimeoutMs: s.callTimeoutMs, leaseTtlS: s.leaseTtlS, ...extra };
  if (s.prefix !== undefined) opts.prefix = s.prefix;
  if (s.leadership.mode === 'fast' && !opts.fastLeadership) {
    const { renewIntervalMs, takeoverAfterMs, marginMs } = s.leadership;
    opts.fastLeadership = { renewIntervalMs, takeoverAfterMs, marginMs };
  }
  if (s.auth) opts.auth = { username: s.auth.username, password: read(s.auth.passwordFile, 'auth.passwordFile').toString('utf8').trim() };
  if (s.tls) {
    opts.tls = { ca: read(s.tls.caFile, 'tls.caFile') };
    if (s.tls.certFile) opts.tls.cert = read(s.tls.certFile, 'tls.certFile');
    if (s.tls.keyFile) opts.tls.key = read(s.tls.keyFile, 'tls.keyFile');
  }
  return opts;
}

type FaultHandling = Required<NonNullable<IOptions['faultHandling']>>;

/** Deadline (Date.now() ms) of the store call in progress, seen by etcd3's per-attempt hooks. */
const callDeadline = new AsyncLocalStorage<number>();
/** A retry on another member is only worth starting with at least this much time left. */
const MIN_ATTEMPT_MS = 20;

/**
 * A failure that says something about the member: unreachable, or no answer in time. Not CANCELLED:
 * etcd3 reports its own cancellation of a watch stream as a failure of the member.
 */
function isMemberFailure(e: unknown): boolean {
  return e instanceof GRPCUnavailableError || e instanceof GRPCDeadlineExceededError;
}

/**
 * Skips a member after a member failure: for cooldownMs, 2 × cooldownMs after repeated failures;
 * a success resets it. (etcd3's default breaker waits 5 s, and only after 3 failures.)
 */
class MemberGate {
  private closedUntil = 0;
  private failures = 0;
  /** All gates of one client: when every member is skipped, skipping helps nobody (an overloaded cluster). */
  constructor(private readonly host: string, private readonly cooldownMs: number, private readonly all: MemberGate[]) {
    all.push(this);
  }
  private get closed(): boolean {
    return performance.now() < this.closedUntil;
  }
  async execute<T>(fn: () => T | PromiseLike<T>): Promise<T> {
    if (this.closed && !this.all.every((g) => g.closed)) throw new MemberSkippedError(`etcd member ${this.host} skipped after ${this.failures} failure(s)`);
    try {
      const r = await fn();
      // An answer proves the member alive, also one that arrives after a concurrent call failed.
      this.failures = 0;
      this.closedUntil = 0;
      return r;
    } catch (e) {
      if (isMemberFailure(e)) {
        this.failures++;
        this.closedUntil = performance.now() + this.cooldownMs * Math.min(2, this.failures);
      }
      throw e;
    }
  }
}

class MemberSkippedError extends StoreError {
  override name = 'MemberSkippedError';
}

/**
 * Retries a call on another member after a member failure, while the store call's deadline
 * leaves time for it (each attempt gets at most half of callTimeoutMs, see defaultCallOptions).
 */
const retryOnOtherMember = {
  async execute<T>(fn: () => T | PromiseLike<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        const deadline = callDeadline.getStore() ?? 0;
        if (attempt >= 3 || !isMemberFailure(e) || deadline - Date.now() < MIN_ATTEMPT_MS) throw e;
      }
    }
  },
};

const EVENT_OF_SEGMENT: Record<string, StoreEvent> = {
  observations: 'observations', desired: 'desired', drain: 'drains', maintenance: 'maintenance',
  leader: 'leader', switchover: 'switchover', status: 'status',
};
/** Puts per txn: below etcd's default --max-txn-ops (128). */
const TXN_PUTS = 100;
const ALL_EVENTS: readonly StoreEvent[] = ['observations', 'desired', 'drains', 'maintenance', 'leader', 'switchover', 'status'];

class EtcdLeadership implements Leadership {
  private resigned = Number.POSITIVE_INFINITY;
  private resolveResigned!: () => void;
  readonly lost: Promise<void>;
  constructor(
    readonly role: Role,
    readonly node: string,
    readonly since: number,
    /** Exact bytes of the leader key's value (compared in leader-only writes). */
    readonly value: Buffer,
    readonly session: LeaseSession,
    private readonly marginMs: number,
  ) {
    const resigned = new Promise<void>((r) => (this.resolveResigned = r));
    this.lost = Promise.race([session.lost, resigned]);
  }
  get token(): string {
    return this.session.id;
  }
  validUntil(): number {
    return Math.min(this.session.provenUntil() - this.marginMs, this.resigned);
  }
  markResigned(): void {
    this.resigned = Math.min(this.resigned, performance.now());
    this.resolveResigned();
  }
}

/**
 * CoordinationStore on etcd. Atomicity (à la Patroni's AbstractDCS): each method is one etcd
 * request (a range, a put, a delete or a txn), so it is atomic and linearizable as etcd makes
 * single requests; nothing spans two requests. A call that fails with a timeout may or may not
 * have been applied (as with any etcd client): puts and deletes are idempotent, campaign adopts
 * a leader key already bound to our lease, putDesired may then answer false for its own write
 * (the caller re-reads). Reads are linearizable (no serializable reads).
 *
 * Bad values: single-key reads (getDesired, getLeader, getSwitchover) and operator-intent lists
 * (listDrains, listMaintenance) throw StoreDataError naming the key: ignoring a drain would put
 * a firewall back into service against the operator's will. Per-node telemetry lists
 * (listObservations, listNodeStatus) skip the bad entry and report it via onEvent('bad-value'),
 * so one node's garbage does not blind the leader to every other node.
 */
export class EtcdStore implements CoordinationStore {
  readonly prefix: string;
  private readonly client: Etcd3;
  private readonly ttlS: number;
  private readonly marginMs: number;
  private readonly keepaliveIntervalMs: number;
  private session: LeaseSession | null = null;
  private granting: Promise<LeaseSession> | null = null;
  private readonly subscribers = new Set<(e: StoreEvent) => void>();
  private watcher: Watcher | null = null;
  private closing = false;
  private closed = false;
  private readonly now: () => number;
  private readonly takeover: TakeoverClock | null;
  private readonly fastLeaders = new Set<FastLeadership>();
  /** Fast profile: the value of a campaign write whose answer may have been lost, per role. */
  private readonly attempted = new Map<Role, { value: Buffer; sent: number }>();

  /** From the validated config (store.kind must be etcd); reads the password and TLS files. */
  static fromConfig(config: Config, extra: Partial<EtcdStoreOptions> = {}): EtcdStore {
    return new EtcdStore(etcdStoreOptionsFromConfig(config, extra));
  }

  constructor(private readonly opts: EtcdStoreOptions) {
    if (opts.endpoints.length === 0) throw new StoreError('etcd store: no endpoints');
    if (!Number.isInteger(opts.leaseTtlS) || opts.leaseTtlS < 1) throw new StoreError(`etcd store: leaseTtlS must be a whole number ≥ 1, got ${opts.leaseTtlS}`);
    const prefix = opts.prefix ?? `/sandwich/${opts.cluster}/`;
    if (!prefix.startsWith('/')) throw new StoreError(`etcd store: prefix must start with "/", got "${prefix}"`);
    this.prefix = prefix.endsWith('/') ? prefix : `${prefix}/`;
    this.ttlS = opts.leaseTtlS;
    this.marginMs = opts.validityMarginMs ?? Math.max(100, opts.leaseTtlS * 250);
    this.keepaliveIntervalMs = opts.keepaliveIntervalMs ?? (opts.leaseTtlS * 1000) / 3;
    if (this.marginMs >= opts.leaseTtlS * 1000) throw new StoreError(`etcd store: validityMarginMs (${this.marginMs}) must be less than the lease TTL (${opts.leaseTtlS * 1000} ms)`);
    this.now = opts.now ?? Date.now;
    const fast = opts.fastLeadership;
    if (fast && !(fast.marginMs < fast.takeoverAfterMs && fast.renewIntervalMs > 0)) {
      throw new StoreError(`etcd store: fast leadership needs 0 < marginMs < takeoverAfterMs, got ${JSON.stringify(fast)}`);
    }
    this.takeover = fast ? new TakeoverClock(fast.takeoverAfterMs) : null;
    const cooldownMs = opts.memberCooldownMs ?? opts.callTimeoutMs;
    const callTimeoutMs = opts.callTimeoutMs;
    const single = opts.endpoints.length === 1;
    const gates: MemberGate[] = [];
    const options: IOptions = {
      hosts: [...opts.endpoints],
      dialTimeout: callTimeoutMs,
      // Must be a function returning fresh options (an object holding a function throws in grpc-js).
      // Streams (watch) live long and get no deadline; keepalive streams set their own.
      // Each attempt gets half the call's time, so a frozen member leaves time to retry on another;
      // the call's own deadline (callDeadline) caps all attempts together.
      // With a single member there is nowhere else to go: one attempt gets the whole time, and the member is never skipped.
      defaultCallOptions: (ctx) => {
        if (ctx.isStream) return {};
        const attempt = Date.now() + (single ? callTimeoutMs : Math.max(MIN_ATTEMPT_MS, callTimeoutMs / 2));
        return { deadline: Math.min(attempt, callDeadline.getStore() ?? attempt) };
      },
      faultHandling: {
        host: (h: string) => (single ? { execute: <T>(fn: () => T | PromiseLike<T>) => Promise.resolve().then(fn) } : new MemberGate(h, cooldownMs, gates)) as unknown as ReturnType<FaultHandling['host']>,
        global: retryOnOtherMember as unknown as FaultHandling['global'],
        watchBackoff: { duration: 250, next() { return this; } } as unknown as FaultHandling['watchBackoff'],
      },
      // Detect a dead or frozen member under a long-lived watch. etcd refuses pings closer than 5 s
      // (--grpc-keepalive-min-time): pinging at exactly 5 s, a late ping timer on a busy host counts
      // as a strike and etcd drops the connection (GOAWAY too_many_pings), failing every call on it.
      grpcOptions: { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': Math.max(1000, callTimeoutMs) },
    };
    if (opts.auth) options.auth = { username: opts.auth.username, password: opts.auth.password };
    if (opts.tls) {
      options.credentials = { rootCertificate: opts.tls.ca };
      if (opts.tls.cert) options.credentials.certChain = opts.tls.cert;
      if (opts.tls.key) options.credentials.privateKey = opts.tls.key;
    }
    this.client = new Etcd3(options);
  }

  // --- keys ---

  private key(...segments: string[]): string {
    return this.prefix + segments.map((s) => encodeURIComponent(s)).join('/');
  }
  private rangeEnd(prefix: string): Buffer {
    const b = Buffer.from(prefix);
    // Prefixes here end in '/', never 0xff: incrementing the last byte is the prefix's end.
    b[b.length - 1] = (b[b.length - 1] ?? 0) + 1;
    return b;
  }

  // --- calls with deadlines ---

  private emit(e: EtcdStoreEvent): void {
    try {
      this.opts.onEvent?.(e);
    } catch {
      // a diagnostics sink must not break the store
    }
  }

  /** Runs one etcd request with a deadline shared by its retries and a timer backstop. */
  private async call<T>(what: string, fn: () => Promise<T>, timeoutMs = this.opts.callTimeoutMs): Promise<T> {
    if (this.closed) throw new StoreError(`etcd ${what}: store is closed`);
    const ms = timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    let late: StoreError | null = null; // made only when needed: an Error's stack costs on every call
    const backstop = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject((late = new StoreError(`etcd ${what}: no answer within ${ms} ms`))), ms + 50);
    });
    const deadline = Date.now() + ms;
    try {
      return await Promise.race([callDeadline.run(deadline, () => fn()), backstop]);
    } catch (e) {
      if (late !== null && e === late) throw e;
      throw new StoreError(`etcd ${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    } finally {
      clearTimeout(timer);
    }
  }

  private async range(what: string, key: string, prefix: boolean): Promise<IKeyValue[]> {
    const req = prefix ? { key: Buffer.from(key), range_end: this.rangeEnd(key) } : { key: Buffer.from(key) };
    const res = await this.call(what, () => this.client.kv.range(req));
    return res.kvs;
  }

  private async put(what: string, key: string, value: unknown, lease?: string): Promise<void> {
    const req = lease ? { key: Buffer.from(key), value: Buffer.from(JSON.stringify(value)), lease } : { key: Buffer.from(key), value: Buffer.from(JSON.stringify(value)) };
    await this.call(what, () => this.client.kv.put(req));
  }

  private async del(what: string, key: string): Promise<number> {
    const res = await this.call(what, () => this.client.kv.deleteRange({ key: Buffer.from(key) }));
    return Number(res.deleted);
  }

  /** Decodes every kv; bad ones are skipped and reported (skip = true) or thrown. */
  private decodeAll<T>(kvs: IKeyValue[], decodeOne: (key: string, kv: IKeyValue) => T, skip: boolean): T[] {
    const out: T[] = [];
    for (const kv of kvs) {
      const key = kv.key.toString('utf8');
      try {
        out.push(decodeOne(key, kv));
      } catch (e) {
        if (!(e instanceof StoreDataError) || !skip) throw e;
        this.emit({ type: 'bad-value', error: e });
      }
    }
    return out;
  }

  /** Checks that the fields a key is named after agree with its value. */
  private expectKey(key: string, expected: string): void {
    if (key !== expected) throw new StoreDataError(key, `value belongs under ${expected}`);
  }

  // --- the session (lease) ---

  /** The live session, granting a new lease if there is none (one grant in flight at a time). */
  private async liveSession(): Promise<LeaseSession> {
    if (this.session?.state === 'alive') return this.session;
    if (!this.granting) {
      this.granting = this.grant().finally(() => (this.granting = null));
    }
    return this.granting;
  }

  private async grant(): Promise<LeaseSession> {
    const sent = performance.now();
    const res = await this.call('lease grant', () => this.client.leaseClient.leaseGrant({ TTL: this.ttlS }));
    if (res.error) throw new StoreError(`etcd lease grant: ${res.error}`);
    const ttlMs = Number(res.TTL) * 1000;
    const session = new LeaseSession(this.client.leaseClient, res.ID, ttlMs, sent, {
      keepaliveIntervalMs: this.keepaliveIntervalMs,
      // An answer is worth waiting for as long as it can still extend validity (send time + TTL − margin):
      // on a loaded host a short deadline turns slow-but-good keepalives into lost leadership.
      keepaliveTimeoutMs: Math.min(ttlMs, Math.max(this.opts.callTimeoutMs, ttlMs - this.marginMs)),
      onLost: (s, reason) => {
        this.emit({ type: 'lease-lost', leaseId: s.id, reason });
        // Best effort: a lease we gave up on should not hold keys until etcd expires it.
        if (!this.closing) void this.revoke(s).catch(() => undefined);
      },
      onKeepaliveError: (s, error) => this.emit({ type: 'keepalive-failed', leaseId: s.id, error }),
      onRenewed: (s, sent) => {
        // Fast profile: validity follows the leader key's renewals, not the session's keepalives.
        if (this.opts.fastLeadership) return;
        try {
          this.opts.onRenewed?.(s.id, sent);
        } catch {
          // a renewal hook must not break the keepalive loop
        }
      },
    });
    if (this.closing) {
      session.markLost('store closed');
      throw new StoreError('etcd lease grant: store is closed');
    }
    const previous = this.session;
    this.session = session;
    this.emit({ type: 'lease-granted', leaseId: res.ID, ttlMs });
    // The lost lease's revoke may have failed while etcd was unreachable; now it is reachable again,
    // and its keys (a stale leader key above all) should go now rather than a TTL later.
    if (previous) await this.revoke(previous).catch(() => undefined);
    return session;
  }

  private async revoke(s: LeaseSession): Promise<void> {
    try {
      await this.call('lease revoke', () => this.client.leaseClient.leaseRevoke({ ID: s.id }));
    } catch (e) {
      // Already gone is fine.
      if (!(e instanceof StoreError && /lease not found/i.test(e.message))) throw e;
    }
  }

  /** Id of the current lease, or null (diagnostics and tests). */
  get leaseId(): string | null {
    return this.session?.state === 'alive' ? this.session.id : null;
  }

  /**
   * Fault injection: stop renewing the current lease without telling etcd, as a frozen process
   * would. Keys bound to it vanish when etcd expires it; leadership validity lapses first.
   */
  suspendKeepalive(): void {
    this.session?.suspend();
    for (const l of this.fastLeaders) l.suspend();
  }

  // --- observations ---

  /** One put, bound to this node's lease: atomic per key; disappears when the session ends. */
  async putObservation(o: Observation): Promise<void> {
    const s = await this.liveSession();
    await this.put(`put observation ${o.node}/${o.firewall}/${o.check}`, this.key('observations', o.node, o.firewall, o.check), o, s.id);
  }

  /** One txn per TXN_PUTS observations (one raft proposal each), all bound to this node's lease. */
  async putObservations(os: readonly Observation[]): Promise<void> {
    if (os.length === 0) return;
    const s = await this.liveSession();
    for (let i = 0; i < os.length; i += TXN_PUTS) {
      const part = os.slice(i, i + TXN_PUTS);
      const success = part.map((o) => ({ request_put: { key: Buffer.from(this.key('observations', o.node, o.firewall, o.check)), value: Buffer.from(JSON.stringify(o)), lease: s.id } }));
      await this.call(`put ${part.length} observations of ${part[0]!.node}`, () => this.client.kv.txn({ compare: [], success, failure: [] }));
    }
  }

  /** One range over the prefix: a consistent snapshot at one revision. Bad entries are skipped and reported. */
  async listObservations(): Promise<Observation[]> {
    const kvs = await this.range('list observations', this.key('observations') + '/', true);
    return this.decodeAll(kvs, (key, kv) => {
      const o = decode(key, kv.value, ObservationValue);
      this.expectKey(key, this.key('observations', o.node, o.firewall, o.check));
      return o;
    }, true);
  }

  // --- desired ---

  /** One linearizable read; version = the key's mod revision. Throws StoreDataError on a bad value. */
  async getDesired(): Promise<Versioned<Desired> | null> {
    const key = this.key('desired');
    const [kv] = await this.range('get desired', key, false);
    return kv ? { value: decode(key, kv.value, DesiredValue), version: Number(kv.mod_revision) } : null;
  }

  /**
   * One txn: desired's mod revision == expectedVersion (or absent for null) AND leader/<role>'s
   * value == this leadership's value (AND its lease == this leadership's lease, lease profile) → put. False if any
   * compare fails, or if the leadership's validity has already lapsed locally (nothing is sent).
   */
  async putDesired(desired: Desired, expectedVersion: number | null, leadership: Leadership): Promise<boolean> {
    if (!(leadership instanceof EtcdLeadership || leadership instanceof FastLeadership)) throw new StoreError('putDesired: leadership was not obtained from this etcd store');
    if (performance.now() >= leadership.validUntil()) return false;
    const key = Buffer.from(this.key('desired'));
    const compare: ICompare[] = [
      expectedVersion === null
        ? { key, target: 'Create', result: 'Equal', create_revision: 0 }
        : { key, target: 'Mod', result: 'Equal', mod_revision: expectedVersion },
      ...this.stillLeader(leadership),
    ];
    const success: IRequestOp[] = [{ request_put: { key, value: Buffer.from(JSON.stringify(desired)) } }];
    const res = await this.call('put desired', () => this.client.kv.txn({ compare, success, failure: [] }));
    return res.succeeded;
  }

  // --- drains and maintenance (no lease: operator intent outlives any session) ---

  /** One range: consistent snapshot. Throws StoreDataError on a bad entry. */
  async listDrains(): Promise<Drain[]> {
    const kvs = await this.range('list drains', this.key('drain') + '/', true);
    return this.decodeAll(kvs, (key, kv) => {
      const d = decode(key, kv.value, DrainValue);
      this.expectKey(key, this.key('drain', d.firewall));
      return d;
    }, false);
  }
  /** One put: atomic per firewall. */
  async putDrain(d: Drain): Promise<void> {
    await this.put(`put drain ${d.firewall}`, this.key('drain', d.firewall), d);
  }
  /** One delete: atomic; true if a drain was there. */
  async deleteDrain(firewall: string): Promise<boolean> {
    return (await this.del(`delete drain ${firewall}`, this.key('drain', firewall))) > 0;
  }

  /** One range: consistent snapshot. Throws StoreDataError on a bad entry. */
  async listMaintenance(): Promise<Maintenance[]> {
    const kvs = await this.range('list maintenance', this.key('maintenance') + '/', true);
    return this.decodeAll(kvs, (key, kv) => {
      const m = decode(key, kv.value, MaintenanceValue);
      this.expectKey(key, this.key('maintenance', m.name));
      return m;
    }, false);
  }
  /** One put: atomic per name. */
  async putMaintenance(m: Maintenance): Promise<void> {
    await this.put(`put maintenance ${m.name}`, this.key('maintenance', m.name), m);
  }
  /** One delete: atomic; true if it was there. */
  async deleteMaintenance(name: string): Promise<boolean> {
    return (await this.del(`delete maintenance ${name}`, this.key('maintenance', name))) > 0;
  }

  // --- leadership ---

  /**
   * One non-blocking attempt, one txn: if leader/<role> does not exist (createRevision == 0), put
   * {node, since} bound to this node's lease; else read it. If the existing key is bound to our own
   * lease (an earlier attempt whose answer was lost), we adopt it. Null if another lease holds it.
   */
  async campaign(role: Role, node: string): Promise<Leadership | null> {
    if (this.opts.fastLeadership) return this.campaignFast(role, node, this.opts.fastLeadership);
    const s = await this.liveSession();
    const key = Buffer.from(this.key('leader', role));
    // Read before writing: a compare-and-create that fails is a raft proposal too, one per standby per tick.
    const held = (await this.call(`read leader ${role}`, () => this.client.kv.range({ key }))).kvs[0];
    if (held) return this.heldBy(role, held, s);
    const value = Buffer.from(JSON.stringify({ node, since: this.now() }));
    const res = await this.call(`campaign ${role}`, () => this.client.kv.txn({
      compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
      success: [{ request_put: { key, value, lease: s.id } }],
      failure: [{ request_range: { key } }],
    }));
    if (res.succeeded) return this.leadership(role, value, s);
    const kv = res.responses[0]?.response_range?.kvs[0];
    return kv ? this.heldBy(role, kv, s) : null;
  }

  /** Lease profile: the leader key exists; ours (a write whose answer was lost) or another node's. */
  private heldBy(role: Role, kv: IKeyValue, s: LeaseSession): Leadership | null {
    if (kv.lease === s.id) return this.leadership(role, kv.value, s);
    if (kv.lease === '0') throw this.mixedProfiles(role, 'not bound to a lease (a node runs the fast profile)');
    return null;
  }

  private mixedProfiles(role: Role, what: string): StoreError {
    return new StoreError(`${this.key('leader', role)} is ${what}; every node of the cluster must use the same store.leadership.mode`);
  }

  /**
   * Fast profile, one attempt: create leader/<role> if absent (one txn, no lease), else note its mod
   * revision; once the same revision has been seen for takeoverAfterMs, one txn puts our value if
   * the key's mod revision is still that one. Null if another node holds it.
   */
  takeoverDueInMs(role: Role): number | null {
    return this.takeover ? this.takeover.dueInMs(role, performance.now()) : null;
  }

  private async campaignFast(role: Role, node: string, fast: FastLeadershipOptions): Promise<Leadership | null> {
    const key = Buffer.from(this.key('leader', role));
    const value = Buffer.from(JSON.stringify({ node, since: this.now() }));
    const sent = performance.now();
    const res = await this.call(`campaign ${role}`, () => this.client.kv.txn({
      compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
      success: [{ request_put: { key, value } }],
      failure: [{ request_range: { key } }],
    }));
    const answered = performance.now();
    if (res.succeeded) return this.fastLeadership(role, value, res.header.revision, sent, fast);
    const kv = res.responses[0]?.response_range?.kvs[0];
    if (!kv) return null;
    if (kv.lease !== '0') throw this.mixedProfiles(role, 'bound to a lease (a node runs the lease profile)');
    const earlier = this.attempted.get(role);
    this.attempted.delete(role);
    // Our own earlier write whose answer was lost: it was committed after it was sent.
    if (earlier && kv.value.equals(earlier.value)) return this.fastLeadership(role, kv.value, kv.mod_revision, earlier.sent, fast);
    if (!this.takeover!.observe(role, kv.mod_revision, answered)) return null;
    const sent2 = performance.now();
    this.attempted.set(role, { value, sent: sent2 });
    const took = await this.call(`take over ${role}`, () => this.client.kv.txn({
      compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: kv.mod_revision }],
      success: [{ request_put: { key, value } }],
      failure: [],
    }));
    this.attempted.delete(role);
    if (!took.succeeded) return null;
    return this.fastLeadership(role, value, took.header.revision, sent2, fast);
  }

  private fastLeadership(role: Role, value: Buffer, revision: string, sent: number, fast: FastLeadershipOptions): FastLeadership {
    const v = decode(this.key('leader', role), value, LeaderValue);
    const key = Buffer.from(this.key('leader', role));
    this.takeover!.forget(role);
    // A renewal must answer within the validity window, or it is no use: the next one goes to another member.
    const renewTimeoutMs = Math.max(MIN_ATTEMPT_MS, Math.min(this.opts.callTimeoutMs, fast.takeoverAfterMs - fast.marginMs - fast.renewIntervalMs));
    const l: FastLeadership = new FastLeadership(role, v.node, v.since, value, revision, sent, fast, {
      renew: async (rev): Promise<RenewResult> => {
        const r = await this.call(`renew leader ${role}`, () => this.client.kv.txn({
          compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: rev }],
          success: [{ request_put: { key, value } }],
          failure: [{ request_range: { key } }],
        }), renewTimeoutMs);
        if (r.succeeded) return { ok: true, revision: r.header.revision };
        const kv = r.responses[0]?.response_range?.kvs[0];
        return { ok: false, current: kv ? { value: kv.value, revision: kv.mod_revision } : null };
      },
      onRenewed: (at) => {
        try {
          this.opts.onRenewed?.(l.token, at);
        } catch {
          // a renewal hook must not break the renewal loop
        }
      },
      onError: (error) => this.emit({ type: 'renewal-failed', role, error }),
      onLost: (reason) => {
        this.fastLeaders.delete(l);
        this.emit({ type: 'leadership-lost', role, reason });
      },
    });
    this.fastLeaders.add(l);
    return l;
  }

  /** Compares that hold only while `l` is the current leadership of its role. */
  private stillLeader(l: EtcdLeadership | FastLeadership): ICompare[] {
    const leaderKey = Buffer.from(this.key('leader', l.role));
    const byValue: ICompare = { key: leaderKey, target: 'Value', result: 'Equal', value: l.value };
    return l instanceof EtcdLeadership ? [byValue, { key: leaderKey, target: 'Lease', result: 'Equal', lease: l.session.id }] : [byValue];
  }

  private leadership(role: Role, value: Buffer, s: LeaseSession): EtcdLeadership {
    const v = decode(this.key('leader', role), value, LeaderValue);
    return new EtcdLeadership(role, v.node, v.since, value, s, this.marginMs);
  }

  /**
   * One txn: delete leader/<role> if its value and lease are still this leadership's. The lease is
   * NOT revoked: revoking would also delete this node's observations and status, which the new
   * leader needs. `lost` resolves and validUntil() drops to now whether or not the key was ours.
   * If the txn fails (etcd unreachable), the session is abandoned so the key expires within a TTL.
   */
  async resign(l: Leadership): Promise<void> {
    if (l instanceof FastLeadership) {
      l.end('resigned');
      // Our value is unique to this leadership: a key still holding it is ours. If the delete fails,
      // the key is no longer renewed, and a standby takes it over after takeoverAfterMs.
      await this.call(`resign ${l.role}`, () => this.client.kv.txn({ compare: this.stillLeader(l), success: [{ request_delete_range: { key: Buffer.from(this.key('leader', l.role)) } }], failure: [] }));
      return;
    }
    if (!(l instanceof EtcdLeadership)) throw new StoreError('resign: leadership was not obtained from this etcd store');
    l.markResigned();
    const key = Buffer.from(this.key('leader', l.role));
    try {
      await this.call(`resign ${l.role}`, () => this.client.kv.txn({
        compare: this.stillLeader(l),
        success: [{ request_delete_range: { key } }],
        failure: [],
      }));
    } catch (e) {
      // The key may still be ours, kept alive by our session: give the session up so it expires
      // within a TTL (revoked at once if etcd answers). Observations are re-put on the next lease.
      l.session.markLost(`resign of ${l.role} failed`);
      throw e;
    }
  }

  /** One linearizable read. Throws StoreDataError on a bad value. */
  async getLeader(role: Role): Promise<LeaderRecord | null> {
    const key = this.key('leader', role);
    const [kv] = await this.range(`get leader ${role}`, key, false);
    if (!kv) return null;
    const v = decode(key, kv.value, LeaderValue);
    return { role, node: v.node, since: v.since };
  }

  // --- switchover ---

  /** One put (overwrites any pending request for the role). */
  async putSwitchover(r: SwitchoverRequest): Promise<void> {
    await this.put(`put switchover ${r.role}`, this.key('switchover', r.role), r);
  }
  /** One read. Throws StoreDataError on a bad value. */
  async getSwitchover(role: Role): Promise<SwitchoverRequest | null> {
    const key = this.key('switchover', role);
    const [kv] = await this.range(`get switchover ${role}`, key, false);
    if (!kv) return null;
    const r = decode(key, kv.value, SwitchoverValue);
    if (r.role !== role) throw new StoreDataError(key, `role is "${r.role}", expected "${role}"`);
    return r;
  }
  /** One delete. */
  async deleteSwitchover(role: Role): Promise<void> {
    await this.del(`delete switchover ${role}`, this.key('switchover', role));
  }

  // --- node status ---

  /** One put bound to this node's lease. */
  async putNodeStatus(st: NodeStatus): Promise<void> {
    const s = await this.liveSession();
    await this.put(`put status ${st.node}`, this.key('status', st.node), st, s.id);
  }
  /** One range; bad entries are skipped and reported. */
  async listNodeStatus(): Promise<NodeStatus[]> {
    const kvs = await this.range('list status', this.key('status') + '/', true);
    return this.decodeAll(kvs, (key, kv) => {
      const v = decode(key, kv.value, NodeStatusValue);
      this.expectKey(key, this.key('status', v.node));
      return { ...v, applied: v.applied };
    }, true);
  }

  // --- watch ---

  /**
   * One etcd watcher on the prefix for all subscribers. `fn` gets the kind of each changed key
   * (once per etcd response). After a reconnect or a cancelled watch it gets every kind, since
   * changes may have been missed. Events are hints: re-read to get values.
   */
  watch(fn: (e: StoreEvent) => void): () => void {
    this.subscribers.add(fn);
    this.startWatch();
    return () => {
      this.subscribers.delete(fn);
      if (this.subscribers.size === 0) this.stopWatch();
    };
  }

  private dispatch(events: Iterable<StoreEvent>): void {
    for (const e of events) {
      for (const fn of [...this.subscribers]) {
        try {
          fn(e);
        } catch (err) {
          this.emit({ type: 'watch-error', error: err instanceof Error ? err : new Error(String(err)) });
        }
      }
    }
  }

  /** Observation key → "state since" last seen by the watch. */
  private readonly observationSeen = new Map<string, string>();

  private observationChanged(put: boolean, key: string, value: Buffer): boolean {
    if (!put) {
      this.observationSeen.delete(key);
      return true;
    }
    let sig: string;
    try {
      const v = JSON.parse(value.toString('utf8')) as { state?: unknown; since?: unknown };
      sig = `${String(v.state)} ${String(v.since)}`;
    } catch {
      return true; // the reader reports the bad value
    }
    if (this.observationSeen.get(key) === sig) return false;
    this.observationSeen.set(key, sig);
    return true;
  }

  private onWatchData(res: IWatchResponse): void {
    const kinds = new Set<StoreEvent>();
    const seen = performance.now();
    for (const ev of res.events) {
      const rel = ev.kv.key.toString('utf8').slice(this.prefix.length);
      const [segment, role] = rel.split('/');
      const kind = EVENT_OF_SEGMENT[segment ?? ''];
      // A refresh (same state, same since: only updatedAt, streak, rtt moved) changes no decision:
      // not an event. Staleness is the periodic decide tick's business.
      if (kind === 'observations' && !this.observationChanged(ev.type === 'Put', rel, ev.kv.value)) continue;
      if (kind) kinds.add(kind);
      // Fast profile: a watch event comes after the commit, so it may start the takeover clock of a new
      // leader revision (and a standby need not campaign on every renewal to see it).
      if (kind === 'leader' && this.takeover && (role === 'ingress' || role === 'egress')) {
        if (ev.type === 'Put') this.takeover.observe(role, ev.kv.mod_revision, seen);
        else this.takeover.forget(role);
      }
    }
    this.dispatch(kinds);
  }

  private startWatch(): void {
    if (this.watcher || this.closing || this.subscribers.size === 0) return;
    let disconnected = false;
    const w = this.client.watch().prefix(this.prefix).watcher();
    w.on('data', (res) => this.onWatchData(res));
    w.on('disconnected', (err) => {
      disconnected = true;
      this.emit({ type: 'watch-error', error: err });
    });
    w.on('connected', () => {
      if (disconnected) this.dispatch(ALL_EVENTS);
      disconnected = false;
    });
    w.on('error', (err) => {
      // Cancelled by etcd (e.g. compacted revision): start a fresh watcher and tell subscribers to re-read.
      this.emit({ type: 'watch-error', error: err });
      if (this.watcher === w) this.watcher = null;
      void w.cancel().catch(() => undefined);
      setTimeout(() => {
        this.startWatch();
        this.dispatch(ALL_EVENTS);
      }, 250).unref();
    });
    this.watcher = w;
  }

  private stopWatch(): void {
    const w = this.watcher;
    this.watcher = null;
    if (w) void withTimeout(w.cancel(), this.opts.callTimeoutMs).catch(() => undefined);
  }

  // --- lifecycle ---

  /** Stops the keepalive loop, revokes the lease (with a deadline), stops the watcher, closes the client. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const s = this.session;
    const granting = this.granting;
    this.subscribers.clear();
    this.stopWatch();
    for (const l of this.fastLeaders) l.end('store closed');
    if (s && s.state === 'alive') {
      s.markLost('store closed');
      await this.revoke(s).catch(() => undefined);
    }
    this.closed = true;
    if (granting) await granting.catch(() => undefined);
    this.client.close();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error('timeout')), ms)))]).finally(() => clearTimeout(timer));
}
