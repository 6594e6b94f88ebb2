import fc from 'fast-check';
import { decide } from '../../controller/decide';
import type { Config } from '../../controller/config';
import type { Decision, Desired, DesiredFirewall, Observation, Snapshot } from '../../controller/types';
import { smallConfig, T0 } from './fixtures/snapshot';

interface Shape {
  firewalls: number;
  ingress: number;
  egress: number;
  allDown: 'fail-open' | 'fail-closed';
  discount: boolean;
  holdDownMs: number;
  /** fw2 has only the ingress-leg check (exercises checks that do not apply). */
  narrowFw2: boolean;
}

const configs = new Map<string, Config>();
function configOf(s: Shape): Config {
  const key = JSON.stringify(s);
  let c = configs.get(key);
  if (!c) {
    c = smallConfig({
      firewalls: s.firewalls, ingress: s.ingress, egress: s.egress, allDown: s.allDown,
      discountBrokenObserver: s.discount, holdDownMs: s.holdDownMs,
      weights: Array.from({ length: s.firewalls }, (_, i) => 10 * (i + 1)),
      ...(s.narrowFw2 ? { firewallChecks: { fw2: ['ingress-leg'] } } : {}),
    });
    configs.set(key, c);
  }
  return c;
}

const shapeArb: fc.Arbitrary<Shape> = fc.record({
  firewalls: fc.integer({ min: 2, max: 6 }),
  ingress: fc.integer({ min: 1, max: 3 }),
  egress: fc.integer({ min: 0, max: 2 }),
  allDown: fc.constantFrom('fail-open' as const, 'fail-closed' as const),
  discount: fc.boolean(),
  holdDownMs: fc.constantFrom(0, 1_000, 10_000),
  narrowFw2: fc.boolean(),
});

interface ObsFields {
  state: 'up' | 'down' | 'unknown';
  ageMs: number;
  sinceAgoMs: number;
  error: string | null;
}

/** Observation fields for one (node, firewall, check); ages reach past observationStaleMs (15 s). */
const obsFieldsArb: fc.Arbitrary<ObsFields> = fc.record({
  state: fc.constantFrom('up' as const, 'down' as const, 'down' as const, 'up' as const, 'unknown' as const),
  ageMs: fc.integer({ min: 0, max: 20_000 }),
  sinceAgoMs: fc.integer({ min: 0, max: 60_000 }),
  error: fc.option(fc.constantFrom('timeout after 800 ms', 'HTTP 503', 'connection refused'), { nil: null }),
});

function snapshotArb(config: Config, nowArb: fc.Arbitrary<number>, previousArb?: fc.Arbitrary<Desired | null>): fc.Arbitrary<Snapshot> {
  const fws = config.firewalls.map((f) => f.name);
  const nodes = config.nodes.map((n) => n.name);
  const checks = config.checks.map((k) => k.name);
  // Every combination, including ones decide must ignore (wrong role, check not applicable).
  const keys = nodes.flatMap((node) => fws.flatMap((fw) => checks.map((check) => ({ node, fw, check }))));
  const roleOf = (n: string) => config.nodes.find((x) => x.name === n)?.role ?? 'ingress';
  return nowArb.chain((now) => fc.record({
    now: fc.constant(now),
    leader: fc.constantFrom(...nodes, 'ghost'),
    silent: fc.subarray(fws), // firewalls nobody reports on: the no-evidence paths
    present: fc.array(fc.option(obsFieldsArb, { nil: null, freq: 3 }), { minLength: keys.length, maxLength: keys.length }),
    extra: fc.array(fc.record({
      node: fc.constantFrom(...nodes, 'lb9'), fw: fc.constantFrom(...fws, 'fw99'), check: fc.constantFrom(...checks, 'bogus'), f: obsFieldsArb,
    }), { maxLength: 4 }),
    drains: fc.subarray([...fws, 'fw99']),
    maintenance: fc.array(fc.record({ fw: fc.constantFrom(...fws), untilIn: fc.integer({ min: -5_000, max: 5_000 }) }), { maxLength: 3 }),
    previous: previousArb ?? fc.option(previousDesiredArb(fws, now), { nil: null, freq: 4 }),
  })).map((r): Snapshot => {
    const obs = (node: string, fw: string, check: string, f: ObsFields): Observation => ({
      node, role: roleOf(node), firewall: fw, check, state: f.state,
      since: r.now - f.sinceAgoMs, updatedAt: r.now - f.ageMs, streak: 3, lastError: f.state === 'down' ? f.error : null, rttMs: f.state === 'up' ? 1 : null,
    });
    const observations: Observation[] = [];
    keys.forEach((k, i) => {
      const f = r.present[i];
      if (f && !r.silent.includes(k.fw)) observations.push(obs(k.node, k.fw, k.check, f));
    });
    for (const e of r.extra) observations.push(obs(e.node, e.fw, e.check, e.f));
    return {
      config, now: r.now, leader: r.leader, observations,
      drains: r.drains.map((fw) => ({ firewall: fw, by: 'ops', reason: 'test', since: r.now - 1_000 })),
      maintenance: r.maintenance.map((m, i) => ({ name: `w${i}`, firewall: m.fw, until: r.now + m.untilIn })),
      previous: r.previous,
    };
  });
}

/** Arbitrary, not necessarily consistent previous decisions (decide must cope with any). */
function previousDesiredArb(fws: string[], now: number): fc.Arbitrary<Desired> {
  const entry = fc.record({
    state: fc.constantFrom('up' as const, 'draining' as const, 'down' as const),
    weight: fc.integer({ min: 0, max: 200 }),
    egressVia: fc.constantFrom(...fws),
    healthySince: fc.option(fc.integer({ min: now - 30_000, max: now }), { nil: null }),
    failOpen: fc.boolean(),
    sinceAgo: fc.integer({ min: 0, max: 100_000 }),
  }).map((e): DesiredFirewall => ({ state: e.state, weight: e.weight, egressVia: e.egressVia, reason: 'earlier', since: now - e.sinceAgo, healthySince: e.healthySince, failOpen: e.failOpen }));
  const names = fc.subarray([...fws, 'fw-old'], { minLength: 1 });
  return fc.record({
    revision: fc.integer({ min: 1, max: 1_000 }),
    names,
    entries: fc.array(entry, { minLength: fws.length + 1, maxLength: fws.length + 1 }),
  }).map(({ revision, names, entries }) => ({
    revision, decidedBy: 'lb1', decidedAt: now - 5_000,
    firewalls: Object.fromEntries(names.map((n, i) => [n, entries[i]!])),
  }));
}

const caseArb = shapeArb.chain((shape) => snapshotArb(configOf(shape), fc.integer({ min: T0, max: T0 + 100_000 })));

function checkInvariants(s: Snapshot, d: Decision): void {
  const { config } = s;
  const fs = d.desired.firewalls;
  expect(Object.keys(fs)).toEqual(config.firewalls.map((f) => f.name));
  const inService = Object.values(fs).some((f) => f.state !== 'down');
  const anyUp = Object.values(fs).some((f) => f.state === 'up');
  const anyDraining = Object.values(fs).some((f) => f.state === 'draining');
  for (const fw of config.firewalls) {
    const f = fs[fw.name]!;
    // weight is 0 iff not up; up means the configured weight.
    expect(f.weight).toBe(f.state === 'up' ? fw.weight : 0);
    // egressVia names a configured firewall; never a down one while any is in service; a recovering
    // firewall (down, healthySince set) routes its own table again.
    expect(fs[f.egressVia]).toBeDefined();
    if (f.state !== 'down' || f.healthySince !== null) expect(f.egressVia).toBe(fw.name);
    else if (anyUp) expect(fs[f.egressVia]!.state).toBe('up');
    else if (anyDraining) expect(fs[f.egressVia]!.state).toBe('draining');
    else expect(f.egressVia).toBe(fw.name);
    if (inService) expect(fs[f.egressVia]!.state === 'down' && f.egressVia !== fw.name).toBe(false);
    if (f.state === 'down' && f.egressVia !== fw.name) expect(f.healthySince).toBeNull();
    if (f.healthySince !== null) expect(f.state).toBe('down');
    if (f.failOpen) expect(f.state).toBe('up');
    // since moves exactly when the state changes.
    const prev = s.previous?.firewalls[fw.name];
    expect(f.since).toBe(prev && prev.state === f.state ? prev.since : s.now);
    expect(f.reason).not.toBe('');
  }
  if (config.policy.allDown === 'fail-open') expect(anyUp).toBe(true);
  // revision: +1 exactly on a change; changed ⇔ at least one reason.
  const prevRev = s.previous?.revision ?? 0;
  expect(d.desired.revision).toBe(d.changed ? prevRev + 1 : prevRev);
  expect(d.reasons.length > 0).toBe(d.changed);
  if (s.previous === null) expect(d.changed).toBe(true);
}

describe('decide: properties (2–6 firewalls, random observations, drains, maintenance, previous states)', () => {
  it('holds its invariants: weights, egressVia, fail-open, revision, since', () => {
    fc.assert(fc.property(caseArb, (s) => checkInvariants(s, decide(s))), { numRuns: 250 });
  });

  it('is deterministic and does not depend on the order of observations, drains or windows', () => {
    fc.assert(fc.property(caseArb, fc.integer({ min: 0, max: 1_000 }), (s, k) => {
      const d = decide(s);
      expect(decide(structuredClone(s))).toEqual(d);
      const rotate = <T>(xs: readonly T[]) => (xs.length ? [...xs.slice(k % xs.length), ...xs.slice(0, k % xs.length)].reverse() : []);
      expect(decide({ ...s, observations: rotate(s.observations), drains: rotate(s.drains), maintenance: rotate(s.maintenance) })).toEqual(d);
    }), { numRuns: 150 });
  });

  it('is a fixed point: deciding again with its own output as previous changes nothing', () => {
    fc.assert(fc.property(caseArb, (s) => {
      const d1 = decide(s);
      const d2 = decide({ ...s, previous: d1.desired });
      expect(d2).toEqual({ desired: d1.desired, reasons: [], changed: false });
    }), { numRuns: 250 });
  });

  it('keeps revision monotonic over a chain of cycles with changing inputs', () => {
    const chainArb = shapeArb.chain((shape) => {
      const config = configOf(shape);
      return fc.array(fc.integer({ min: 0, max: 20_000 }), { minLength: 2, maxLength: 6 }).chain((steps) => {
        let now = T0;
        const nows = steps.map((dt) => (now += dt));
        return fc.tuple(...nows.map((n) => snapshotArb(config, fc.constant(n), fc.constant(null))));
      });
    });
    fc.assert(fc.property(chainArb, (steps) => {
      let previous: Desired | null = null;
      for (const step of steps) {
        const s: Snapshot = { ...step, previous };
        const d = decide(s);
        checkInvariants(s, d);
        if (previous) expect(d.desired.revision).toBeGreaterThanOrEqual(previous.revision);
        previous = d.desired;
      }
    }), { numRuns: 60 });
  });
});
