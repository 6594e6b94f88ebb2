// decide(): the whole failover policy as one pure function of an immutable snapshot.
/*
 * POLICY — the documented behaviour of sandwich's decisions. decide() reads only the snapshot:
 * no clock, no I/O, no randomness; the same snapshot always gives a deep-equal decision, whatever
 * the order of its observations, drains and maintenance windows.
 *
 * 1. Evidence. The checks that apply to a firewall are `checksFor(config, fw)`. A check with
 *    `from: ingress` is observed by ingress nodes, `from: egress` by egress nodes. Ignored:
 *    observations not refreshed within timing.observationStaleMs (now − updatedAt greater than
 *    it), observations from nodes not in the config or of the wrong role, for unknown firewalls
 *    or checks that do not apply, and `unknown` states. Rise/fall is the probes' job: a state is
 *    taken as it is. If one node reports the same (firewall, check) twice, the freshest counts.
 *
 * 2. Fusion per (firewall, check): one vote per observer; more `up` than `down` → ok, more
 *    `down` → failing. A tie is broken by the leader's own vote (snapshot.leader) if it has one;
 *    otherwise the check gives no evidence. Broken observer (policy.discountBrokenObserver): an
 *    observer that reports every firewall of a check down (the check applies to two or more
 *    firewalls and it reports all of them), while another observer reports that check up for at
 *    least one firewall, is ignored for that check; the reason says "ignoring lb2: sees every
 *    firewall down on ingress-leg".
 *
 * 3. Verdict: failing if any check is failing; healthy if none is failing and at least one is ok;
 *    no evidence at all → the previous verdict (down stays down, a hold-down in progress stays in
 *    progress, a firewall kept in service by fail-open is still failing, anything else is
 *    healthy); no previous entry → healthy, "no observations yet; assumed up".
 *
 * 4. Hold-down: a firewall that was down and is now healthy stays down ("recovering") until it
 *    has been healthy for timing.holdDownMs: it returns when now − healthySince ≥ holdDownMs.
 *    healthySince is kept in its desired entry; failing again resets it to null.
 *
 * 5. Drain (snapshot.drains) or an active maintenance window (until > now) → draining (weight 0,
 *    egress via itself), unless the firewall is failing or recovering → down.
 *
 * 6. Weight: up → configured weight; draining and down → 0.
 *
 * 7. egressVia: itself unless down and not recovering. A down firewall's egress table points at the
 *    next up firewall in config order, cyclically after it; if none is up, the next draining one;
 *    else itself. A recovering firewall (healthy, in its hold-down) routes its own table again from
 *    the start of the hold-down, so the egress nodes point it back at it before the ingress nodes
 *    send it new flows (which come only when the hold-down ends).
 *
 * 8. Never remove the last (policy.allDown fail-open): if no firewall would be up, in this order
 *    of preference: (a) recovering firewalls that are not drained return to service before their
 *    hold-down ends (they are healthy, and count as ordinary up firewalls from then on); else
 *    (b) drained firewalls that are healthy or recovering return to service; else (c) failing firewalls that were up in the previous
 *    decision stay up; else (d) all failing firewalls that are not drained; else (e) all.
 *    Failing firewalls kept up this way are marked failOpen: "fw1 kept in service although
 *    failing: every firewall is failing and policy allDown is fail-open". fail-closed: all may
 *    go down.
 *
 * 9. Changes. A firewall's entry changed when its state, weight, egressVia or failOpen changed
 *    (or it is new); a firewall removed from the config is a change too. Any change → revision =
 *    previous + 1 (1 without previous), decidedBy = leader, decidedAt = now, `changed` true, and
 *    one sentence in `reasons` per changed entry (config order). No change → the previous
 *    revision, decidedBy and decidedAt, changed false, reasons []. Per entry: since = now when
 *    its state changed, else the previous since; its reason is rewritten when its state,
 *    failOpen or healthySince changed, or when it said "assumed up" and evidence has arrived;
 *    else the previous reason is kept. So an unchanged
 *    decision can still differ from the previous one in healthySince and the reason of a
 *    recovering firewall (hold-down bookkeeping): store it when it differs (desiredEqual).
 *
 * 10. Services with checks of their own (services[].checks). A check some service names judges only
 *    the services that name it; the firewall entries above (and so the egress tables and every other
 *    service) use the remaining checks. For each such service, rules 3–9 run again on the firewall
 *    checks plus the service's own, against its own previous entries (desired.services[name]): own
 *    hold-down, own fail-open (never the last firewall of a service), drains as above; egressVia
 *    stays the firewall itself; sentences name "fw1 (service web)" (still starting with the
 *    firewall). A firewall that is not up in its own entry has that state in every service ("fw1
 *    (service web) down: the firewall is down"), and a service's fail-open keeps only firewalls that
 *    are up: new flows never go to a firewall whose egress table may point elsewhere. Its changes
 *    count like a firewall's. A service that lost its own checks since the previous decision is a
 *    change too.
 *
 * Times in sentences are UTC HH:MM:SS.mmm.
 */
import { checksFor, type CheckConfig, type Config, type FirewallConfig } from './config';
import type { Decision, Desired, DesiredFirewall, Drain, FirewallState, Maintenance, Observation, Snapshot } from './types';

const ASSUMED = 'no observations yet; assumed up';

interface Vote {
  readonly node: string;
  readonly state: 'up' | 'down';
  readonly since: number;
  readonly updatedAt: number;
  readonly lastError: string | null;
}

interface CheckVerdict {
  readonly check: string;
  readonly result: 'ok' | 'failing' | 'none';
  /** Counted votes, in config node order. */
  readonly up: readonly Vote[];
  readonly down: readonly Vote[];
  /** The leader, when its vote broke a tie. */
  readonly tieBrokenBy: string | null;
}

type Evidence = 'healthy' | 'failing' | 'none';

/** What the evidence and the previous entry say about a firewall, before drains and fail-open. */
type Health =
  | { kind: 'healthy'; via: 'evidence' | 'assumed' | 'kept' | 'hold-down-passed'; healthySince: number | null }
  | { kind: 'recovering'; healthySince: number }
  | { kind: 'failing'; via: 'evidence' | 'kept' };

interface Assessment {
  readonly fw: FirewallConfig;
  /** How sentences name it: "fw1", or "fw1 (service web)" in a service's scope. */
  readonly subject: string;
  readonly checks: readonly CheckVerdict[];
  /** "ignoring lb2: sees every firewall down on ingress-leg", for this firewall's checks. */
  readonly ignored: readonly string[];
  readonly evidence: Evidence;
  readonly health: Health;
  readonly drainedBy: readonly string[];
}

interface Verdict {
  state: FirewallState;
  failOpen: boolean;
  /** Set when fail-open changed the state; replaces the usual sentence. */
  failOpenSentence: string | null;
}

export function decide(snapshot: Snapshot): Decision {
  const { config, now, previous } = snapshot;
  const votes = collectVotes(snapshot);
  const ignored = brokenObservers(config, votes);
  const own = serviceCheckNames(config);

  // The firewall scope: checks no service names; it sets the egress tables and every service without own checks.
  const fwScope = decideScope(snapshot, votes, ignored, (k) => !own.has(k.name), previous?.firewalls, null);
  let changed = previous === null || fwScope.changed;
  const reasons = [...fwScope.reasons];
  const firewalls: Record<string, DesiredFirewall> = {};
  for (const [name, e] of Object.entries(fwScope.entries)) firewalls[name] = e;
  for (const name of Object.keys(previous?.firewalls ?? {}).sort()) {
    if (!(name in firewalls)) {
      changed = true;
      reasons.push(`${name} removed: no longer in the configuration`);
    }
  }

  // A service with checks of its own: the same policy over the firewall checks plus its own; sentences name "fw1 (service web)".
  const services: Record<string, Record<string, DesiredFirewall>> = {};
  for (const svc of config.services) {
    if (!svc.checks?.length) continue;
    const mine = new Set(svc.checks);
    const scope = decideScope(snapshot, votes, ignored, (k) => !own.has(k.name) || mine.has(k.name), previous?.services?.[svc.name], svc.name, firewalls);
    services[svc.name] = scope.entries;
    if (scope.changed) changed = true;
    reasons.push(...scope.reasons);
  }
  for (const name of Object.keys(previous?.services ?? {}).sort()) {
    if (!(name in services)) {
      changed = true;
      reasons.push(`service ${name}: no longer judged by checks of its own; it follows the firewalls' state`);
    }
  }

  const withServices = Object.keys(services).length > 0 ? { services } : {};
  const desired: Desired = changed || previous === null
    ? { revision: (previous?.revision ?? 0) + 1, decidedBy: snapshot.leader, decidedAt: now, firewalls, ...withServices }
    : { revision: previous.revision, decidedBy: previous.decidedBy, decidedAt: previous.decidedAt, firewalls, ...withServices };
  return { desired, reasons: changed ? reasons : [], changed };
}

/** Names of the checks some service names in services[].checks: they judge only those services. */
export function serviceCheckNames(config: Config): Set<string> {
  return new Set(config.services.flatMap((s) => s.checks ?? []));
}

interface ScopeResult {
  readonly entries: Record<string, DesiredFirewall>;
  readonly reasons: string[];
  /** An entry is new or changed (state, weight, egressVia or failOpen). */
  readonly changed: boolean;
}

/**
 * Rules 3–9 for every firewall, judged on the checks `inScope` admits. In a service's scope (`service`),
 * egressVia stays the firewall, and a firewall the firewall scope (`outer`) has not up takes that state:
 * a service never sends new flows to a firewall whose egress table may point elsewhere; fail-open picks
 * only among firewalls that are up.
 */
function decideScope(snapshot: Snapshot, votes: Votes, ignored: Map<string, Set<string>>, inScope: (k: CheckConfig) => boolean,
  previous: Readonly<Record<string, DesiredFirewall>> | undefined, service: string | null, outer?: Readonly<Record<string, DesiredFirewall>>): ScopeResult {
  const { config, now } = snapshot;
  const assessments = config.firewalls.map((fw) => assess(snapshot, fw, votes, ignored, inScope, previous, service));
  const verdicts = new Map<string, Verdict>();
  const outerState = (a: Assessment) => outer?.[a.fw.name]?.state ?? 'up';
  for (const a of assessments) {
    const o = outerState(a);
    verdicts.set(a.fw.name, o === 'up'
      ? { state: baseState(a), failOpen: false, failOpenSentence: null }
      : { state: o, failOpen: false, failOpenSentence: `${a.subject} ${o}: the firewall is ${o}` });
  }
  if (config.policy.allDown === 'fail-open') applyFailOpen(assessments.filter((a) => outerState(a) === 'up'), verdicts, previous);

  const order = config.firewalls.map((f) => f.name);
  const entries: Record<string, DesiredFirewall> = {};
  const reasons: string[] = [];
  let changed = false;
  for (const a of assessments) {
    const name = a.fw.name;
    const v = verdicts.get(name)!;
    const prev = previous?.[name];
    const weight = v.state === 'up' ? a.fw.weight : 0;
    const egressVia = v.state === 'down' && service === null && a.health.kind !== 'recovering' ? egressTarget(name, order, verdicts) : name;
    const healthySince = v.state === 'down' && a.health.kind === 'recovering' ? a.health.healthySince : null;
    const stateChanged = prev === undefined || prev.state !== v.state;
    const failOpenChanged = (prev?.failOpen ?? false) !== v.failOpen;
    // An "assumed up" sentence is replaced once evidence arrives, so status never shows a stale assumption.
    const assumptionConfirmed = prev !== undefined && prev.reason.endsWith(ASSUMED) && a.evidence !== 'none';
    const reason = prev === undefined || stateChanged || failOpenChanged || prev.healthySince !== healthySince || assumptionConfirmed
      ? sentence(a, v, snapshot)
      : prev.reason;
    entries[name] = { state: v.state, weight, egressVia, reason, since: stateChanged ? now : prev.since, healthySince, failOpen: v.failOpen };
    if (prev === undefined || stateChanged || failOpenChanged) {
      changed = true;
      reasons.push(reason);
    } else if (prev.egressVia !== egressVia) {
      changed = true;
      reasons.push(`${a.subject} egress now via ${egressVia} (was ${prev.egressVia})`);
    } else if (prev.weight !== weight) {
      changed = true;
      reasons.push(`${a.subject} weight now ${weight} (was ${prev.weight})`);
    }
  }
  return { entries, reasons, changed };
}

/** One line per firewall, then per service judged by checks of its own, for `sandwich status`. */
export function describeDesired(desired: Desired): string[] {
  const svcLines = Object.entries(desired.services ?? {}).flatMap(([svc, fws]) => Object.entries(fws).map(([name, f]) =>
    `service ${svc}: ${name} ${f.state} weight ${f.weight} since ${formatTime(f.since)} — ${f.reason}`));
  return [...describeFirewalls(desired.firewalls), ...svcLines];
}

function describeFirewalls(firewalls: Desired['firewalls']): string[] {
  return Object.entries(firewalls).map(([name, f]) => {
    const extra = [
      f.state === 'down' && f.egressVia !== name ? `egress via ${f.egressVia}` : null,
      f.healthySince !== null ? `healthy since ${formatTime(f.healthySince)}` : null,
      f.failOpen ? 'failing, kept in service (fail-open)' : null,
    ].filter((s): s is string => s !== null);
    return `${name} ${f.state} weight ${f.weight} since ${formatTime(f.since)}${extra.length ? `, ${extra.join(', ')}` : ''} — ${f.reason}`;
  });
}

/** True when two desired states carry the same content (use it to decide whether to store). */
export function desiredEqual(a: Desired | null, b: Desired | null): boolean {
  if (a === null || b === null) return a === b;
  if (a.revision !== b.revision || a.decidedBy !== b.decidedBy || a.decidedAt !== b.decidedAt) return false;
  if (!entriesEqual(a.firewalls, b.firewalls)) return false;
  const sa = a.services ?? {};
  const sb = b.services ?? {};
  const names = Object.keys(sa);
  return names.length === Object.keys(sb).length && names.every((n) => sb[n] !== undefined && entriesEqual(sa[n]!, sb[n]!));
}

function entriesEqual(a: Readonly<Record<string, DesiredFirewall>>, b: Readonly<Record<string, DesiredFirewall>>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => {
    const x = a[k];
    const y = b[k];
    return x !== undefined && y !== undefined && x.state === y.state && x.weight === y.weight && x.egressVia === y.egressVia
      && x.reason === y.reason && x.since === y.since && x.healthySince === y.healthySince && (x.failOpen ?? false) === (y.failOpen ?? false);
  });
}

/** UTC HH:MM:SS.mmm; never throws. */
export function formatTime(ms: number): string {
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return `(invalid time ${ms})`;
  return new Date(ms).toISOString().slice(11, 23);
}

// --- evidence -------------------------------------------------------------------------------

/** check → firewall → node → vote; only applicable, fresh, known up/down observations. */
type Votes = Map<string, Map<string, Map<string, Vote>>>;

function collectVotes(s: Snapshot): Votes {
  const { config } = s;
  const roleOf = new Map(config.nodes.map((n) => [n.name, n.role]));
  const applicable = new Map(config.firewalls.map((f) => [f.name, checksFor(config, f)]));
  const votes: Votes = new Map();
  for (const o of s.observations) {
    if (o.state !== 'up' && o.state !== 'down') continue;
    if (!Number.isFinite(o.updatedAt) || s.now - o.updatedAt > config.timing.observationStaleMs) continue;
    const role = roleOf.get(o.node);
    const check = applicable.get(o.firewall)?.find((k) => k.name === o.check);
    if (role === undefined || check === undefined || check.from !== role) continue;
    let byFw = votes.get(o.check);
    if (!byFw) votes.set(o.check, (byFw = new Map()));
    let byNode = byFw.get(o.firewall);
    if (!byNode) byFw.set(o.firewall, (byNode = new Map()));
    const vote = toVote(o);
    const held = byNode.get(o.node);
    if (!held || preferVote(vote, held)) byNode.set(o.node, vote);
  }
  return votes;
}

function toVote(o: Observation): Vote {
  return { node: o.node, state: o.state as 'up' | 'down', since: o.since, updatedAt: o.updatedAt, lastError: o.lastError };
}

/** A total order, so duplicate reports give the same result in any order: freshest, then down, then earliest since, then error text. */
function preferVote(a: Vote, b: Vote): boolean {
  if (a.updatedAt !== b.updatedAt) return a.updatedAt > b.updatedAt;
  if (a.state !== b.state) return a.state === 'down';
  if (a.since !== b.since) return a.since < b.since;
  return (a.lastError ?? '') < (b.lastError ?? '');
}

/** check → observers to ignore on it (policy.discountBrokenObserver). */
function brokenObservers(config: Config, votes: Votes): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  if (!config.policy.discountBrokenObserver) return out;
  for (const check of config.checks) {
    const fws = config.firewalls.filter((f) => checksFor(config, f).some((k) => k.name === check.name)).map((f) => f.name);
    if (fws.length < 2) continue;
    const byFw = votes.get(check.name);
    if (!byFw) continue;
    const seesUp = new Set<string>();
    const seesDown = new Map<string, number>();
    for (const fw of fws) {
      for (const v of byFw.get(fw)?.values() ?? []) {
        if (v.state === 'up') seesUp.add(v.node);
        else seesDown.set(v.node, (seesDown.get(v.node) ?? 0) + 1);
      }
    }
    for (const [node, downCount] of seesDown) {
      const allDown = downCount === fws.length;
      const othersSeeUp = [...seesUp].some((n) => n !== node);
      if (allDown && othersSeeUp) {
        let set = out.get(check.name);
        if (!set) out.set(check.name, (set = new Set()));
        set.add(node);
      }
    }
  }
  return out;
}

function assess(s: Snapshot, fw: FirewallConfig, votes: Votes, ignoredByCheck: Map<string, Set<string>>, inScope: (k: CheckConfig) => boolean,
  previous: Readonly<Record<string, DesiredFirewall>> | undefined, service: string | null): Assessment {
  const { config, now } = s;
  const nodeIndex = new Map(config.nodes.map((n, i) => [n.name, i]));
  const byNodeOrder = (a: Vote, b: Vote) => (nodeIndex.get(a.node) ?? 0) - (nodeIndex.get(b.node) ?? 0);
  const applicable = checksFor(config, fw).filter(inScope);
  const ignored: string[] = [];
  const checks = applicable.map((check): CheckVerdict => {
    const skip = ignoredByCheck.get(check.name) ?? new Set<string>();
    const all = [...(votes.get(check.name)?.get(fw.name)?.values() ?? [])].sort(byNodeOrder);
    for (const v of all) if (skip.has(v.node)) ignored.push(`ignoring ${v.node}: sees every firewall down on ${check.name}`);
    const counted = all.filter((v) => !skip.has(v.node));
    return fuse(check, counted, s.leader);
  });
  const evidence: Evidence = checks.some((c) => c.result === 'failing') ? 'failing'
    : checks.some((c) => c.result === 'ok') ? 'healthy' : 'none';
  const prev = previous?.[fw.name];
  const drainedBy = drainSentences(fw.name, s.drains, s.maintenance, now);
  return { fw, subject: service ? `${fw.name} (service ${service})` : fw.name, checks, ignored, evidence, health: health(evidence, prev, now, config.timing.holdDownMs), drainedBy };
}

function fuse(check: CheckConfig, counted: readonly Vote[], leader: string): CheckVerdict {
  const up = counted.filter((v) => v.state === 'up');
  const down = counted.filter((v) => v.state === 'down');
  let result: CheckVerdict['result'] = up.length > down.length ? 'ok' : down.length > up.length ? 'failing' : 'none';
  let tieBrokenBy: string | null = null;
  if (result === 'none' && up.length > 0) {
    const mine = counted.find((v) => v.node === leader);
    if (mine) {
      result = mine.state === 'up' ? 'ok' : 'failing';
      tieBrokenBy = leader;
    }
  }
  return { check: check.name, result, up, down, tieBrokenBy };
}

function health(evidence: Evidence, prev: DesiredFirewall | undefined, now: number, holdDownMs: number): Health {
  if (evidence === 'failing') return { kind: 'failing', via: 'evidence' };
  if (evidence === 'healthy') {
    if (prev?.state !== 'down') return { kind: 'healthy', via: 'evidence', healthySince: null };
    const since = prev.healthySince ?? now;
    return now - since >= holdDownMs ? { kind: 'healthy', via: 'hold-down-passed', healthySince: since } : { kind: 'recovering', healthySince: since };
  }
  if (prev === undefined) return { kind: 'healthy', via: 'assumed', healthySince: null };
  if (prev.state === 'down') return prev.healthySince !== null ? { kind: 'recovering', healthySince: prev.healthySince } : { kind: 'failing', via: 'kept' };
  if (prev.failOpen) return { kind: 'failing', via: 'kept' };
  return { kind: 'healthy', via: 'kept', healthySince: null };
}

function drainSentences(fw: string, drains: readonly Drain[], maintenance: readonly Maintenance[], now: number): string[] {
  const d = drains.filter((x) => x.firewall === fw)
    .map((x) => `drained by ${x.by}${x.reason ? ` (${x.reason})` : ''}`);
  const m = maintenance.filter((x) => x.firewall === fw && x.until > now)
    .map((x) => `maintenance window "${x.name}" until ${formatTime(x.until)}`);
  return [...new Set([...d.sort(), ...m.sort()])];
}

// --- states ---------------------------------------------------------------------------------

function baseState(a: Assessment): FirewallState {
  if (a.health.kind !== 'healthy') return 'down';
  return a.drainedBy.length > 0 ? 'draining' : 'up';
}

function applyFailOpen(assessments: readonly Assessment[], verdicts: Map<string, Verdict>, previous: Readonly<Record<string, DesiredFirewall>> | undefined): void {
  if ([...verdicts.values()].some((v) => v.state === 'up')) return;
  const tail = 'and policy allDown is fail-open';
  const recovering = assessments.filter((a) => a.health.kind === 'recovering' && a.drainedBy.length === 0);
  if (recovering.length > 0) {
    for (const a of recovering) {
      verdicts.set(a.fw.name, { state: 'up', failOpen: false, failOpenSentence: `${a.subject} returned to service before its hold-down ended: no other firewall is healthy and in service ${tail}` });
    }
    return;
  }
  // Only drained firewalls are healthy-but-not-up here; a drained one in hold-down counts too.
  const drainedHealthy = assessments.filter((a) => a.health.kind !== 'failing');
  if (drainedHealthy.length > 0) {
    for (const a of drainedHealthy) {
      verdicts.set(a.fw.name, { state: 'up', failOpen: false, failOpenSentence: `${a.subject} returned to service although drained: no other firewall is healthy and in service ${tail}` });
    }
    return;
  }
  // Every firewall is failing from here on.
  const wasUp = assessments.filter((a) => previous?.[a.fw.name]?.state === 'up');
  const notDrained = assessments.filter((a) => a.drainedBy.length === 0);
  const keep = wasUp.length > 0 ? wasUp : notDrained.length > 0 ? notDrained : assessments;
  for (const a of keep) {
    const verb = previous?.[a.fw.name]?.state === 'up' ? 'kept in service' : 'returned to service';
    verdicts.set(a.fw.name, { state: 'up', failOpen: true, failOpenSentence: `${a.subject} ${verb} although failing: every firewall is failing ${tail}` });
  }
}

function egressTarget(fw: string, order: readonly string[], verdicts: Map<string, Verdict>): string {
  const i = order.indexOf(fw);
  const after = [...order.slice(i + 1), ...order.slice(0, i)];
  return after.find((n) => verdicts.get(n)?.state === 'up')
    ?? after.find((n) => verdicts.get(n)?.state === 'draining')
    ?? fw;
}

// --- sentences ------------------------------------------------------------------------------

function sentence(a: Assessment, v: Verdict, s: Snapshot): string {
  const name = a.subject;
  if (v.failOpenSentence !== null) return v.failOpenSentence;
  const h = a.health;
  if (v.state === 'down') {
    if (h.kind === 'recovering') {
      return `${name} recovering: healthy since ${formatTime(h.healthySince)}, back in service at ${formatTime(h.healthySince + s.config.timing.holdDownMs)}`;
    }
    if (h.kind === 'failing' && h.via === 'kept') return `${name} down: no current observations; keeping previous state`;
    return `${name} down: ${evidenceParts(a).join('; ')}`;
  }
  if (v.state === 'draining') return `${name} draining: ${a.drainedBy.join('; ')}`;
  if (h.kind === 'healthy' && h.via === 'assumed') return `${name} up: ${ASSUMED}`;
  if (h.kind === 'healthy' && h.via === 'kept') return `${name} up: no current observations; keeping previous state`;
  const parts = evidenceParts(a);
  if (h.kind === 'healthy' && h.via === 'hold-down-passed' && h.healthySince !== null) {
    parts.unshift(`healthy since ${formatTime(h.healthySince)}, hold-down of ${s.config.timing.holdDownMs} ms passed`);
  }
  return `${name} up: ${parts.join('; ')}`;
}

function evidenceParts(a: Assessment): string[] {
  return [...a.checks.map(describeCheck), ...a.ignored];
}

function describeCheck(c: CheckVerdict): string {
  const failing = (vs: readonly Vote[]) => vs.map((v) => (v.lastError ? `${v.node} (${v.lastError})` : v.node)).join(', ');
  const ok = (vs: readonly Vote[]) => vs.map((v) => v.node).join(', ');
  const tie = c.tieBrokenBy ? `, tie broken by leader ${c.tieBrokenBy}` : '';
  switch (c.result) {
    case 'failing': {
      const since = Math.min(...c.down.map((v) => v.since));
      return `${c.check} failing since ${formatTime(since)} from ${failing(c.down)}${c.up.length ? `, ok from ${ok(c.up)}` : ''}${tie}`;
    }
    case 'ok':
      return c.down.length ? `${c.check} ok from ${ok(c.up)}, failing from ${failing(c.down)}${tie}` : `${c.check} ok`;
    case 'none':
      return c.up.length ? `${c.check} undecided: ok from ${ok(c.up)}, failing from ${failing(c.down)}, no view from the leader` : `${c.check} no observations`;
  }
}
