// Kernel ARP fence (design.md §4): an nftables `arp` table whose output chain drops every ARP
// packet sent from a VIP address unless that address is in a timed set. The leader refreshes the
// elements on each acknowledged lease renewal with a timeout that ends at its validity deadline,
// so a frozen or killed controller's kernel stops answering ARP for the VIPs before a standby can
// take over, although the addresses stay on its interfaces.
//
// Not covered: packets sent through packet sockets (arping) bypass the arp hook; an arping already
// running when the controller freezes finishes its burst.
import { isIPv4 } from 'node:net';
import type { CommandRunner } from './runner';
import { KernelCommandError, timer, type ReconcileResult } from './types';

export interface ArpFenceOptions {
  /** nftables table name (family arp). */
  table?: string;
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
}

export type FenceState = 'unknown' | 'installed' | 'absent';

export const DEFAULT_FENCE_TABLE = 'sandwich_fence';
const DRIVER = 'fence';

export class ArpFence {
  readonly table: string;
  private state_: FenceState = 'unknown';
  private readonly minTimeoutMs: number;
  private readonly mono: () => number;
  private readonly addresses: readonly string[];
  private readonly minExtendMs: number;
  /** Monotonic time at which the elements expire as last set (the moment nft was started + timeout). */
  private expiresAt = Number.NEGATIVE_INFINITY;
  private refreshing = false;
  /** Wall time of the last nft runs (ms, spawn to exit): an upper bound of how late an element was applied. */
  private readonly recentNftMs: number[] = [];
  private readonly maxLeadMs: number;

  /**
   * @param addresses the VIPs (IPv4, with or without /prefix; others are ignored)
   * @param until monotonic deadline (ms) until which the VIPs may be announced: the leader's validUntil
   */
  constructor(private readonly runner: CommandRunner, addresses: readonly string[], private readonly until: () => number, opts: ArpFenceOptions = {}) {
    this.table = opts.table ?? DEFAULT_FENCE_TABLE;
    if (!/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(this.table)) throw new KernelCommandError(DRIVER, 'config', `bad nftables table name "${this.table}"`, null);
    this.minTimeoutMs = opts.minTimeoutMs ?? 20;
    this.minExtendMs = opts.minExtendMs ?? 0;
    this.maxLeadMs = opts.maxLeadMs ?? 0;
    this.mono = opts.mono ?? (() => performance.now());
    this.addresses = [...new Set(addresses.map((a) => a.split('/')[0] ?? '').filter((a) => isIPv4(a)))];
  }

  get state(): FenceState {
    return this.state_;
  }

  /** True when there is nothing to fence (no IPv4 VIP). */
  get empty(): boolean {
    return this.addresses.length === 0;
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

  private elements(ms: number): string {
    return this.addresses.map((a) => `${a} timeout ${ms}ms`).join(', ');
  }

  /**
   * One nft transaction. The script is an argument, not standard input: once spawned (in the same
   * synchronous turn that computed its timeout), nft needs nothing more from this process. Fed on
   * stdin, a controller frozen between the spawn and closing the pipe made nft apply the pre-freeze
   * timeout seconds later, reviving the element while a new leader held the VIP (seen: 280 ms).
   */
  private async nft(script: string, what: string): Promise<string> {
    const cmd = `nft … (${what})`;
    const started = this.mono();
    try {
      await this.runner.run('nft', [script]);   // the runner's deadline: timing.commandTimeoutMs
      this.recentNftMs.push(this.mono() - started);
      if (this.recentNftMs.length > 16) this.recentNftMs.shift();
    } catch (e) {
      throw new KernelCommandError(DRIVER, cmd, `${what} failed: ${e instanceof Error ? e.message : String(e)}`, e);
    }
    return cmd;
  }

  /**
   * Idempotent: installs the table (replacing any left by an earlier run) with live elements, in one
   * transaction. A no-op when this process already installed it.
   */
  async hold(): Promise<ReconcileResult> {
    const elapsed = timer();
    if (this.empty || this.state_ === 'installed') return { driver: DRIVER, differences: [], commands: [], durationMs: elapsed() };
    const started = this.mono();
    const ms = this.timeoutMs();
    const t = this.table;
    const input = [
      `table arp ${t} {}`,
      `delete table arp ${t}`,
      `table arp ${t} {`,
      '  set valid { type ipv4_addr; flags timeout; }',
      '  chain output {',
      '    type filter hook output priority 0; policy accept;',
      '    arp saddr ip @valid accept',
      `    arp saddr ip { ${this.addresses.join(', ')} } drop`,
      '  }',
      '}',
      ...(ms > 0 ? [`add element arp ${t} valid { ${this.elements(ms)} }`] : []),
      '',
    ].join('\n');
    const cmd = await this.nft(input, `install ARP fence for ${this.addresses.join(', ')}, ${ms} ms`);
    this.state_ = 'installed';
    this.expiresAt = ms > 0 ? started + ms : started;
    return { driver: DRIVER, differences: [`ARP fence for ${this.addresses.join(', ')} not installed`], commands: [cmd], durationMs: elapsed() };
  }

  /**
   * Restarts the elements' timeouts at the validity left now (add, delete, add in one transaction:
   * a plain add does not refresh a timeout). False when skipped: not installed, no validity left,
   * a refresh still running, or less than minExtendMs to gain.
   */
  async refresh(): Promise<boolean> {
    if (this.empty || this.state_ !== 'installed' || this.refreshing) return false;
    const started = this.mono();
    const ms = this.timeoutMs();
    if (ms === 0 || started + ms - this.expiresAt < this.minExtendMs) return false;
    const t = this.table;
    const all = this.addresses.join(', ');
    this.refreshing = true;
    try {
      await this.nft([
        `add element arp ${t} valid { ${all} }`,
        `delete element arp ${t} valid { ${all} }`,
        `add element arp ${t} valid { ${this.elements(ms)} }`,
        '',
      ].join('\n'), `refresh ARP fence, ${ms} ms`);
      this.expiresAt = Math.max(this.expiresAt, started + ms);
    } finally {
      this.refreshing = false;
    }
    return true;
  }

  /** Removes the table (idempotent); call after the VIP addresses are gone. */
  async release(): Promise<ReconcileResult> {
    const elapsed = timer();
    if (this.empty || this.state_ === 'absent') return { driver: DRIVER, differences: [], commands: [], durationMs: elapsed() };
    const wasInstalled = this.state_ === 'installed';
    const t = this.table;
    const cmd = await this.nft(`table arp ${t} {}\ndelete table arp ${t}\n`, 'remove ARP fence');
    this.state_ = 'absent';
    this.expiresAt = Number.NEGATIVE_INFINITY;
    // From 'unknown' (start-up) this only clears a table an earlier run may have left: not a change worth reporting.
    return wasInstalled
      ? { driver: DRIVER, differences: ['ARP fence installed, not holding the VIPs'], commands: [cmd], durationMs: elapsed() }
      : { driver: DRIVER, differences: [], commands: [], durationMs: elapsed() };
  }
}
