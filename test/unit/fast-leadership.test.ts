// FastLeadership's renewal loop and the standby's takeover clock, against scripted etcd answers.
import { FastLeadership, TakeoverClock, type RenewResult } from '../../controller/etcd-fast-leader';

const opts = { renewIntervalMs: 5, takeoverAfterMs: 200, marginMs: 50 };
const value = Buffer.from('{"node":"lb1","since":1}');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, fn: () => boolean, ms = 2000): Promise<void> {
  const t0 = performance.now();
  while (!fn()) {
    if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

function leader(renew: (rev: string) => Promise<RenewResult>, sent = performance.now()) {
  const seen = { renewed: [] as number[], errors: [] as string[], lost: [] as string[], revisions: [] as string[] };
  const l = new FastLeadership('ingress', 'lb1', 1, value, '10', sent, opts, {
    renew: (rev) => {
      seen.revisions.push(rev);
      return renew(rev);
    },
    onRenewed: (t) => seen.renewed.push(t),
    onError: (e) => seen.errors.push(e.message),
    onLost: (r) => seen.lost.push(r),
  });
  return { l, seen };
}

describe('FastLeadership', () => {
  it('renews on its own revision and moves validity to the last acknowledged send time + takeoverAfterMs − marginMs', async () => {
    let rev = 10;
    const { l, seen } = leader(async () => ({ ok: true, revision: String(++rev) }));
    await until('three renewals', () => seen.renewed.length >= 3);
    l.end('resigned');
    const last = seen.renewed.at(-1)!;
    expect(seen.revisions.slice(0, 3)).toEqual(['10', '11', '12']);
    expect(seen.lost).toEqual(['resigned']);
    expect(l.validUntil()).toBeLessThanOrEqual(performance.now());
    expect(last + opts.takeoverAfterMs - opts.marginMs).toBeGreaterThan(l.validUntil());
  });

  it('adopts the revision of its own lost-answer write without extending validity', async () => {
    let calls = 0;
    const { l, seen } = leader(async (rev) => (++calls === 1 ? { ok: false, current: { value, revision: '15' } } : { ok: true, revision: String(Number(rev) + 1) }));
    await until('a renewal on the adopted revision', () => seen.revisions.includes('15') && seen.renewed.length > 0);
    expect(seen.lost).toEqual([]);
    expect(seen.revisions[0]).toBe('10');
    l.end('resigned');
  });

  it('ends at once when the key holds another value, and when it is gone', async () => {
    const taken = leader(async () => ({ ok: false, current: { value: Buffer.from('{"node":"lb2","since":2}'), revision: '11' } }));
    await taken.l.lost;
    expect(taken.seen.lost).toEqual(['the leader key was taken over']);
    expect(taken.l.validUntil()).toBeLessThanOrEqual(performance.now());
    const gone = leader(async () => ({ ok: false, current: null }));
    await gone.l.lost;
    expect(gone.seen.lost).toEqual(['the leader key was deleted']);
  });

  it('keeps trying through errors, never two renewals at once, and is lost when validity expires', async () => {
    let inflight = 0;
    let maxInflight = 0;
    const t0 = performance.now();
    const { l, seen } = leader(async () => {
      maxInflight = Math.max(maxInflight, ++inflight);
      await sleep(20);
      inflight--;
      throw new Error('etcd renew leader ingress: no answer within 20 ms');
    }, t0);
    await l.lost;
    expect(seen.lost).toEqual([`not renewed within ${opts.takeoverAfterMs - opts.marginMs} ms (validity expired)`]);
    expect(performance.now()).toBeGreaterThanOrEqual(t0 + opts.takeoverAfterMs - opts.marginMs);
    expect(seen.errors.length).toBeGreaterThan(1);
    expect(maxInflight).toBe(1);
  });
});

describe('TakeoverClock', () => {
  it('allows a takeover only after the same revision was seen for takeoverAfterMs, counted from the first sighting', () => {
    const c = new TakeoverClock(200);
    expect(c.observe('ingress', '7', 1000)).toBe(false);
    expect(c.observe('ingress', '7', 1199)).toBe(false);
    expect(c.observe('egress', '7', 1300)).toBe(false); // roles are separate
    expect(c.observe('ingress', '8', 1250)).toBe(false); // a renewal restarts the clock
    expect(c.observe('ingress', '8', 1449)).toBe(false);
    expect(c.observe('ingress', '8', 1450)).toBe(true);
    c.forget('ingress');
    expect(c.observe('ingress', '8', 5000)).toBe(false);
  });
});
