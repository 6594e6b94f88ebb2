import { decide, describeDesired, desiredEqual, formatTime } from '../../controller/decide';
import type { Config } from '../../controller/config';
import type { Decision, FirewallState } from '../../controller/types';
import { exampleConfig, previousDesired, smallConfig, snapshot, SnapshotBuilder, T0 } from './fixtures/snapshot';

const states = (d: Decision) => Object.fromEntries(Object.entries(d.desired.firewalls).map(([k, v]) => [k, v.state]));
const reasonOf = (d: Decision, fw: string) => d.desired.firewalls[fw]!.reason;

/** Decide again at `now` with the decision fed back as previous. */
function again(b: SnapshotBuilder, d: Decision, now: number): Decision {
  return decide(b.at(now).previous(d.desired).build());
}

const seed = exampleConfig();
const three = smallConfig({ ingress: 3 });
const noHoldDown = smallConfig({ holdDownMs: 0 });

describe('decide: evidence and fusion', () => {
  type Case = [name: string, config: Config, build: (b: SnapshotBuilder) => SnapshotBuilder, expected: Record<string, FirewallState>];
  const cases: Case[] = [
    ['every observer sees every check up', seed, (b) => b.seeAll('up'), { fw1: 'up', fw2: 'up' }],
    ['one of three observers failing on the path: majority up', three,
      (b) => b.seeAll('up').see('lb3', 'fw1', 'path-http', 'down').leader('lb3'), { fw1: 'up', fw2: 'up' }],
    ['two of three observers failing on the path: majority down', three,
      (b) => b.seeAll('up').see('lb2', 'fw1', 'path-http', 'down').see('lb3', 'fw1', 'path-http', 'down'), { fw1: 'down', fw2: 'up' }],
    ['two observers disagree, leader lb1 sees down: leader wins the tie', seed,
      (b) => b.seeAll('up').see('lb1', 'fw1', 'path-http', 'down').leader('lb1'), { fw1: 'down', fw2: 'up' }],
    ['two observers disagree, leader lb2 sees up: leader wins the tie', seed,
      (b) => b.seeAll('up').see('lb1', 'fw1', 'path-http', 'down').leader('lb2'), { fw1: 'up', fw2: 'up' }],
    ['tie without a leader view is no evidence; the other checks decide', seed,
      (b) => b.seeAll('up').see('lb1', 'fw1', 'path-http', 'down').leader('er1'), { fw1: 'up', fw2: 'up' }],
    ['a single failing check fails the firewall (egress leg from the only egress node)', seed,
      (b) => b.seeAll('up').see('er1', 'fw2', 'egress-leg', 'down'), { fw1: 'up', fw2: 'down' }],
    ['one check with evidence is enough to be healthy (previously down, no hold-down)', noHoldDown,
      (b) => b.seeAll('up', { checks: ['egress-leg'] }).previous(previousDesired(noHoldDown, { fw1: 'down', fw2: 'down' })),
      { fw1: 'up', fw2: 'up' }],
    ['rise/fall is the probes\' job: a down state with streak 1 counts at once', seed,
      (b) => b.seeAll('up').see('lb1', 'fw1', 'path-http', 'down', { streak: 1 }).see('lb2', 'fw1', 'path-http', 'down', { streak: 1 }),
      { fw1: 'down', fw2: 'up' }],
    ['unknown states are ignored', seed,
      (b) => b.seeAll('up').see('lb1', 'fw1', 'path-http', 'unknown').see('lb2', 'fw1', 'path-http', 'unknown'), { fw1: 'up', fw2: 'up' }],
    ['an observation 15000 ms old (observationStaleMs) still counts', seed,
      (b) => b.seeAll('up').seeAll('down', { firewalls: ['fw1'], checks: ['path-http'] }, { updatedAt: T0 - 15_000 }), { fw1: 'down', fw2: 'up' }],
    ['an observation 15001 ms old is stale and ignored', seed,
      (b) => b.seeAll('up').seeAll('down', { firewalls: ['fw1'], checks: ['path-http'] }, { updatedAt: T0 - 15_001 }), { fw1: 'up', fw2: 'up' }],
    ['observations from unknown nodes, of the wrong role, for unknown firewalls or checks are ignored', seed,
      (b) => b.seeAll('up')
        .see('lb9', 'fw1', 'path-http', 'down').see('lb8', 'fw1', 'path-http', 'down')
        .see('er1', 'fw1', 'path-http', 'down')
        .see('lb1', 'fw1', 'egress-leg', 'down').see('lb2', 'fw1', 'egress-leg', 'down')
        .see('lb1', 'fw1', 'tcp-443', 'down').see('lb1', 'fw7', 'path-http', 'down'),
      { fw1: 'up', fw2: 'up' }],
    ['checks that do not apply to a firewall are ignored for it', smallConfig({ firewallChecks: { fw2: ['ingress-leg'] } }),
      (b) => b.seeAll('up').see('lb1', 'fw2', 'path-http', 'down').see('lb2', 'fw2', 'path-http', 'down').see('er1', 'fw2', 'egress-leg', 'down'),
      { fw1: 'up', fw2: 'up' }],
  ];
  it.each(cases)('%s', (_name, config, build, expected) => {
    expect(states(decide(build(snapshot(config)).build()))).toEqual(expected);
  });

  it('no observations and no previous decision: assumed up', () => {
    const d = decide(snapshot(seed).build());
    expect(states(d)).toEqual({ fw1: 'up', fw2: 'up' });
    expect(d.reasons).toEqual(['fw1 up: no observations yet; assumed up', 'fw2 up: no observations yet; assumed up']);
  });

  it('no observations keeps the previous state, and a tie without leader view is no evidence', () => {
    const prev = previousDesired(seed, { fw1: 'down', fw2: 'up' });
    expect(states(decide(snapshot(seed).previous(prev).build()))).toEqual({ fw1: 'down', fw2: 'up' });
    const tie = snapshot(seed).leader('er1').previous(prev)
      .see('lb1', 'fw1', 'path-http', 'up').see('lb2', 'fw1', 'path-http', 'down')
      // lb2 sees fw2 up: not a broken observer (one that sees every firewall down is ignored, which would make fw1 recovering).
      .see('lb1', 'fw2', 'path-http', 'up').see('lb2', 'fw2', 'path-http', 'up').build();
    const d = decide(tie);
    expect(states(d)).toEqual({ fw1: 'down', fw2: 'up' });
    expect(d.changed).toBe(false);
  });

  it('duplicate reports from one node: the freshest counts, whatever the order', () => {
    const base = snapshot(seed).seeAll('up').build();
    const older = { ...base.observations.find((o) => o.node === 'lb1' && o.firewall === 'fw1' && o.check === 'path-http')!, state: 'down' as const, updatedAt: T0 - 500 };
    const newer = { ...older, state: 'up' as const, updatedAt: T0 - 50 };
    const rest = base.observations.filter((o) => !(o.node === 'lb1' && o.firewall === 'fw1' && o.check === 'path-http'));
    const a = decide({ ...base, leader: 'lb1', observations: [...rest, older, newer] });
    const b = decide({ ...base, leader: 'lb1', observations: [newer, ...rest, older] });
    expect(states(a)).toEqual({ fw1: 'up', fw2: 'up' });
    expect(b).toEqual(a);
    // Same freshness: down wins, then the earliest since, then the error text.
    const x = { ...older, updatedAt: T0 - 50, lastError: 'HTTP 503' };
    const y = { ...x, lastError: 'HTTP 500' };
    const z = { ...newer };
    const one = decide({ ...base, leader: 'lb1', observations: [...rest, x, y, z] });
    const other = decide({ ...base, leader: 'lb1', observations: [z, y, ...rest, x] });
    expect(reasonOf(one, 'fw1')).toBe('fw1 down: path-http failing since 11:59:57.000 from lb1 (HTTP 500), ok from lb2, tie broken by leader lb1; ingress-leg ok; egress-leg ok');
    expect(other).toEqual(one);
  });
});

describe('decide: broken-observer discount', () => {
  const failClosed = exampleConfig((c) => { c.policy.allDown = 'fail-closed'; });
  const noDiscount = exampleConfig((c) => { c.policy.allDown = 'fail-closed'; c.policy.discountBrokenObserver = false; });
  const lb2Broken = (b: SnapshotBuilder) => b.seeAll('up').seeAll('down', { nodes: ['lb2'], checks: ['ingress-leg'] }).leader('lb2');

  it('ignores an observer that sees every firewall down on a check another observer sees up', () => {
    const d = decide(lb2Broken(snapshot(failClosed)).build());
    expect(states(d)).toEqual({ fw1: 'up', fw2: 'up' });
    expect(reasonOf(d, 'fw1')).toBe('fw1 up: path-http ok; ingress-leg ok; egress-leg ok; ignoring lb2: sees every firewall down on ingress-leg');
  });

  it('without the discount the leader breaks the tie with its broken view', () => {
    expect(states(decide(lb2Broken(snapshot(noDiscount)).build()))).toEqual({ fw1: 'down', fw2: 'down' });
  });

  it('does not discount when no other observer sees the check up', () => {
    const d = decide(snapshot(failClosed).seeAll('up').seeAll('down', { checks: ['ingress-leg'] }).build());
    expect(states(d)).toEqual({ fw1: 'down', fw2: 'down' });
    expect(reasonOf(d, 'fw1')).not.toContain('ignoring');
  });

  it('does not discount an observer that still sees one firewall up', () => {
    const d = decide(snapshot(failClosed).seeAll('up').see('lb2', 'fw1', 'ingress-leg', 'down').leader('lb2').build());
    expect(states(d)).toEqual({ fw1: 'down', fw2: 'up' });
  });

  it('does not discount on a check that applies to a single firewall', () => {
    const one = smallConfig({ firewalls: 1, ingress: 3, allDown: 'fail-closed' });
    const d = decide(snapshot(one).seeAll('up').see('lb2', 'fw1', 'path-http', 'down').see('lb3', 'fw1', 'path-http', 'down').build());
    expect(states(d)).toEqual({ fw1: 'down' });
  });
});

describe('decide: hold-down', () => {
  const prevDown = previousDesired(seed, { fw1: 'down', fw2: 'up' }, 4);

  it('keeps a recovered firewall down until it has been healthy for holdDownMs, exactly at the boundary', () => {
    const b = snapshot(seed).seeAll('up').previous(prevDown);
    const d0 = decide(b.build());
    // Recovering: still out of IPVS (weight 0), but its egress table points back at it from now on, so the
    // egress nodes have moved it back before the ingress nodes send it new flows at the hold-down's end.
    expect(d0.desired.firewalls.fw1).toMatchObject({ state: 'down', healthySince: T0, weight: 0, egressVia: 'fw1' });
    expect(reasonOf(d0, 'fw1')).toBe('fw1 recovering: healthy since 12:00:00.000, back in service at 12:00:10.000');
    expect(d0).toMatchObject({ changed: true, reasons: ['fw1 egress now via fw1 (was fw2)'] });
    expect(d0.desired.revision).toBe(5);

    const d1 = again(b, d0, T0 + 9_999);
    expect(d1.desired.firewalls.fw1).toMatchObject({ state: 'down', healthySince: T0, egressVia: 'fw1' });
    expect(d1.changed).toBe(false);

    const d2 = again(b, d1, T0 + 10_000);
    expect(d2.desired.firewalls.fw1).toMatchObject({ state: 'up', weight: 100, egressVia: 'fw1', healthySince: null, since: T0 + 10_000 });
    expect(d2.desired.revision).toBe(6);
    expect(d2.reasons).toEqual(['fw1 up: healthy since 12:00:00.000, hold-down of 10000 ms passed; path-http ok; ingress-leg ok; egress-leg ok']);
  });

  it('failing again during hold-down resets healthySince', () => {
    const b = snapshot(seed).seeAll('up').previous(prevDown);
    const d0 = decide(b.build());
    b.see('er1', 'fw1', 'egress-leg', 'down', { since: T0 + 4_000, error: null });
    const d1 = again(b, d0, T0 + 5_000);
    expect(d1.desired.firewalls.fw1).toMatchObject({ state: 'down', healthySince: null });
    expect(reasonOf(d1, 'fw1')).toBe('fw1 down: path-http ok; ingress-leg ok; egress-leg failing since 12:00:04.000 from er1');
    b.see('er1', 'fw1', 'egress-leg', 'up');
    const d2 = again(b, d1, T0 + 6_000);
    expect(d2.desired.firewalls.fw1).toMatchObject({ state: 'down', healthySince: T0 + 6_000 });
    expect(again(b, d2, T0 + 15_999).desired.firewalls.fw1!.state).toBe('down');
    expect(again(b, d2, T0 + 16_000).desired.firewalls.fw1!.state).toBe('up');
  });

  it('holdDownMs 0 returns a firewall at once', () => {
    const c = smallConfig({ holdDownMs: 0 });
    const d = decide(snapshot(c).seeAll('up').previous(previousDesired(c, { fw1: 'down', fw2: 'up' })).build());
    expect(states(d)).toEqual({ fw1: 'up', fw2: 'up' });
  });

  it('no evidence during hold-down neither completes nor resets it', () => {
    const b = snapshot(seed).seeAll('up').previous(prevDown);
    const d0 = decide(b.build());
    b.forget({ firewalls: ['fw1'] });
    const d1 = again(b, d0, T0 + 20_000);
    expect(d1.desired.firewalls.fw1).toMatchObject({ state: 'down', healthySince: T0 });
    b.seeAll('up', { firewalls: ['fw1'] }, { updatedAt: T0 + 20_500 });
    expect(again(b, d1, T0 + 21_000).desired.firewalls.fw1!.state).toBe('up');
  });
});

describe('decide: drain and maintenance', () => {
  type Case = [name: string, build: (b: SnapshotBuilder) => SnapshotBuilder, fw1: Partial<Record<'state' | 'weight' | 'egressVia' | 'reason', unknown>>];
  const cases: Case[] = [
    ['drained and healthy → draining', (b) => b.seeAll('up').drain('fw1'),
      { state: 'draining', weight: 0, egressVia: 'fw1', reason: 'fw1 draining: drained by alice (kernel upgrade)' }],
    ['drained and failing → down', (b) => b.seeAll('up').drain('fw1').seeAll('down', { firewalls: ['fw1'], checks: ['ingress-leg'] }),
      { state: 'down', weight: 0, egressVia: 'fw2' }],
    ['maintenance window active (until > now) → draining', (b) => b.seeAll('up').maintenance('fw1', T0 + 1),
      { state: 'draining', weight: 0, reason: 'fw1 draining: maintenance window "nightly" until 12:00:00.001' }],
    ['maintenance window ending now has expired', (b) => b.seeAll('up').maintenance('fw1', T0), { state: 'up', weight: 100 }],
    ['maintenance window in the past has expired', (b) => b.seeAll('up').maintenance('fw1', T0 - 60_000), { state: 'up', weight: 100 }],
    ['drain of another firewall does not touch fw1', (b) => b.seeAll('up').drain('fw2').drain('fw9'), { state: 'up', weight: 100 }],
    ['drain and maintenance together are both named', (b) => b.seeAll('up').drain('fw1', 'bob', '').maintenance('fw1', T0 + 3_600_000, 'patch'),
      { state: 'draining', reason: 'fw1 draining: drained by bob; maintenance window "patch" until 13:00:00.000' }],
  ];
  it.each(cases)('%s', (_name, build, fw1) => {
    expect(decide(build(snapshot(seed)).build()).desired.firewalls.fw1).toMatchObject(fw1);
  });
});

describe('decide: never remove the last firewall', () => {
  const allFailing = (b: SnapshotBuilder) => b.seeAll('up').seeAll('down', { checks: ['path-http'] });

  it('fail-open keeps the firewalls that were up in service, with the reason', () => {
    const d = decide(allFailing(snapshot(seed)).previous(previousDesired(seed, { fw1: 'up', fw2: 'up' })).build());
    expect(d.desired.firewalls.fw1).toMatchObject({ state: 'up', weight: 100, egressVia: 'fw1', failOpen: true });
    expect(states(d)).toEqual({ fw1: 'up', fw2: 'up' });
    expect(d.reasons).toEqual([
      'fw1 kept in service although failing: every firewall is failing and policy allDown is fail-open',
      'fw2 kept in service although failing: every firewall is failing and policy allDown is fail-open',
    ]);
    expect(d.changed).toBe(true);
  });

  it('fail-open keeps only the previously-up firewall; the down one stays down and egresses via it', () => {
    const prev = previousDesired(seed, { fw1: 'up', fw2: { state: 'down', egressVia: 'fw1' } }, 3);
    const d = decide(allFailing(snapshot(seed)).previous(prev).build());
    expect(d.desired.firewalls).toMatchObject({
      fw1: { state: 'up', weight: 100, failOpen: true },
      fw2: { state: 'down', weight: 0, egressVia: 'fw1', failOpen: false },
    });
    // fw1's state did not change, yet entering fail-open is reported and counted.
    expect(d.desired.revision).toBe(4);
    expect(d.reasons).toEqual(['fw1 kept in service although failing: every firewall is failing and policy allDown is fail-open']);
    expect(d.desired.firewalls.fw1!.since).toBe(prev.firewalls.fw1!.since);
  });

  it('fail-open without a previous decision keeps every failing, non-drained firewall', () => {
    const d = decide(allFailing(snapshot(smallConfig({ firewalls: 3 }))).drain('fw3').build());
    expect(states(d)).toEqual({ fw1: 'up', fw2: 'up', fw3: 'down' });
    expect(d.reasons[0]).toBe('fw1 returned to service although failing: every firewall is failing and policy allDown is fail-open');
  });

  it('fail-open prefers a drained healthy firewall to failing ones', () => {
    const b = snapshot(seed).seeAll('up').seeAll('down', { firewalls: ['fw1'], checks: ['ingress-leg'] }).drain('fw2')
      .previous(previousDesired(seed, { fw1: 'up', fw2: 'draining' }));
    const d = decide(b.build());
    expect(d.desired.firewalls).toMatchObject({ fw1: { state: 'down', egressVia: 'fw2' }, fw2: { state: 'up', weight: 100, failOpen: false } });
    expect(reasonOf(d, 'fw2')).toBe('fw2 returned to service although drained: no other firewall is healthy and in service and policy allDown is fail-open');
  });

  it('fail-open prefers a recovering firewall to failing ones, before its hold-down ends', () => {
    const b = snapshot(seed).seeAll('up').seeAll('down', { firewalls: ['fw1'], checks: ['ingress-leg'] })
      .previous(previousDesired(seed, { fw1: 'up', fw2: { state: 'down', healthySince: T0 - 1_000 } }));
    const d = decide(b.build());
    expect(d.desired.firewalls).toMatchObject({ fw1: { state: 'down', egressVia: 'fw2' }, fw2: { state: 'up', healthySince: null } });
    expect(reasonOf(d, 'fw2')).toContain('fw2 returned to service before its hold-down ended');
  });

  it('without evidence, a firewall kept up by fail-open is still taken as failing', () => {
    const b = snapshot(seed).previous(previousDesired(seed, { fw1: 'down', fw2: 'down' }));
    const d0 = decide(b.build());
    expect(d0.desired.firewalls).toMatchObject({ fw1: { state: 'up', failOpen: true }, fw2: { state: 'up', failOpen: true } });
    expect(d0.reasons[0]).toBe('fw1 returned to service although failing: every firewall is failing and policy allDown is fail-open');
    const d1 = again(b, d0, T0 + 1_000);
    expect(d1).toEqual({ desired: d0.desired, reasons: [], changed: false });
  });

  it('fail-closed lets every firewall go down', () => {
    const c = exampleConfig((raw) => { raw.policy.allDown = 'fail-closed'; });
    const d = decide(allFailing(snapshot(c)).previous(previousDesired(c, { fw1: 'up', fw2: 'up' })).build());
    expect(d.desired.firewalls).toMatchObject({
      fw1: { state: 'down', weight: 0, egressVia: 'fw1', failOpen: false },
      fw2: { state: 'down', weight: 0, egressVia: 'fw2', failOpen: false },
    });
  });

  it('leaves fail-open when a firewall is healthy again', () => {
    const b = allFailing(snapshot(seed)).previous(previousDesired(seed, { fw1: 'up', fw2: 'up' }));
    const d0 = decide(b.build());
    b.seeAll('up', { firewalls: ['fw2'] });
    const d1 = again(b, d0, T0 + 1_000);
    expect(d1.desired.firewalls).toMatchObject({ fw1: { state: 'down', egressVia: 'fw2' }, fw2: { state: 'up', failOpen: false } });
    expect(d1.reasons).toEqual([expect.stringMatching(/^fw1 down: path-http failing/), 'fw2 up: path-http ok; ingress-leg ok; egress-leg ok']);
  });
});

describe('decide: egressVia with three firewalls', () => {
  const c = smallConfig({ firewalls: 3, allDown: 'fail-closed' });
  const fail = (b: SnapshotBuilder, fws: string[]) => b.seeAll('down', { firewalls: fws, checks: ['ingress-leg'] });
  type Case = [name: string, build: (b: SnapshotBuilder) => SnapshotBuilder, expected: Record<string, string>];
  const cases: Case[] = [
    ['all up: each via itself', (b) => b, { fw1: 'fw1', fw2: 'fw2', fw3: 'fw3' }],
    ['fw1 down → next up, fw2', (b) => fail(b, ['fw1']), { fw1: 'fw2', fw2: 'fw2', fw3: 'fw3' }],
    ['fw2 down → fw3', (b) => fail(b, ['fw2']), { fw1: 'fw1', fw2: 'fw3', fw3: 'fw3' }],
    ['fw3 down → wraps to fw1', (b) => fail(b, ['fw3']), { fw1: 'fw1', fw2: 'fw2', fw3: 'fw1' }],
    ['fw1, fw2 down → both via fw3', (b) => fail(b, ['fw1', 'fw2']), { fw1: 'fw3', fw2: 'fw3', fw3: 'fw3' }],
    ['an up firewall is preferred to a nearer draining one', (b) => fail(b, ['fw1']).drain('fw2'), { fw1: 'fw3', fw2: 'fw2', fw3: 'fw3' }],
    ['no up firewall → a draining one', (b) => fail(b, ['fw1', 'fw3']).drain('fw2'), { fw1: 'fw2', fw2: 'fw2', fw3: 'fw2' }],
    ['nothing in service → itself', (b) => fail(b, ['fw1', 'fw2', 'fw3']), { fw1: 'fw1', fw2: 'fw2', fw3: 'fw3' }],
  ];
  it.each(cases)('%s', (_name, build, expected) => {
    const d = decide(build(snapshot(c).seeAll('up')).build());
    expect(Object.fromEntries(Object.entries(d.desired.firewalls).map(([k, v]) => [k, v.egressVia]))).toEqual(expected);
  });
});

describe('decide: revision, since and reasons', () => {
  it('starts at revision 1 with a sentence for every firewall', () => {
    const d = decide(snapshot(seed).seeAll('up').build());
    expect(d.desired).toMatchObject({ revision: 1, decidedBy: 'lb1', decidedAt: T0 });
    expect(d.changed).toBe(true);
    expect(d.reasons).toHaveLength(2);
  });

  it('increments only on change; unchanged returns the previous revision, since, reason and decider', () => {
    const b = snapshot(seed).seeAll('up');
    const d0 = decide(b.build());
    b.leader('lb2').see('lb1', 'fw1', 'path-http', 'up', { rttMs: 9 });
    const d1 = again(b, d0, T0 + 5_000);
    expect(d1).toEqual({ desired: d0.desired, reasons: [], changed: false });

    b.seeAll('down', { firewalls: ['fw2'], checks: ['path-http'] });
    const d2 = again(b, d1, T0 + 6_000);
    expect(d2.desired).toMatchObject({ revision: 2, decidedBy: 'lb2', decidedAt: T0 + 6_000 });
    expect(d2.desired.firewalls.fw1).toEqual(d0.desired.firewalls.fw1);
    expect(d2.desired.firewalls.fw2).toMatchObject({ state: 'down', since: T0 + 6_000 });
    expect(d2.reasons).toHaveLength(1);
  });

  it('reports a weight change from the config', () => {
    const prev = decide(snapshot(seed).seeAll('up').build()).desired;
    const heavier = exampleConfig((raw) => { (raw.firewalls as { weight: number }[])[0]!.weight = 50; });
    const d = decide(snapshot(heavier).seeAll('up').previous(prev).build());
    expect(d.reasons).toEqual(['fw1 weight now 50 (was 100)']);
    expect(d.desired.revision).toBe(prev.revision + 1);
    expect(d.desired.firewalls.fw1!.reason).toBe(prev.firewalls.fw1!.reason);
  });

  it('reports a down firewall whose egress moves', () => {
    const c = smallConfig({ firewalls: 3 });
    const b = snapshot(c).seeAll('up').seeAll('down', { firewalls: ['fw1'], checks: ['ingress-leg'] });
    const d0 = decide(b.build());
    b.seeAll('down', { firewalls: ['fw2'], checks: ['ingress-leg'] });
    const d1 = again(b, d0, T0 + 1_000);
    expect(d1.reasons).toEqual(['fw1 egress now via fw3 (was fw2)', expect.stringMatching(/^fw2 down: path-http ok; ingress-leg failing/)]);
  });

  it('reports a firewall removed from the config', () => {
    const prev = previousDesired(seed, { fw1: 'up', fw2: 'up', fw9: 'up' });
    const d = decide(snapshot(seed).seeAll('up').previous(prev).build());
    expect(d.reasons).toEqual(['fw9 removed: no longer in the configuration']);
    expect(Object.keys(d.desired.firewalls)).toEqual(['fw1', 'fw2']);
  });

  it('writes the reason sentence of the design example exactly', () => {
    const b = snapshot(seed).at(T0 + 5_000).seeAll('up')
      .see('lb1', 'fw1', 'path-http', 'down', { since: T0 + 500 })
      .see('lb2', 'fw1', 'path-http', 'down', { since: T0 + 700 })
      .see('er1', 'fw1', 'egress-leg', 'down', { since: T0 + 1_204, error: null });
    const d = decide(b.build());
    expect(d.reasons).toEqual([
      'fw1 down: path-http failing since 12:00:00.500 from lb1 (timeout after 800 ms), lb2 (timeout after 800 ms); ingress-leg ok; egress-leg failing since 12:00:01.204 from er1',
      'fw2 up: path-http ok; ingress-leg ok; egress-leg ok',
    ]);
  });

  it('names both sides of a tie and who broke it', () => {
    const d = decide(snapshot(seed).seeAll('up').see('lb1', 'fw1', 'path-http', 'down', { error: 'HTTP 503' }).leader('lb2').build());
    expect(reasonOf(d, 'fw1')).toBe('fw1 up: path-http ok from lb2, failing from lb1 (HTTP 503), tie broken by leader lb2; ingress-leg ok; egress-leg ok');
  });

  it('describeDesired prints one line per firewall', () => {
    const d = decide(snapshot(seed).seeAll('up').seeAll('down', { firewalls: ['fw1'], checks: ['ingress-leg'], nodes: ['lb1', 'lb2'] }, { error: null, since: T0 - 2_000 }).build());
    expect(describeDesired(d.desired)).toEqual([
      'fw1 down weight 0 since 12:00:00.000, egress via fw2 — fw1 down: path-http ok; ingress-leg failing since 11:59:58.000 from lb1, lb2; egress-leg ok',
      'fw2 up weight 100 since 12:00:00.000 — fw2 up: path-http ok; ingress-leg ok; egress-leg ok',
    ]);
  });

  it('formats times as UTC HH:MM:SS.mmm and never throws on a bad time', () => {
    expect(formatTime(T0 + 1_204)).toBe('12:00:01.204');
    expect(formatTime(Number.NaN)).toBe('(invalid time NaN)');
  });

  it('desiredEqual compares content', () => {
    const d = decide(snapshot(seed).seeAll('up').build()).desired;
    expect(desiredEqual(d, structuredClone(d))).toBe(true);
    expect(desiredEqual(d, { ...d, firewalls: { ...d.firewalls, fw1: { ...d.firewalls.fw1!, healthySince: 1 } } })).toBe(false);
    expect(desiredEqual(null, d)).toBe(false);
  });
});

describe('decide: purity', () => {
  it('reads no clock and does not mutate its snapshot', () => {
    const s = deepFreeze(snapshot(seed).seeAll('up').drain('fw2').previous(previousDesired(seed, { fw1: 'down', fw2: 'up' })).build());
    const a = decide(s);
    const spy = jest.spyOn(Date, 'now').mockReturnValue(0);
    try {
      expect(decide(s)).toEqual(a);
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
  });
});

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
