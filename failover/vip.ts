// A VIP group: hold = addresses, then gratuitous ARP bursts (now, again after repeatAfterMs, every refreshIntervalMs);
// release = stop announcing, then remove the addresses. Idempotent: holding a held group does nothing.
// IPv6 addresses are announced by the kernel: adding one sends an unsolicited neighbour advertisement when the
// interface has ndisc_notify=1 and accept_dad=0 (set here before the addresses; with `nodad` it sends none).
// To announce again, the address is deleted and added back in one `ip -6 -batch -` (the kernel has no other
// trigger; Node has no raw sockets).
import { isIPv4, isIPv6 } from 'node:net';
import { AddressesDriver, type AddressesKernel, type AddressWant } from './addresses';
import { formatCommand, type CommandRunner } from './runner';
import { SysctlDriver, type SysctlWant } from './sysctl';
import { systemTimers, type TimerHandle, type Timers } from './timers';
import { DriverError, silentLog, timer, type DriverLog, type DriverOptions, type ReconcileResult } from './types';

/** A sysctl key of one interface; the slash form when the name has a dot (VLANs: eth0.100). */
export function ifSysctl(family: 'ipv4' | 'ipv6', dev: string, key: string): string {
  return dev.includes('.') ? `net/${family}/conf/${dev}/${key}` : `net.${family}.conf.${dev}.${key}`;
}

export interface GarpSettings {
  /** ARP replies per burst (`arping -c`). */
  readonly count: number;
  /** Second burst this long after takeover; 0 = none. */
  readonly repeatAfterMs: number;
  /** Re-announce this often while held; 0 = never. */
  readonly refreshIntervalMs: number;
}

export interface VipGroupWant {
  readonly name: string;
  /** Linux interface names (already mapped from the config's logical names). */
  readonly addresses: readonly AddressWant[];
  readonly garp: GarpSettings;
}

export interface VipOptions extends DriverOptions {
  timers?: Timers;
  /** Checked right before every arping is spawned: never announce a leadership we cannot prove. */
  canAnnounce?: () => boolean;
  /** Results are named `<kind>:<group>`: "vip" (default) or "path" (an active-active group's path addresses). */
  kind?: 'vip' | 'path';
  /** How the addresses are read and changed (default: `ip` commands through the runner). */
  addressesKernel?: AddressesKernel;
}

export type AnnounceReason = 'takeover' | 'repeat' | 'refresh';

export class VipGroup {
  private held_ = false;
  private repeatTimer: TimerHandle | null = null;
  private refreshTimer: TimerHandle | null = null;
  private abort = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly addresses: AddressesDriver;
  private readonly sysctl: SysctlDriver;
  /** Per-interface settings the kernel's own IPv6 announcement needs; {} without an IPv6 address. */
  readonly sysctls: SysctlWant;
  private readonly timers: Timers;
  private readonly log: DriverLog;
  /** Results of finished arping runs, newest last (bounded). */
  readonly announcements: { reason: AnnounceReason; address: string; dev: string; ok: boolean; error?: string; durationMs: number; how: 'arping' | 'kernel-on-add' | 're-add' }[] = [];

  constructor(private readonly runner: CommandRunner, readonly group: VipGroupWant, private readonly opts: VipOptions = {}) {
    this.addresses = new AddressesDriver(opts.addressesKernel ?? runner, opts);
    this.sysctl = new SysctlDriver(runner, opts);
    const want: Record<string, string> = {};
    for (const a of group.addresses) {
      if (!isIPv6(a.address.split('/')[0] ?? '')) continue;
      want[ifSysctl('ipv6', a.dev, 'accept_dad')] = '0';
      want[ifSysctl('ipv6', a.dev, 'ndisc_notify')] = '1';
    }
    this.sysctls = want;
    this.timers = opts.timers ?? systemTimers;
    this.log = opts.log ?? silentLog;
  }

  get driver(): string {
    return `${this.opts.kind ?? 'vip'}:${this.group.name}`;
  }

  /** True after a successful hold until release. */
  get held(): boolean {
    return this.held_;
  }

  async reconcile(hold: boolean): Promise<ReconcileResult> {
    return hold ? this.hold() : this.release();
  }

  private async hold(): Promise<ReconcileResult> {
    const elapsed = timer();
    const s = await this.sysctl.reconcile(this.sysctls).catch((e: unknown) => {
      throw new DriverError(this.driver, `${this.driver}: interface settings for IPv6 announcements: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    });
    const r = await this.addresses.reconcile({ present: this.group.addresses, absent: [] }, this.driver);
    const commands = [...s.commands, ...r.commands];
    // Announce on takeover, and again whenever an address had to be (re-)added.
    if (!this.held_ || r.commands.length > 0) {
      this.held_ = true;
      const added = new Set(this.group.addresses.filter((a) => r.commands.includes(formatCommand('ip', ['addr', 'add', a.address, 'dev', a.dev]))));
      commands.push(...this.announce('takeover', added));
      this.cancelTimers();
      if (this.group.garp.repeatAfterMs > 0) {
        this.repeatTimer = this.timers.setTimeout(() => {
          this.repeatTimer = null;
          this.announce('repeat');
        }, this.group.garp.repeatAfterMs);
      }
      this.scheduleRefresh();
    }
    return { driver: this.driver, differences: [...s.differences, ...r.differences], commands, durationMs: elapsed() };
  }

  private scheduleRefresh(): void {
    const every = this.group.garp.refreshIntervalMs;
    if (every <= 0) return;
    this.refreshTimer = this.timers.setTimeout(() => {
      this.refreshTimer = null;
      if (!this.held_) return;
      this.announce('refresh');
      this.scheduleRefresh();
    }, every);
  }

  async release(): Promise<ReconcileResult> {
    const elapsed = timer();
    this.stopAnnouncing();
    this.held_ = false;
    const r = await this.addresses.reconcile({ present: [], absent: this.group.addresses }, this.driver);
    return { ...r, durationMs: elapsed() };
  }

  /** Stops timers and in-flight arping runs; leaves the addresses as they are (process shutdown after release). */
  close(): void {
    this.stopAnnouncing();
  }

  /** Resolves when every arping started so far has finished (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
  }

  private stopAnnouncing(): void {
    this.cancelTimers();
    this.abort.abort();
    this.abort = new AbortController();
  }

  private cancelTimers(): void {
    if (this.repeatTimer) this.timers.clearTimeout(this.repeatTimer);
    if (this.refreshTimer) this.timers.clearTimeout(this.refreshTimer);
    this.repeatTimer = this.refreshTimer = null;
  }

  /**
   * Starts one arping per IPv4 address in the background, and a re-add per IPv6 address not in `added`
   * (the kernel announced those as it added them); returns the commands started.
   */
  private announce(reason: AnnounceReason, added: ReadonlySet<AddressWant> = new Set()): string[] {
    const started: string[] = [];
    for (const a of this.group.addresses) {
      const ip = a.address.split('/')[0] ?? '';
      const v6 = isIPv6(ip);
      if (!isIPv4(ip) && !v6) continue;
      if (v6 && added.has(a)) {
        this.record({ reason, address: ip, dev: a.dev, ok: true, durationMs: 0, how: 'kernel-on-add' });
        this.log({ level: 'info', driver: this.driver, message: `announced ${ip} on ${a.dev} (${reason}, unsolicited neighbour advertisement sent by the kernel on add)`, reason });
        continue;
      }
      if (this.opts.canAnnounce && !this.opts.canAnnounce()) {
        this.log({ level: 'warn', driver: this.driver, message: `not announcing ${ip} on ${a.dev} (${reason}): leadership cannot be proven`, reason });
        continue;
      }
      const [file, args, input, what, timeoutMs] = v6
        ? ['ip', ['-6', '-batch', '-'], `addr del ${a.address} dev ${a.dev}\naddr add ${a.address} dev ${a.dev}\n`, 're-added (unsolicited neighbour advertisement)', 5000] as const
        : ['arping', ['-U', '-c', String(this.group.garp.count), '-I', a.dev, ip], undefined, `${this.group.garp.count} gratuitous ARP`, this.group.garp.count * 1000 + 3000] as const;
      started.push(formatCommand(file, args) + (input ? ` <<< ${JSON.stringify(input)}` : ''));
      const how = v6 ? 're-add' : 'arping';
      const t0 = this.timers.now();
      const wall = timer();
      const signal = this.abort.signal;
      const p = this.runner
        .run(file, args, { signal, timeoutMs, ...(input ? { input } : {}) })
        .then(
          () => {
            this.record({ reason, address: ip, dev: a.dev, ok: true, durationMs: wall(), how });
            this.log({ level: 'info', driver: this.driver, message: `announced ${ip} on ${a.dev} (${reason}, ${what})`, reason, startedAt: t0, durationMs: wall() });
          },
          (e: unknown) => {
            const error = e instanceof Error ? e.message : String(e);
            this.record({ reason, address: ip, dev: a.dev, ok: false, error, durationMs: wall(), how });
            if (signal.aborted) {   // our own stop (release, shutdown): not a failure
              this.log({ level: 'info', driver: this.driver, message: `announcement of ${ip} on ${a.dev} (${reason}) stopped: the addresses are being released`, reason, durationMs: wall() });
              return;
            }
            this.log({ level: 'error', driver: this.driver, message: `${v6 ? 'neighbour advertisement' : 'gratuitous ARP'} for ${ip} on ${a.dev} (${reason}) failed: ${error}`, reason, durationMs: wall() });
          },
        )
        .finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    }
    return started;
  }

  private record(e: VipGroup['announcements'][number]): void {
    this.announcements.push(e);
    if (this.announcements.length > 50) this.announcements.shift();
  }
}
