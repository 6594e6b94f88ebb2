// A VIP group: hold = addresses, then announcement bursts (now, again after repeatAfterMs, every refreshIntervalMs);
// release = stop announcing, then remove the addresses. Idempotent: holding a held group does nothing.
// With an announcer (failover/announcer.ts) the controller sends the frames itself: per address a burst
// of garp.count gratuitous ARPs or unsolicited neighbour advertisements, FRAME_SPACING_MS apart, the first
// round before hold() returns. Without one (the packet addon cannot load; `sandwich plan`) it falls back
// to one `arping` per IPv4 address, and announces IPv6 addresses through the kernel: adding one sends an
// unsolicited neighbour advertisement when the interface has ndisc_notify=1 and accept_dad=0 (set here
// before the addresses in both modes; accept_dad=0 also keeps a taken-over address from failing DAD
// against the old holder), and a delete + add in one `ip -6 -batch -` announces it again.
import { isIPv4, isIPv6 } from 'node:net';
import { AddressesDriver, type AddressesKernel, type AddressWant } from './addresses';
import type { Announcer, PreparedFrame } from './announcer';
import { formatCommand, type CommandRunner } from './runner';
import { SysctlDriver, type SysctlWant } from './sysctl';
import { systemTimers, type TimerHandle, type Timers } from './timers';
import { DriverError, silentLog, timer, type DriverLog, type DriverOptions, type ReconcileResult } from './types';

/** A sysctl key of one interface; the slash form when the name has a dot (VLANs: eth0.100). */
export function ifSysctl(family: 'ipv4' | 'ipv6', dev: string, key: string): string {
  return dev.includes('.') ? `net/${family}/conf/${dev}/${key}` : `net.${family}.conf.${dev}.${key}`;
}

export interface GarpSettings {
  /** Frames per burst and address (`arping -c`). */
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
  /** Checked right before every frame is sent (or arping spawned): never announce a leadership we cannot prove. */
  canAnnounce?: () => boolean;
  /** Sends the frames; without it, arping and IPv6 re-adds through the runner. */
  announcer?: Announcer;
  /** Results are named `<kind>:<group>`: "vip" (default) or "path" (an active-active group's path addresses). */
  kind?: 'vip' | 'path';
  /** How the addresses are read and changed (default: `ip` commands through the runner). */
  addressesKernel?: AddressesKernel;
}

export type AnnounceReason = 'takeover' | 'repeat' | 'refresh';

/** Between the frames of one burst: apart enough not to share a momentary loss, done in 0.2 s for 3 frames. */
export const FRAME_SPACING_MS = 100;

/** The command line a burst of our own frames equals, for operators (results' commands, plan). */
export function announceCommand(dev: string, ip: string, count: number): string {
  return isIPv6(ip)
    ? formatCommand('ndsend', [ip, dev]) + (count > 1 ? ` # ×${count}, ${FRAME_SPACING_MS} ms apart` : '')
    : formatCommand('arping', ['-U', '-c', String(count), '-i', String(FRAME_SPACING_MS / 1000), '-I', dev, ip]);
}

export class VipGroup {
  private held_ = false;
  private repeatTimer: TimerHandle | null = null;
  private refreshTimer: TimerHandle | null = null;
  private abort = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly addresses: AddressesDriver;
  private readonly sysctl: SysctlDriver;
  /** Per-interface settings for IPv6 VIPs (no DAD against the old holder; the kernel's NA on add); {} without one. */
  readonly sysctls: SysctlWant;
  private readonly timers: Timers;
  private readonly log: DriverLog;
  /** Results of finished bursts, newest last (bounded). */
  readonly announcements: { reason: AnnounceReason; address: string; dev: string; ok: boolean; error?: string; durationMs: number; how: 'packet' | 'arping' | 'kernel-on-add' | 're-add'; frames?: number }[] = [];
  /** Pending rounds of packet bursts (cancelled with the announcements). */
  private readonly rounds = new Set<TimerHandle>();

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

  /** Stops timers and bursts or arping runs in flight; leaves the addresses as they are (process shutdown after release). */
  close(): void {
    this.stopAnnouncing();
  }

  /** Resolves when every burst or arping started so far has finished (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
  }

  private stopAnnouncing(): void {
    this.cancelTimers();
    for (const t of this.rounds) this.timers.clearTimeout(t);
    this.rounds.clear();
    this.abort.abort();
    this.abort = new AbortController();
  }

  private cancelTimers(): void {
    if (this.repeatTimer) this.timers.clearTimeout(this.repeatTimer);
    if (this.refreshTimer) this.timers.clearTimeout(this.refreshTimer);
    this.repeatTimer = this.refreshTimer = null;
  }

  /**
   * A burst through the announcer when there is one (every address, `added` or not). Otherwise starts one
   * arping per IPv4 address in the background, and a re-add per IPv6 address not in `added` (the kernel
   * announced those as it added them). Returns the command lines the announcements equal.
   */
  private announce(reason: AnnounceReason, added: ReadonlySet<AddressWant> = new Set()): string[] {
    if (this.opts.announcer) return this.burst(this.opts.announcer, reason);
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

  /**
   * One burst through the announcer: round i sends one frame per address still going, each prepared,
   * then checked with canAnnounce(), then sent, in one synchronous turn; round 0 runs now. An address
   * stops at its first failure; a "no" from canAnnounce() ends the burst (later rounds would be refused too).
   */
  private burst(announcer: Announcer, reason: AnnounceReason): string[] {
    const count = Math.max(1, this.group.garp.count);
    const targets = this.group.addresses
      .map((a) => ({ dev: a.dev, ip: a.address.split('/')[0] ?? '', frames: 0, error: undefined as string | undefined }))
      .filter((t) => isIPv4(t.ip) || isIPv6(t.ip));
    if (targets.length === 0) return [];
    const signal = this.abort.signal;
    const wall = timer();
    const t0 = this.timers.now();
    let refused = false;
    let handle: TimerHandle | null = null;
    let finished!: () => void;
    const done = new Promise<void>((resolve) => (finished = resolve));
    let over = false;
    const finish = (): void => {
      if (over) return;
      over = true;
      signal.removeEventListener('abort', finish);
      if (handle) this.rounds.delete(handle);
      handle = null;
      for (const t of targets) {
        const what = `${t.frames} ${isIPv6(t.ip) ? 'unsolicited neighbour advertisement' : 'gratuitous ARP'}${t.frames === 1 ? '' : 's'}`;
        if (t.error === undefined && refused && t.frames === 0) continue;   // logged when refused
        if (t.error !== undefined) {
          this.record({ reason, address: t.ip, dev: t.dev, ok: false, error: t.error, durationMs: wall(), how: 'packet', frames: t.frames });
          this.log({ level: 'error', driver: this.driver, message: `announcing ${t.ip} on ${t.dev} (${reason}) failed after ${what}: ${t.error}`, reason, durationMs: wall() });
        } else if (refused && t.frames < count) {
          // Cut short by canAnnounce() (its warning is logged): recorded, never reported as announced.
          this.record({ reason, address: t.ip, dev: t.dev, ok: false, error: 'leadership cannot be proven', durationMs: wall(), how: 'packet', frames: t.frames });
        } else if (signal.aborted && t.frames < count) {
          this.record({ reason, address: t.ip, dev: t.dev, ok: false, error: 'stopped', durationMs: wall(), how: 'packet', frames: t.frames });
          this.log({ level: 'info', driver: this.driver, message: `announcement of ${t.ip} on ${t.dev} (${reason}) stopped after ${what}: the addresses are being released`, reason, durationMs: wall() });
        } else {
          this.record({ reason, address: t.ip, dev: t.dev, ok: true, durationMs: wall(), how: 'packet', frames: t.frames });
          this.log({ level: 'info', driver: this.driver, message: `announced ${t.ip} on ${t.dev} (${reason}, ${what})`, reason, startedAt: t0, durationMs: wall() });
        }
      }
      finished();
    };
    const round = (i: number): void => {
      handle = null;
      for (const t of targets) {
        if (t.error !== undefined || refused || signal.aborted) continue;
        let frame: PreparedFrame;
        try {
          frame = announcer.prepare(t.dev, t.ip);
        } catch (e) {
          t.error = e instanceof Error ? e.message : String(e);
          continue;
        }
        // Nothing asynchronous between this question and the send.
        if (this.opts.canAnnounce && !this.opts.canAnnounce()) {
          refused = true;
          this.log({ level: 'warn', driver: this.driver, message: `not announcing ${targets.map((x) => `${x.ip} on ${x.dev}`).join(', ')} (${reason}): leadership cannot be proven`, reason });
          continue;
        }
        try {
          announcer.send(frame);
          t.frames++;
        } catch (e) {
          t.error = e instanceof Error ? e.message : String(e);
        }
      }
      if (i + 1 < count && !refused && !signal.aborted && targets.some((t) => t.error === undefined)) {
        handle = this.timers.setTimeout(() => {
          if (handle) this.rounds.delete(handle);
          round(i + 1);
        }, FRAME_SPACING_MS);
        this.rounds.add(handle);
      } else {
        finish();
      }
    };
    signal.addEventListener('abort', finish, { once: true });
    round(0);
    if (!signal.aborted) {
      const p = done.finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    }
    return targets.map((t) => announceCommand(t.dev, t.ip, count));
  }

  private record(e: VipGroup['announcements'][number]): void {
    this.announcements.push(e);
    if (this.announcements.length > 50) this.announcements.shift();
  }
}
