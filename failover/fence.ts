// Kernel ARP fence (docs/coordination.md): an nftables `arp` table whose output chain drops every ARP
// packet sent from a VIP address unless that address is in a timed set (and, for IPv6 VIPs, an `ip6`
// table doing the same to neighbour advertisements sent from the VIP). The leader refreshes the
// elements on each acknowledged lease renewal with a timeout that ends at its validity deadline,
// so a frozen or killed controller's kernel stops answering ARP for the VIPs before a standby can
// take over, although the addresses stay on its interfaces.
//
// Not covered: frames sent through packet sockets (the controller's own gratuitous ARPs and
// neighbour advertisements, failover/announcer.ts; arping in the fallback) bypass these hooks: the
// sender asks canAnnounce() right before each frame, in the same synchronous turn; an arping already
// running when the controller freezes finishes its burst.
import { isIPv4, isIPv6 } from 'node:net';
import type { CommandRunner, LineProcess, ProcessSpawner } from './runner';
import { KernelCommandError, timer, type ReconcileResult } from './types';

export interface ArpFenceOptions {
  /** nftables table name (family arp). */
  table?: string;
  /** Driver name in results and errors; default "fence". */
  driver?: string;
  /** Elements are not (re-)added with less than this much validity left; default 20 ms. */
  minTimeoutMs?: number;
  /** Monotonic clock (ms), the one `until` is on; default performance.now(). */
  mono?: () => number;
  /**
   * A refresh is skipped unless it moves the elements' expiry by at least this much (default 0: every
   * renewal refreshes). The fast leadership profile renews every ~100 ms; one nft per renewal is wasteful.
   */
  minExtendMs?: number;
  /** Upper bound of the lead below (ms); default 0 = no lead. */
  maxLeadMs?: number;
  /**
   * Every transaction (install, refresh, removal) goes to one long-lived `nft -e -i` started through
   * this spawner and kept running: no process start between computing a timeout and nft applying
   * it. Without it, each transaction runs its own nft through the runner.
   */
  spawner?: ProcessSpawner;
  /** Deadline of one transaction through the long-lived nft (ms); default 2000. */
  sessionTimeoutMs?: number;
}

/**
 * One long-lived `nft -e -i`: each line written is parsed and committed as one transaction as soon
 * as nft reads it; with --echo, a committed transaction that adds something ends with a line
 * "# new generation N …". One transaction at a time. On an error, a missing answer or an exit, the
 * process is killed (SIGKILL: a transaction still in its pipe must not be applied later) and a new
 * one is started restartDelayMs later (or by the next apply), so that nft is already running, not
 * starting, when a transaction is due. It exits by itself when this process dies (end of its stdin).
 */
export class NftSession {
  private proc: LineProcess | null = null;
  private pending: ((error?: Error) => void) | null = null;
  private closed = false;
  private restartTimer: NodeJS.Timeout | null = null;

  constructor(private readonly spawner: ProcessSpawner, private readonly timeoutMs = 2000, private readonly restartDelayMs = 1000) {}

  /** Starts nft now if it is not running (so the first transaction does not wait for it to start). */
  warm(): void {
    if (!this.proc && !this.closed) this.start();
  }

  get running(): boolean {
    return this.proc !== null;
  }

  /** Commits `commands` (nft commands separated by ';', at least one of them an add). */
  apply(commands: string): Promise<void> {
    if (/[\r\n]/.test(commands)) return Promise.reject(new Error('nft session: one line per transaction'));
    if (this.pending) return Promise.reject(new Error('nft session: a transaction is still running'));
    if (this.closed) return Promise.reject(new Error('nft session closed'));
    const proc = this.proc ?? this.start();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(proc, new Error(`nft -i: no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      this.pending = (error) => {
        clearTimeout(timer);
        this.pending = null;
        if (error) reject(error);
        else resolve();
      };
      if (!proc.write(`${commands}\n`)) this.fail(proc, new Error('nft -i: its standard input is closed'));
    });
  }

  /** Ends the process (EOF on its stdin lets it exit; SIGTERM/SIGKILL if it does not). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const proc = this.proc;
    this.proc = null;
    this.pending?.(new Error('nft session closed'));
    if (proc) await proc.stop(500);
  }

  private start(): LineProcess {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const errors: string[] = [];
    const proc: LineProcess = this.spawner.spawnLines('nft', ['-e', '-i'], {
      onStdoutLine: (line) => {
        if (this.proc === proc && /^# new generation \d+/.test(line)) this.pending?.();
      },
      onStderrLine: (line) => {
        if (this.proc !== proc) return;
        errors.push(line);
        if (/^Error/.test(line)) this.fail(proc, new Error(`nft -i: ${line}`));
      },
    }, { stdin: true });
    this.proc = proc;
    void proc.exited.then((x) => {
      if (this.proc !== proc) return;
      const why = x.error ?? `exited (${x.signal ?? `code ${x.code}`})${errors.length ? `: ${errors.slice(-2).join(' | ')}` : ''}`;
      this.fail(proc, new Error(`nft -i ${why}`));
    });
    return proc;
  }

  private fail(proc: LineProcess, error: Error): void {
    if (this.proc !== proc) return;
    this.proc = null;
    proc.kill();
    this.pending?.(error);
    if (!this.closed && !this.restartTimer) {
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        this.warm();
      }, this.restartDelayMs);
      this.restartTimer.unref();
    }
  }
}

export type FenceState = 'unknown' | 'installed' | 'absent';

export const DEFAULT_FENCE_TABLE = 'sandwich_fence';
const DRIVER = 'fence';

export class ArpFence {
  readonly table: string;
  private state_: FenceState = 'unknown';
  private readonly minTimeoutMs: number;
  private readonly mono: () => number;
  /** IPv4 VIPs (arp table) and IPv6 VIPs (ip6 table: neighbour advertisements sent from the VIP). */
  private readonly addresses: readonly string[];
  private readonly addresses6: readonly string[];
  private readonly minExtendMs: number;
  /** Monotonic time at which the elements expire as last set (the moment nft was started + timeout). */
  private expiresAt = Number.NEGATIVE_INFINITY;
  private refreshing = false;
  /** Wall time of the last nft transactions (ms, sent to committed): an upper bound of how late an element was applied. */
  private readonly recentNftMs: number[] = [];
  private readonly maxLeadMs: number;
  private readonly session: NftSession | null;

  readonly driver: string;

  /**
   * @param addresses the VIPs (IPv4, with or without /prefix; others are ignored)
   * @param until monotonic deadline (ms) until which the VIPs may be announced: the leader's validUntil
   */
  constructor(private readonly runner: CommandRunner, addresses: readonly string[], private readonly until: () => number, opts: ArpFenceOptions = {}) {
    this.table = opts.table ?? DEFAULT_FENCE_TABLE;
    this.driver = opts.driver ?? DRIVER;
    if (!/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(this.table)) throw new KernelCommandError(this.driver, 'config', `bad nftables table name "${this.table}"`, null);
    this.minTimeoutMs = opts.minTimeoutMs ?? 20;
    this.minExtendMs = opts.minExtendMs ?? 0;
    this.maxLeadMs = opts.maxLeadMs ?? 0;
    this.mono = opts.mono ?? (() => performance.now());
    this.session = opts.spawner ? new NftSession(opts.spawner, opts.sessionTimeoutMs) : null;
    const bare = [...new Set(addresses.map((a) => a.split('/')[0] ?? ''))];
    this.addresses = bare.filter((a) => isIPv4(a));
    this.addresses6 = bare.filter((a) => isIPv6(a));
  }

  get state(): FenceState {
    return this.state_;
  }

  /** True when there is nothing to fence (no VIP). */
  get empty(): boolean {
    return this.addresses.length === 0 && this.addresses6.length === 0;
  }

  private get all(): string {
    return [...this.addresses, ...this.addresses6].join(', ');
  }

  /** The families present, each with its nft table family and the VIPs in it. */
  private families(): { family: 'arp' | 'ip6'; vips: readonly string[] }[] {
    return [
      ...(this.addresses.length ? [{ family: 'arp' as const, vips: this.addresses }] : []),
      ...(this.addresses6.length ? [{ family: 'ip6' as const, vips: this.addresses6 }] : []),
    ];
  }

  /** Milliseconds until the elements expire as last set (0 when absent or expired); for status. */
  remainingMs(): number {
    return this.state_ === 'installed' ? Math.max(0, Math.round(this.expiresAt - this.mono())) : 0;
  }

  /**
   * How much earlier than validity the elements end: the slowest of the last 16 nft runs, capped by
   * maxLeadMs. An element applied δ after its timeout was computed outlives validity by δ; the
   * margin covers δ up to marginMs, the lead adds what this host has recently needed.
   */
  leadMs(): number {
    return Math.min(this.maxLeadMs, Math.ceil(Math.max(0, ...this.recentNftMs)));
  }

  /** Milliseconds an element set now would live, or 0 when validity is (nearly) gone. */
  timeoutMs(): number {
    const ms = Math.floor(this.until() - this.mono() - this.leadMs());
    return ms >= this.minTimeoutMs ? ms : 0;
  }

  private elements(vips: readonly string[], ms: number): string {
    return vips.map((a) => `${a} timeout ${ms}ms`).join(', ');
  }

  /** nft transactions, one at a time and in order (a refresh never races an install or removal). */
  private chain: Promise<unknown> = Promise.resolve();
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /**
   * One nft transaction, run when its turn comes: `build` computes the script (and so its timeouts)
   * right before nft gets it. Through the long-lived nft when there is one (one line, written in the
   * same synchronous turn as `build`); otherwise one nft with the script as its argument, not on
   * standard input: once spawned, nft needs nothing more from this process. (Fed on stdin, a
   * controller frozen between the spawn and closing the pipe made nft apply the pre-freeze timeout
   * seconds later, reviving the element while a new leader held the VIP; seen: 280 ms.)
   */
  private async nft(script: string, what: string): Promise<string> {
    const cmd = this.session ? `nft -i … (${what})` : `nft … (${what})`;
    const started = this.mono();
    try {
      if (this.session) await this.session.apply(script.trim().split('\n').join('; '));
      else await this.runner.run('nft', [script]);   // the runner's deadline: timing.commandTimeoutMs
      this.recentNftMs.push(this.mono() - started);
      if (this.recentNftMs.length > 16) this.recentNftMs.shift();
    } catch (e) {
      throw new KernelCommandError(this.driver, cmd, `${what} failed: ${e instanceof Error ? e.message : String(e)}`, e);
    }
    return cmd;
  }

  private noChange(elapsed: () => number): ReconcileResult {
    return { driver: this.driver, differences: [], commands: [], durationMs: elapsed() };
  }

  /**
   * Idempotent: installs the table (replacing any left by an earlier run) with live elements, in one
   * transaction. A no-op when this process already installed it.
   */
  async hold(): Promise<ReconcileResult> {
    const elapsed = timer();
    if (this.empty) return this.noChange(elapsed);
    this.session?.warm();
    return this.serial(async () => {
      if (this.state_ === 'installed') return this.noChange(elapsed);
      const started = this.mono();
      const ms = this.timeoutMs();
      const t = this.table;
      const input = this.families().flatMap(({ family, vips }) => [
        `table ${family} ${t} {}`,
        `delete table ${family} ${t}`,
        `table ${family} ${t} {`,
        `  set valid { type ${family === 'arp' ? 'ipv4_addr' : 'ipv6_addr'}; flags timeout; }`,
        '  chain output {',
        '    type filter hook output priority 0; policy accept;',
        // IPv6: solicited and unsolicited advertisements for the VIP are sent from the VIP itself.
        ...(family === 'arp'
          ? ['    arp saddr ip @valid accept', `    arp saddr ip { ${vips.join(', ')} } drop`]
          : ['    icmpv6 type nd-neighbor-advert ip6 saddr @valid accept', `    icmpv6 type nd-neighbor-advert ip6 saddr { ${vips.join(', ')} } drop`]),
        '  }',
        '}',
        ...(ms > 0 ? [`add element ${family} ${t} valid { ${this.elements(vips, ms)} }`] : []),
      ]).concat('').join('\n');
      const cmd = await this.nft(input, `install ARP fence for ${this.all}, ${ms} ms`);
      this.state_ = 'installed';
      this.expiresAt = ms > 0 ? started + ms : started;
      return { driver: this.driver, differences: [`ARP fence for ${this.all} not installed`], commands: [cmd], durationMs: elapsed() };
    });
  }

  /**
   * Restarts the elements' timeouts at the validity left now (add, delete, add in one transaction:
   * a plain add does not refresh a timeout). False when skipped: not installed, no validity left,
   * a refresh still waiting or running, or less than minExtendMs to gain.
   */
  async refresh(): Promise<boolean> {
    if (this.empty || this.state_ !== 'installed' || this.refreshing) return false;
    this.refreshing = true;
    try {
      return await this.serial(async () => {
        if (this.state_ !== 'installed') return false;
        const started = this.mono();
        const ms = this.timeoutMs();
        if (ms === 0 || started + ms - this.expiresAt < this.minExtendMs) return false;
        const t = this.table;
        try {
          await this.nft(this.families().flatMap(({ family, vips }) => [
            `add element ${family} ${t} valid { ${vips.join(', ')} }`,
            `delete element ${family} ${t} valid { ${vips.join(', ')} }`,
            `add element ${family} ${t} valid { ${this.elements(vips, ms)} }`,
          ]).concat('').join('\n'), `refresh ARP fence, ${ms} ms`);
        } catch (e) {
          // The table may be gone or the elements in any state: the next hold() (each reconcile pass) reinstalls it.
          this.state_ = 'unknown';
          throw e;
        }
        this.expiresAt = Math.max(this.expiresAt, started + ms);
        return true;
      });
    } finally {
      this.refreshing = false;
    }
  }

  /** Stops the long-lived nft, if any (the table stays): shutdown. */
  close(): Promise<void> {
    return this.session?.close() ?? Promise.resolve();
  }

  /** Removes the table (idempotent); call after the VIP addresses are gone. */
  async release(): Promise<ReconcileResult> {
    const elapsed = timer();
    if (this.empty) return this.noChange(elapsed);
    this.session?.warm();
    return this.serial(async () => {
      if (this.state_ === 'absent') return this.noChange(elapsed);
      const wasInstalled = this.state_ === 'installed';
      const t = this.table;
      const cmd = await this.nft(this.families().map(({ family }) => `table ${family} ${t} {}\ndelete table ${family} ${t}\n`).join(''), 'remove ARP fence');
      this.state_ = 'absent';
      this.expiresAt = Number.NEGATIVE_INFINITY;
      // From 'unknown' (start-up) this only clears a table an earlier run may have left: not a change worth reporting.
      return wasInstalled
        ? { driver: this.driver, differences: ['ARP fence installed, not holding the VIPs'], commands: [cmd], durationMs: elapsed() }
        : this.noChange(elapsed);
    });
  }
}
