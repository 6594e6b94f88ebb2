// Run inside a network namespace by garp.test.ts (compiled on require by swc): takes VIP groups over one
// after another, each with its own addresses, and prints one JSON line per run with the moments (wall
// clock, ms) the test compares with the capture. Argument: JSON { dev, runs, first, count, mode, refuse, v4only }.
import { PacketAnnouncer, type Announcer, type PreparedFrame } from '../../failover/announcer';
import { PacketSocket } from '../../failover/packet/socket';
import { ExecRunner } from '../../failover/runner';
import { VipGroup } from '../../failover/vip';

interface Args { dev: string; runs: number; first: number; count: number; mode: 'packet' | 'arping'; refuse?: boolean; v4only?: boolean; pauseMs?: number }

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
/** Wall clock with sub-millisecond resolution (the capture's clock). */
const now = (): number => performance.timeOrigin + performance.now();

/** Notes when the group first asks for a frame (the decision to announce) and when each send returned. */
class TimedAnnouncer implements Announcer {
  decisionAt: number | null = null;
  readonly sentAt: Record<string, number> = {};
  constructor(private readonly inner: Announcer) {}
  prepare(dev: string, ip: string): PreparedFrame {
    this.decisionAt ??= now();
    return this.inner.prepare(dev, ip);
  }
  send(f: PreparedFrame): void {
    this.inner.send(f);
    this.sentAt[f.ip] ??= now();
  }
  close(): void {}
}

async function main(): Promise<void> {
  // The group's timers do not hold the process open (the daemon has other handles): this does, until the end.
  const alive = setInterval(() => undefined, 1000);
  const runner = new ExecRunner(5000);
  const socket = args.mode === 'packet' ? PacketSocket.open() : null;
  const packets = socket ? new PacketAnnouncer(socket) : null;
  for (let i = args.first; i < args.first + args.runs; i++) {
    const v4 = `192.0.2.${i}`;
    const v6 = `2001:db8::${i.toString(16)}`;
    const announcer = packets ? new TimedAnnouncer(packets) : null;
    const addresses = [{ dev: args.dev, address: `${v4}/24` }, ...(packets && !args.v4only ? [{ dev: args.dev, address: `${v6}/64` }] : [])];
    const v = new VipGroup(runner, { name: `g${i}`, addresses, garp: { count: args.count, repeatAfterMs: 0, refreshIntervalMs: 0 } }, {
      ...(announcer ? { announcer } : {}),
      ...(args.refuse ? { canAnnounce: () => false } : {}),
    });
    const callAt = now();
    const r = await v.reconcile(true);
    const returnedAt = now();
    await v.settled();
    process.stdout.write(`${JSON.stringify({ i, v4, v6, callAt, returnedAt, decisionAt: announcer?.decisionAt ?? null, sentAt: announcer?.sentAt ?? {}, commands: r.commands, announcements: v.announcements })}\n`);
    await v.release();
    await new Promise((res) => setTimeout(res, args.pauseMs ?? 20));
  }
  socket?.close();
  clearInterval(alive);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
