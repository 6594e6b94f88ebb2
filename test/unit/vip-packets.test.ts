// VipGroup with an announcer: the controller's own frames instead of arping / IPv6 re-adds.
import type { Announcer, PreparedFrame } from '../../failover/announcer';
import { FakeRunner } from '../../failover/runner';
import { ManualTimers } from '../../failover/timers';
import type { DriverLogEntry } from '../../failover/types';
import { FRAME_SPACING_MS, VipGroup } from '../../failover/vip';
import { FakeKernel } from './fixtures/kernel/fake-kernel';

/** Records prepare / ask / send in order; fails where told. */
class FakeAnnouncer implements Announcer {
  readonly events: string[] = [];
  failPrepare = new Set<string>();
  failSend = new Set<string>();
  prepare(dev: string, ip: string): PreparedFrame {
    this.events.push(`prepare ${ip}`);
    if (this.failPrepare.has(ip)) throw new Error(`interface ${dev}: No such device`);
    return { dev, ip, ifindex: 1, bytes: Buffer.from(ip) };
  }
  send(f: PreparedFrame): void {
    if (this.failSend.has(f.ip)) throw new Error(`sending the announcement of ${f.ip} on ${f.dev}: Network is down`);
    this.events.push(`send ${f.ip}`);
  }
  close(): void {}
  get sent(): string[] {
    return this.events.filter((e) => e.startsWith('send ')).map((e) => e.slice(5));
  }
}

const group = {
  name: 'ingress',
  addresses: [{ dev: 'eth0', address: '192.0.2.254/24' }, { dev: 'eth1', address: '2001:db8:0:1::254/64' }],
  garp: { count: 3, repeatAfterMs: 5000, refreshIntervalMs: 60_000 },
};

function setup(canAnnounce?: () => boolean) {
  const k = new FakeKernel(['eth0', 'eth1']);
  const r = new FakeRunner(k.handle);
  const timers = new ManualTimers();
  const a = new FakeAnnouncer();
  const logs: DriverLogEntry[] = [];
  const v = new VipGroup(r, group, { timers, announcer: a, log: (e) => logs.push(e), ...(canAnnounce ? { canAnnounce } : {}) });
  return { k, r, timers, a, logs, v };
}

describe('VipGroup announcing with its own frames', () => {
  it('takeover: the first frames leave before hold returns, then count-1 more rounds FRAME_SPACING_MS apart; repeat and refresh bursts; no process', async () => {
    const { k, r, timers, a, v } = setup();
    const res = await v.reconcile(true);
    expect(res.commands).toEqual([
      'sysctl -w net.ipv6.conf.eth1.accept_dad=0 net.ipv6.conf.eth1.ndisc_notify=1',
      'ip addr add 192.0.2.254/24 dev eth0',
      'ip addr add 2001:db8:0:1::254/64 dev eth1',
      'arping -U -c 3 -i 0.1 -I eth0 192.0.2.254',
      `ndsend 2001:db8:0:1::254 eth1 # ×3, ${FRAME_SPACING_MS} ms apart`,
    ]);
    expect(a.sent).toEqual(['192.0.2.254', '2001:db8:0:1::254']);
    timers.advance(FRAME_SPACING_MS - 1);
    expect(a.sent).toHaveLength(2);
    timers.advance(1);
    expect(a.sent).toHaveLength(4);
    timers.advance(FRAME_SPACING_MS);
    expect(a.sent).toHaveLength(6);
    timers.advance(10 * FRAME_SPACING_MS);
    expect(a.sent).toHaveLength(6);
    await v.settled();
    expect(v.announcements.map((x) => `${x.reason} ${x.address} ${x.how} ${x.ok} ${x.frames}`)).toEqual(['takeover 192.0.2.254 packet true 3', 'takeover 2001:db8:0:1::254 packet true 3']);
    timers.advance(5000 - 12 * FRAME_SPACING_MS);   // the repeat burst's first round
    expect(a.sent).toHaveLength(8);
    timers.advance(60_000);                         // its 2 other rounds, and the whole refresh burst at 60 s
    await v.settled();
    expect(a.sent).toHaveLength(18);
    expect(v.announcements.map((x) => x.reason)).toEqual(['takeover', 'takeover', 'repeat', 'repeat', 'refresh', 'refresh']);
    // Neither arping nor an IPv6 delete + re-add.
    expect(r.calls.filter((c) => c.file === 'arping' || c.args.includes('-batch'))).toEqual([]);
    expect(k.ip6Batches).toEqual([]);
    expect((await v.reconcile(true)).commands).toEqual([]);
    await v.reconcile(false);
    expect(timers.size).toBe(0);
  });

  it('asks canAnnounce() after preparing and right before each send; a "no" ends the burst, logged once', async () => {
    let valid = true;
    const { timers, a, logs, v } = setup(() => {
      a.events.push('ask');
      return valid;
    });
    await v.reconcile(true);
    expect(a.events).toEqual(['prepare 192.0.2.254', 'ask', 'send 192.0.2.254', 'prepare 2001:db8:0:1::254', 'ask', 'send 2001:db8:0:1::254']);
    valid = false;
    timers.advance(FRAME_SPACING_MS);
    expect(a.events.slice(6)).toEqual(['prepare 192.0.2.254', 'ask']);
    timers.advance(60_000);
    await v.settled();
    expect(a.sent).toHaveLength(2);
    // The takeover burst cut short after its first round: recorded as not done, never logged as announced.
    expect(v.announcements.map((x) => `${x.reason} ${x.address} ${x.ok} ${x.frames} ${x.error}`)).toEqual([
      'takeover 192.0.2.254 false 1 leadership cannot be proven',
      'takeover 2001:db8:0:1::254 false 1 leadership cannot be proven',
    ]);
    expect(logs.filter((l) => /^announced/.test(l.message))).toEqual([]);
    expect(logs.filter((l) => l.level === 'warn').map((l) => l.message)).toEqual([
      'not announcing 192.0.2.254 on eth0, 2001:db8:0:1::254 on eth1 (takeover): leadership cannot be proven',
      'not announcing 192.0.2.254 on eth0, 2001:db8:0:1::254 on eth1 (repeat): leadership cannot be proven',
      'not announcing 192.0.2.254 on eth0, 2001:db8:0:1::254 on eth1 (refresh): leadership cannot be proven',
    ]);
  });

  it('a failing address is recorded and logged as an error; the others go on', async () => {
    const { timers, a, logs, v } = setup();
    a.failSend.add('192.0.2.254');
    await v.reconcile(true);
    timers.advance(2 * FRAME_SPACING_MS);
    await v.settled();
    expect(a.sent).toEqual(['2001:db8:0:1::254', '2001:db8:0:1::254', '2001:db8:0:1::254']);
    expect(v.announcements.map((x) => `${x.address} ${x.ok} ${x.frames} ${x.error ?? ''}`)).toEqual([
      '192.0.2.254 false 0 sending the announcement of 192.0.2.254 on eth0: Network is down',
      '2001:db8:0:1::254 true 3 ',
    ]);
    expect(logs.filter((l) => l.level === 'error').map((l) => l.message)).toEqual([
      'announcing 192.0.2.254 on eth0 (takeover) failed after 0 gratuitous ARPs: sending the announcement of 192.0.2.254 on eth0: Network is down',
    ]);
    a.failSend.clear();
    a.failPrepare.add('2001:db8:0:1::254');
    timers.advance(5000);
    await v.settled();
    expect(v.announcements.slice(2).map((x) => `${x.address} ${x.ok} ${x.frames}`)).toEqual(['192.0.2.254 true 3', '2001:db8:0:1::254 false 0']);
  });

  it('release stops a burst between rounds: recorded as stopped, not as an error, and no frame after', async () => {
    const { timers, a, logs, v } = setup();
    await v.reconcile(true);
    timers.advance(FRAME_SPACING_MS);
    await v.reconcile(false);
    await v.settled();
    timers.advance(600_000);
    expect(a.sent).toHaveLength(4);
    expect(v.announcements.map((x) => `${x.address} ${x.ok} ${x.frames} ${x.error}`)).toEqual(['192.0.2.254 false 2 stopped', '2001:db8:0:1::254 false 2 stopped']);
    expect(logs.filter((l) => l.level === 'error')).toEqual([]);
    expect(logs.filter((l) => /stopped after 2 .*: the addresses are being released/.test(l.message))).toHaveLength(2);
  });
});
