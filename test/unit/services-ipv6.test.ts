// Several services and IPv6 (issue #8): config rules, decide() per service, the actuator's kernel wants,
// and the parsers on real IPv6 output (IPVS captured in the lab VM, iproute2 on the host).
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { probeJobs } from '../../checks/jobs';
import { checksFor, loadConfig, parseConfig, storePrefixIssues, STORE_KEY_KINDS, type Config } from '../../controller/config';
import { decide, describeDesired, desiredEqual } from '../../controller/decide';
import { formatStatus } from '../../controller/status';
import type { Desired, Observation, Snapshot } from '../../controller/types';
import { Actuator, isReadCommand, nodeWants } from '../../failover/actuator';
import { ConntrackDriver } from '../../failover/conntrack';
import { parseIpvsProc, parseIpvsSave, planIpvs, readIpvs, type IpvsWant } from '../../failover/ipvs';
import { parseRoutes, parseRules, planRoutes, RoutesDriver } from '../../failover/routes';
import { FakeRunner } from '../../failover/runner';
import { SysctlDriver } from '../../failover/sysctl';
import { ManualTimers } from '../../failover/timers';
import { DriverInputError } from '../../failover/types';
import { VipGroup } from '../../failover/vip';
import { FakeIpvs } from './fixtures/kernel/fake-ipvs';
import { FakeKernel } from './fixtures/kernel/fake-kernel';
import { SnapshotBuilder, T0 } from './fixtures/snapshot';

const ROOT = join(__dirname, '../..');
const EXAMPLE = join(ROOT, 'deploy/examples/dual-stack-2lb-2fw-1er.yaml');
const K = join(__dirname, 'fixtures/kernel');
const fx = (f: string) => readFileSync(join(K, f), 'utf8');
const fx6 = (f: string) => fx(`ipvs6/${f}`);

function dual(edit?: (raw: Record<string, any>) => void): Config { // eslint-disable-line @typescript-eslint/no-explicit-any
  const raw = structuredClone(loadConfig(EXAMPLE)) as unknown as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  edit?.(raw);
  return parseConfig(stringify(raw), 'dual+edits');
}

function issues(edit: (raw: Record<string, any>) => void): string[] { // eslint-disable-line @typescript-eslint/no-explicit-any
  try {
    dual(edit);
    return [];
  } catch (e) {
    return (e as { issues: { path: string; message: string }[] }).issues.map((i) => `${i.path}: ${i.message}`);
  }
}

// Changing commands as run; an `ip [-6] -batch -` is listed line by line as `ip [-6] <line>`.
const writes = (r: FakeRunner) =>
  r.calls.filter((c) => !isReadCommand(c.file, c.args)).flatMap((c) => {
    if (c.file === 'ip' && c.args.includes('-batch')) {
      const pre = c.args[0] === '-6' ? 'ip -6' : 'ip';
      return (c.input ?? '').trim().split('\n').map((l) => `${pre} ${l}`);
    }
    return [[c.file, ...c.args].join(' ') + (c.input ? `\n${c.input}` : '')];
  });

describe('config: services, IPv6 and store prefixes', () => {
  it('the dual-stack example passes, with IPv6 addresses in the form iproute2 prints', () => {
    const c = dual((r) => {
      r.firewalls[0].ingressAddress6 = '2001:DB8:1:0::11';
      r.vipGroups[0].addresses[1].address = '2001:DB8:0:1:0::254/64';
    });
    expect(c.firewalls[0]!.ingressAddress6).toBe('2001:db8:1::11');
    expect(c.vipGroups[0]!.addresses[1]!.address).toBe('2001:db8:0:1::254/64');
    expect(c.services.map((s) => [s.name, s.family, s.checks])).toEqual([['web', 'dual', ['path-https']], ['dns', 'ipv4', ['path-dns']]]);
  });

  it('names what is missing or contradictory, and where', () => {
    expect(issues((r) => delete r.firewalls[1].ingressAddress6)).toEqual([
      'firewalls.1.ingressAddress6: missing: firewall fw1 has ingressAddress6, so every firewall needs one',
      'firewalls.1.ingressAddress6: service "web" is dual: firewall "fw2" needs ingressAddress6 (its IPv6 real-server address)',
      'checks.3.family: IPv6 ingress leg check: firewall "fw2" has no ingressAddress6',
      'nodes.0.probe.sources6.fw2: IPv6 probes through firewall "fw2" need its ingressAddress6 (their next hop)',
      'nodes.1.probe.sources6.fw2: IPv6 probes through firewall "fw2" need its ingressAddress6 (their next hop)',
    ]);
    expect(issues((r) => delete r.nodes[2].probe.sources6.fw1)).toEqual(['nodes.2.probe.sources6: missing IPv6 source address for firewall "fw1" (node "er1" runs IPv6 egress checks)']);
    expect(issues((r) => (r.checks[1].url = 'http://198.51.100.10/health'))).toEqual(['checks.1.url: 198.51.100.10 is an IPv4 address but the check\'s family is ipv6']);
    expect(issues((r) => (r.checks[0].url = 'http://[2001:db8:100::10]/'))).toEqual(['checks.0.url: 2001:db8:100::10 is an IPv6 address: set family: ipv6']);
    expect(issues((r) => (r.services[0].checks = ['path-httpz']))).toEqual(['services.0.checks.0: unknown check "path-httpz"']);
    expect(issues((r) => (r.egress.routes = ['2001:db8::/32']))).toEqual(['egress.routes.0: "2001:db8::/32" is not an IPv4 prefix (IPv6 destinations go in egress.routes6)']);
    expect(issues((r) => (r.egress.routes6 = ['203.0.113.0/24']))).toEqual(['egress.routes6.0: "203.0.113.0/24" is not an IPv6 prefix']);
    expect(issues((r) => (r.nodes[0].probe.sources6.fw2 = '2001:db8:1::21'))).toEqual(['nodes.0.probe.sources6: duplicate probe source address "2001:db8:1::21" (also at index 0)']);
  });

  it('keeps at least one check that judges the whole firewall', () => {
    const all = ['path-http', 'path-http6', 'ingress-leg', 'ingress-leg6', 'egress-leg', 'egress-leg6', 'path-https', 'path-dns'];
    expect(issues((r) => (r.services[0].checks = all))).toEqual([
      'firewalls.0.checks: every check of firewall "fw1" is named in services[].checks: keep at least one check that judges the whole firewall (its egress table follows only those)',
      'firewalls.1.checks: every check of firewall "fw2" is named in services[].checks: keep at least one check that judges the whole firewall (its egress table follows only those)',
    ]);
  });

  it('store prefixes: string prefixes are fine, whole keyspace and key-kind segments are refused', () => {
    expect(storePrefixIssues('/sandwich/a')).toEqual([]);
    expect(storePrefixIssues('/sandwich/ab/')).toEqual([]);
    expect(storePrefixIssues('/')).toEqual(['"/" is the whole keyspace: use a prefix such as /sandwich/<cluster>/']);
    expect(storePrefixIssues('/x//y')).toEqual(['"/x//y" has an empty, "." or ".." segment']);
    expect(storePrefixIssues('/x/drain/y/')[0]).toMatch(/^"\/x\/drain\/y\/" has a segment "drain", a key kind the store writes under every prefix/);
    expect(issues((r) => (r.store.prefix = '/tenants/observations/'))).toHaveLength(1);
    // The default prefix /sandwich/<cluster>/ is checked too: a cluster named like a key kind needs store.prefix.
    expect(issues((r) => (r.cluster = 'status'))).toEqual([expect.stringMatching(/^store\.prefix: "\/sandwich\/status\/" has a segment "status".*rename the cluster or set store\.prefix$/)]);
    expect(issues((r) => {
      r.cluster = 'status';
      r.store.prefix = '/sandwich/status-dc1';
    })).toEqual([]);
  });

  it('STORE_KEY_KINDS lists every first key segment etcd-store.ts writes', () => {
    const src = readFileSync(join(ROOT, 'controller/etcd-store.ts'), 'utf8');
    const used = new Set([...src.matchAll(/this\.key\('([a-z]+)'/g)].map((m) => m[1]!));
    expect(used.size).toBeGreaterThanOrEqual(5);
    expect([...used].filter((k) => !(STORE_KEY_KINDS as readonly string[]).includes(k))).toEqual([]);
  });
});

describe('probe jobs for IPv6 checks', () => {
  it('use the node\'s sources6 and the firewall\'s IPv6 leg address; leg URLs get brackets', () => {
    const c = dual((r) => r.checks.push({ name: 'leg-http6', kind: 'http', scope: 'leg', family: 'ipv6', url: 'http://[::1]:8080/ready' }));
    const jobs = probeJobs(c, 'lb2').filter((j) => j.firewall === 'fw2');
    const by = (k: string) => jobs.find((j) => j.check.name === k)!;
    expect(by('ingress-leg6')).toMatchObject({ family: 6, source: '2001:db8:1::32', target: '2001:db8:1::12' });
    expect(by('path-http6')).toMatchObject({ family: 6, source: '2001:db8:1::32', target: 'http://[2001:db8:100::10]/health' });
    expect(by('leg-http6')).toMatchObject({ source: '2001:db8:1::32', target: 'http://[2001:db8:1::12]:8080/ready' });
    expect(by('ingress-leg')).toMatchObject({ family: 4, source: '10.1.0.32', target: '10.1.0.12' });
    expect(probeJobs(c, 'er1').find((j) => j.key === 'fw1/egress-leg6')).toMatchObject({ source: '2001:db8:2::21', target: '2001:db8:2::11' });
  });
});

describe('decide: a service judged by checks of its own', () => {
  const c = dual();
  const healthy = () => new SnapshotBuilder(c).leader('lb1').seeAll('up');

  it('without service checks failing there is one entry per service and firewall, all up; no service entry changes the firewalls', () => {
    const d = decide(healthy().build());
    expect(Object.keys(d.desired.services!)).toEqual(['web', 'dns']);
    expect(d.desired.services!.web!.fw1).toMatchObject({ state: 'up', weight: 100 });
    expect(d.desired.firewalls.fw1).toMatchObject({ state: 'up', weight: 100, egressVia: 'fw1' });
  });

  it('path-https failing on fw1 takes fw1 out of web only: the firewall, its egress table and dns stay', () => {
    const first = decide(healthy().build());
    const b = healthy().see('lb1', 'fw1', 'path-https', 'down', { error: 'connection refused' }).see('lb2', 'fw1', 'path-https', 'down', { error: 'connection refused' });
    const d = decide(b.at(T0 + 1000).previous(first.desired).build());
    expect(d.changed).toBe(true);
    expect(d.desired.revision).toBe(first.desired.revision + 1);
    expect(d.desired.firewalls.fw1).toMatchObject({ state: 'up', weight: 100, egressVia: 'fw1' });
    expect(d.desired.services!.web!.fw1).toMatchObject({ state: 'down', weight: 0 });
    expect(d.desired.services!.dns!.fw1).toMatchObject({ state: 'up', weight: 100 });
    expect(d.reasons).toEqual(['fw1 (service web) down: path-http ok; path-http6 ok; ingress-leg ok; ingress-leg6 ok; egress-leg ok; egress-leg6 ok; path-https failing since 11:59:57.000 from lb1 (connection refused), lb2 (connection refused)']);
    expect(describeDesired(d.desired)).toContain(`service web: fw1 down weight 0 since ${'12:00:01.000'} — ${d.reasons[0]}`);
    const status = formatStatus({ cluster: 'dual', source: 'store', now: '', leaders: {}, desired: d.desired, drains: [], observations: [], nodes: [] });
    expect(status).toContain(`      service web: down weight 0 — ${d.reasons[0]}`);
    expect(status).toContain('      service dns: up weight 100\n');
    // Its own hold-down: healthy again → recovering in web, back after holdDownMs.
    const rec = decide(healthy().at(T0 + 2000).previous(d.desired).build());
    expect(rec.desired.services!.web!.fw1).toMatchObject({ state: 'down', healthySince: T0 + 2000 });
    const back = decide(healthy().at(T0 + 2000 + c.timing.holdDownMs).previous(rec.desired).build());
    expect(back.desired.services!.web!.fw1).toMatchObject({ state: 'up', weight: 100 });
  });

  it('a firewall-wide check failing takes the firewall out of every service and re-points its egress table', () => {
    const d = decide(healthy().see('lb1', 'fw1', 'ingress-leg', 'down').see('lb2', 'fw1', 'ingress-leg', 'down').build());
    expect(d.desired.firewalls.fw1).toMatchObject({ state: 'down', egressVia: 'fw2' });
    expect(d.desired.services!.web!.fw1).toMatchObject({ state: 'down', egressVia: 'fw1' }); // egress is the firewall scope's business
    expect(d.desired.services!.dns!.fw1!.state).toBe('down');
  });

  it('fail-open per service: path-https failing everywhere keeps web on its firewalls, the firewalls stay up', () => {
    const first = decide(healthy().build());
    let b = healthy();
    for (const n of ['lb1', 'lb2']) for (const f of ['fw1', 'fw2']) b = b.see(n, f, 'path-https', 'down');
    const d = decide(b.at(T0 + 1000).previous(first.desired).build());
    expect(d.desired.services!.web!.fw1).toMatchObject({ state: 'up', failOpen: true });
    expect(d.desired.services!.web!.fw2).toMatchObject({ state: 'up', failOpen: true });
    expect(d.desired.firewalls.fw1!.failOpen).toBe(false);
    expect(d.reasons).toEqual([
      'fw1 (service web) kept in service although failing: every firewall is failing and policy allDown is fail-open',
      'fw2 (service web) kept in service although failing: every firewall is failing and policy allDown is fail-open',
    ]);
  });

  it('a firewall that is down or drained is so in every service, whatever the service checks say', () => {
    const d = decide(healthy().drain('fw1', 'ops', 'patching').build());
    expect(d.desired.services!.dns!.fw1).toMatchObject({ state: 'draining', weight: 0, reason: 'fw1 (service dns) draining: the firewall is draining' });
    const d2 = decide(healthy().see('lb1', 'fw2', 'ingress-leg', 'down').see('lb2', 'fw2', 'ingress-leg', 'down').build());
    expect(d2.desired.firewalls.fw2!.state).toBe('down');
    expect(d2.desired.services!.web!.fw2).toMatchObject({ state: 'down', weight: 0, egressVia: 'fw2' });
    expect(d2.reasons).toContain('fw2 (service web) down: the firewall is down');
  });

  it('a config without service checks decides exactly as before (no services key)', () => {
    const plain = dual((r) => r.services.forEach((s: Record<string, unknown>) => delete s.checks));
    const d = decide(new SnapshotBuilder(plain).seeAll('up').build());
    expect(d.desired.services).toBeUndefined();
  });

  it('desiredEqual sees a difference in a service entry; dropping a service\'s checks is a change', () => {
    const d = decide(healthy().build()).desired;
    const web = d.services!.web!;
    const other: Desired = { ...d, services: { ...d.services, web: { ...web, fw1: { ...web.fw1!, weight: 0 } } } };
    expect(desiredEqual(d, structuredClone(d))).toBe(true);
    expect(desiredEqual(d, other)).toBe(false);
    const plain = dual((r) => r.services.forEach((s: Record<string, unknown>) => delete s.checks));
    const after = decide(new SnapshotBuilder(plain).seeAll('up').previous(d).build());
    expect(after.changed).toBe(true);
    expect(after.reasons).toEqual([
      'service dns: no longer judged by checks of its own; it follows the firewalls\' state',
      'service web: no longer judged by checks of its own; it follows the firewalls\' state',
    ]);
  });
});

describe('decide with service checks: properties', () => {
  const c = dual();
  const own = new Set(c.services.flatMap((x) => x.checks ?? []));
  const triples = c.firewalls.flatMap((fw) => checksFor(c, fw).flatMap((k) => c.nodes.filter((n) => n.role === k.from).map((n) => ({ node: n.name, role: n.role, firewall: fw.name, check: k.name }))));
  const obsArb = fc.array(fc.constantFrom('up' as const, 'down' as const, 'unknown' as const), { minLength: triples.length, maxLength: triples.length })
    .map((states) => triples.map((t, i): Observation => ({ ...t, state: states[i]!, since: T0 - 5000, updatedAt: T0 - 100, streak: 1, lastError: states[i] === 'down' ? 'timeout' : null, rttMs: null })));
  const drainArb = fc.subarray(['fw1', 'fw2']).map((fws) => fws.map((f) => ({ firewall: f, by: 'ops', reason: '', since: T0 - 1 })));
  const policyArb = fc.constantFrom('fail-open' as const, 'fail-closed' as const);
  const configs = { 'fail-open': c, 'fail-closed': dual((r) => (r.policy = { allDown: 'fail-closed' })) };
  const snap = (config: Config, observations: Observation[], drains: Snapshot['drains'], previous: Desired | null, now: number): Snapshot =>
    ({ config, now, leader: 'lb1', observations: observations.map((o) => ({ ...o, updatedAt: now - 100 })), drains, maintenance: [], previous });

  it('firewall entries ignore service checks; a service never has a firewall up that is not up itself; fail-open leaves every service a firewall', () => {
    fc.assert(fc.property(policyArb, obsArb, obsArb, drainArb, fc.integer({ min: 0, max: 20_000 }), (policy, first, second, drains, dt) => {
      const config = configs[policy];
      const prev = decide(snap(config, first, [], null, T0)).desired;
      const d = decide(snap(config, second, drains, prev, T0 + dt)).desired;
      const withoutOwn = decide(snap(config, second.filter((o) => !own.has(o.check)), drains, { ...prev, services: undefined }, T0 + dt)).desired;
      expect(d.firewalls).toEqual(withoutOwn.firewalls);
      for (const svc of Object.values(d.services ?? {})) {
        for (const [fw, e] of Object.entries(svc)) {
          if (e.state === 'up') expect(d.firewalls[fw]!.state).toBe('up');
          expect(e.egressVia).toBe(fw);
        }
        if (policy === 'fail-open' && Object.values(d.firewalls).some((f) => f.state === 'up')) expect(Object.values(svc).some((e) => e.state === 'up')).toBe(true);
      }
    }), { numRuns: 300 });
  });
});

describe('actuator: several services, dual stack', () => {
  const c = dual();

  it('builds lb1 from nothing: IPVS per service and family, ip -6 rules and routes, IPv6 sources nodad, VIP sysctls; then idempotent', async () => {
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    const r = new FakeRunner(k.handle);
    const act = new Actuator(c, 'lb1', r, { timers: new ManualTimers() });
    const res = await act.reconcile(null, { holdsVips: true });
    expect(res.errors).toEqual([]);
    expect(writes(r)).toEqual([
      'sysctl -w net.ipv4.ip_forward=1 net.ipv4.vs.expire_nodest_conn=1 net.ipv4.vs.expire_quiescent_template=1 net.ipv4.vs.sloppy_tcp=1 net.ipv6.conf.all.forwarding=1',
      'ipvsadm -R\n' + [
        '-A -f 1 -s sh -b sh-fallback', '-a -f 1 -r 10.1.0.11:0 -g -w 100', '-a -f 1 -r 10.1.0.12:0 -g -w 100',
        '-A -f 1 -6 -s sh -b sh-fallback', '-a -f 1 -6 -r [2001:db8:1::11]:0 -g -w 100', '-a -f 1 -6 -r [2001:db8:1::12]:0 -g -w 100',
        '-A -f 3 -s mh -b mh-fallback', '-a -f 3 -r 10.1.0.11:0 -g -w 100', '-a -f 3 -r 10.1.0.12:0 -g -w 100',
      ].join('\n') + '\n',
      'ip route replace local 0.0.0.0/0 dev lo table 100',
      'ip route replace 0.0.0.0/0 via 10.1.0.11 dev eth1 table 200',
      'ip route replace 0.0.0.0/0 via 10.1.0.12 dev eth1 table 201',
      'ip rule add priority 1000 from 10.1.0.21 lookup 200',
      'ip rule add priority 1000 from 10.1.0.22 lookup 201',
      'ip rule add priority 100 fwmark 1 lookup 100',
      'ip rule add priority 100 fwmark 3 lookup 100',
      'ip -6 route replace local ::/0 dev lo table 100',
      'ip -6 route replace ::/0 via 2001:db8:1::11 dev eth1 table 200',
      'ip -6 route replace ::/0 via 2001:db8:1::12 dev eth1 table 201',
      'ip -6 rule add priority 1000 from 2001:db8:1::21 lookup 200',
      'ip -6 rule add priority 1000 from 2001:db8:1::22 lookup 201',
      'ip -6 rule add priority 100 fwmark 1 lookup 100',
      'ip addr add 10.1.0.21/32 dev eth1',
      'ip addr add 2001:db8:1::21/128 dev eth1 nodad',
      'ip addr add 10.1.0.22/32 dev eth1',
      'ip addr add 2001:db8:1::22/128 dev eth1 nodad',
      // The VIP group's own step: the kernel announces an IPv6 address it adds only with these.
      'sysctl -w net.ipv6.conf.eth0.accept_dad=0 net.ipv6.conf.eth0.ndisc_notify=1 net.ipv6.conf.eth1.accept_dad=0 net.ipv6.conf.eth1.ndisc_notify=1',
      'ip addr add 192.0.2.254/24 dev eth0',
      'ip addr add 2001:db8:0:1::254/64 dev eth0',
      'ip addr add 10.1.0.254/24 dev eth1',
      'ip addr add 2001:db8:1::254/64 dev eth1',
      'arping -U -c 3 -I eth0 192.0.2.254',
      'arping -U -c 3 -I eth1 10.1.0.254',
    ]);
    // The IPv6 VIPs were announced by the kernel as they were added: no re-add on takeover.
    await act.settled();
    expect(act.vipGroups[0]!.announcements.filter((a) => a.how === 'kernel-on-add').map((a) => a.address)).toEqual(['2001:db8:0:1::254', '2001:db8:1::254']);
    expect(k.ip6Batches.filter((b) => b.includes('addr'))).toEqual([]);
    expect(res.applied.ipvs!.map((s) => `${s.service} ${s.fwmark}${s.ipv6 ? ' -6' : ''}: ${s.realServers.map((x) => `${x.firewall}=${x.weight}`).join(' ')}`)).toEqual([
      'web 1: fw1=100 fw2=100', 'web 1 -6: fw1=100 fw2=100', 'dns 3: fw1=100 fw2=100',
    ]);
    r.calls.length = 0;
    const again = await act.reconcile(null, { holdsVips: true });
    expect(again.errors).toEqual([]);
    expect(writes(r)).toEqual([]);
    act.close();
  });

  it('fw1 down in web only: both web services (IPv4 and IPv6) quiesce fw1; dns is untouched', async () => {
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    const r = new FakeRunner(k.handle);
    const act = new Actuator(c, 'lb1', r, { timers: new ManualTimers() });
    await act.reconcile(null, { holdsVips: false });
    const first = decide(new SnapshotBuilder(c).seeAll('up').build());
    const b = new SnapshotBuilder(c).seeAll('up').see('lb1', 'fw1', 'path-https', 'down').see('lb2', 'fw1', 'path-https', 'down');
    const d = decide(b.at(T0 + 1000).previous(first.desired).build()).desired;
    r.calls.length = 0;
    const res = await act.reconcile(d, { holdsVips: false });
    expect(res.errors).toEqual([]);
    expect(writes(r)).toEqual(['ipvsadm -R\n-e -f 1 -r 10.1.0.11:0 -g -w 0\n-e -f 1 -6 -r [2001:db8:1::11]:0 -g -w 0\n']);
    expect(res.results.find((x) => x.driver === 'ipvs')!.differences).toEqual([
      'fwmark 1: fw1 (10.1.0.11) weight 100, want 0',
      'fwmark 1 (IPv6): fw1 (2001:db8:1::11) weight 100, want 0',
    ]);
    // remove mode: deleted from both web services only
    const rm = dual((raw) => (raw.policy = { downAction: 'remove' }));
    expect(nodeWants(rm, rm.nodes[0]!, d).ipvs!.services.map((s) => s.realServers.map((x) => x.name).join(','))).toEqual(['fw2', 'fw2', 'fw1,fw2']);
  });

  it('egress: fw1 down re-points its IPv4 and IPv6 tables via fw2 and flushes mark 1 in both families', async () => {
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    const r = new FakeRunner(k.handle);
    const act = new Actuator(c, 'er1', r, { timers: new ManualTimers() });
    const first = await act.reconcile(null, { holdsVips: false });
    expect(first.errors).toEqual([]);
    expect(writes(r).filter((w) => w.startsWith('ip -6'))).toEqual([
      'ip -6 route replace 2001:db8:ffff::/48 via 2001:db8:2::11 dev eth0 table 101',
      'ip -6 route replace 2001:db8:ffff::/48 via 2001:db8:2::12 dev eth0 table 102',
      'ip -6 route replace ::/0 via 2001:db8:2::11 dev eth0 table 200',
      'ip -6 route replace ::/0 via 2001:db8:2::12 dev eth0 table 201',
      'ip -6 rule add priority 1000 from 2001:db8:2::21 lookup 200',
      'ip -6 rule add priority 1000 from 2001:db8:2::22 lookup 201',
      'ip -6 rule add priority 500 fwmark 1 iif eth1 lookup 101',
      // Replies to the LBs' IPv6 probes through fwN stay pinned to fwN.
      'ip -6 rule add priority 499 to 2001:db8:1::21 iif eth1 lookup 200',
      'ip -6 rule add priority 499 to 2001:db8:1::31 iif eth1 lookup 200',
      'ip -6 rule add priority 500 fwmark 2 iif eth1 lookup 102',
      'ip -6 rule add priority 499 to 2001:db8:1::22 iif eth1 lookup 201',
      'ip -6 rule add priority 499 to 2001:db8:1::32 iif eth1 lookup 201',
    ]);
    expect(writes(r)).toContain('sysctl -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1');
    r.calls.length = 0;
    const first2 = decide(new SnapshotBuilder(c).seeAll('up').build());
    const down = decide(new SnapshotBuilder(c).seeAll('up').see('er1', 'fw1', 'egress-leg6', 'down').at(T0 + 1000).previous(first2.desired).build()).desired;
    expect(down.firewalls.fw1!.egressVia).toBe('fw2');
    const res = await act.reconcile(down, { holdsVips: false });
    expect(res.errors).toEqual([]);
    expect(writes(r)).toEqual([
      'ip route replace 203.0.113.0/24 via 10.2.0.12 dev eth0 table 101',
      'ip -6 route replace 2001:db8:ffff::/48 via 2001:db8:2::12 dev eth0 table 101',
      'conntrack -D -m 1',
      'conntrack -D -f ipv6 -m 1',
    ]);
    expect(k.conntrackFlushes).toEqual([1, 'ipv6/1']);
    expect(res.results.find((x) => x.driver === 'routes6')!.differences).toEqual(['table 101: 2001:db8:ffff::/48 via 2001:db8:2::11 dev eth0, want via 2001:db8:2::12 dev eth0']);
  });

  it('plan reads both families for real and prints the IPv6 changes without running them', async () => {
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    const reader = new FakeRunner(k.handle);
    const { commands, errors } = await Actuator.plan(c, 'er1', reader, null, { holdsVips: false });
    expect(errors).toEqual([]);
    expect(commands.find((x) => x.startsWith("ip -6 -batch - <<'EOF'\n"))).toContain('\nrule add priority 500 fwmark 1 iif eth1 lookup 101\n');
    expect(reader.calls.some((x) => x.args.join(' ') === '-6 -j -batch -')).toBe(true);
    expect(reader.calls.every((x) => isReadCommand(x.file, x.args))).toBe(true);
    expect(k.tables6.size).toBe(0);
  });

  it('an IPv4-only config runs no ip -6 at all', async () => {
    const v4 = dual((raw) => {
      for (const f of raw.firewalls) { delete f.ingressAddress6; delete f.egressAddress6; }
      for (const n of raw.nodes) delete n.probe.sources6;
      raw.checks = raw.checks.filter((x: { family?: string }) => x.family !== 'ipv6');
      raw.services[0].family = 'ipv4';
      raw.vipGroups[0].addresses = raw.vipGroups[0].addresses.filter((a: { address: string }) => !a.address.includes(':'));
    });
    for (const node of ['lb1', 'er1']) {
      const r = new FakeRunner(new FakeKernel(['eth0', 'eth1', 'lo']).handle);
      const res = await new Actuator(v4, node, r, { timers: new ManualTimers() }).reconcile(null, { holdsVips: true });
      expect(res.errors).toEqual([]);
      expect(r.calls.filter((x) => x.args[0] === '-6' || x.args.join(' ').includes('ipv6'))).toEqual([]);
    }
  });
});

describe('IPv6 VIP announcements', () => {
  const group = { name: 'ingress', addresses: [{ dev: 'eth0', address: '2001:db8:0:1::254/64' }], garp: { count: 3, repeatAfterMs: 5000, refreshIntervalMs: 60_000 } };

  it('a sysctl failure fails the hold before any address is added', async () => {
    const k = new FakeKernel(['eth0']);
    const r = new FakeRunner((c) => (c.file === 'sysctl' && c.args[0] === '-w' ? new Error('permission denied') : k.handle(c)));
    const v = new VipGroup(r, group, { timers: new ManualTimers() });
    await expect(v.reconcile(true)).rejects.toThrow(/^vip:ingress: interface settings for IPv6 announcements: .*permission denied/);
    expect(k.addrs.get('eth0')).toEqual([]);
    expect(v.held).toBe(false);
  });

  it('takeover relies on the kernel (address added); repeat and refresh re-add it, only while leadership is provable', async () => {
    const k = new FakeKernel(['eth0']);
    const r = new FakeRunner(k.handle);
    const timers = new ManualTimers();
    let valid = true;
    const v = new VipGroup(r, group, { timers, canAnnounce: () => valid });
    expect((await v.reconcile(true)).commands).toEqual(['sysctl -w net.ipv6.conf.eth0.accept_dad=0 net.ipv6.conf.eth0.ndisc_notify=1', 'ip addr add 2001:db8:0:1::254/64 dev eth0']);
    timers.advance(5000);
    await v.settled();
    expect(k.ip6Batches).toEqual(['addr del 2001:db8:0:1::254/64 dev eth0\naddr add 2001:db8:0:1::254/64 dev eth0\n']);
    expect(k.addrs.get('eth0')).toEqual(['2001:db8:0:1::254/64']);
    valid = false;
    timers.advance(55_000);
    await v.settled();
    expect(k.ip6Batches).toHaveLength(1);
    expect(v.announcements.map((a) => `${a.reason} ${a.how} ${a.ok}`)).toEqual(['takeover kernel-on-add true', 'repeat re-add true']);
    // Restarted holder with the address already there: the takeover re-adds it (no add happened, so no announcement yet).
    const v2 = new VipGroup(r, group, { timers: new ManualTimers() });
    expect((await v2.reconcile(true)).commands).toEqual(['ip -6 -batch - <<< "addr del 2001:db8:0:1::254/64 dev eth0\\naddr add 2001:db8:0:1::254/64 dev eth0\\n"']);
    await v2.settled();
    v.close();
    v2.close();
  });
});

describe('parsers on real IPv6 output', () => {
  it('ipvsadm -Sn and /proc/net/ip_vs with an IPv4 and an IPv6 service of the same mark (lab VM)', () => {
    const s = parseIpvsSave(fx6('ipvsadm-Sn-dual.txt'));
    expect(s.map((x) => `${x.key} ${x.scheduler} ${x.flags.join(',')}: ${x.realServers.map((r) => `${r.target}=${r.weight}`).join(' ')}`)).toEqual([
      '-f 1 sh sh-fallback: 10.1.0.11:0=100 10.1.0.12:0=100',
      '-f 1 -6 sh sh-fallback: [2001:db8:1::11]:0=100 [2001:db8:1::12]:0=100',
      '-f 3 -6 mh mh-fallback: [2001:db8:1::11]:0=100 [2001:db8:1::12]:50',
    ].map((l) => l.replace(':50', ':0=50')));
    const proc = parseIpvsProc(fx6('proc-ip_vs-dual.txt'));
    // Newest first; ::12 was added before ::11 in -f 1 -6, ::11 before ::12 in -f 3 -6.
    expect(Object.fromEntries(proc)).toEqual({
      '-f 1': ['10.1.0.12', '10.1.0.11'],
      '-f 1 -6': ['2001:db8:1::11', '2001:db8:1::12'],
      '-f 3 -6': ['2001:db8:1::12', '2001:db8:1::11'],
    });
  });

  it('readIpvs gives insertion order per family; a re-added IPv6 server goes last', async () => {
    const at = (state: string) => new FakeRunner((c) => (c.file === 'cat' ? fx6(`proc-ip_vs-${state}.txt`) : fx6(`ipvsadm-Sn-${state}.txt`)));
    const before = await readIpvs(at('dual'));
    expect(before.order.get('-f 1 -6')).toEqual(['2001:db8:1::12', '2001:db8:1::11']);
    expect(before.order.get('-f 3 -6')).toEqual(['2001:db8:1::11', '2001:db8:1::12']);
    const after = await readIpvs(at('dual-edit'));
    expect(after.order.get('-f 3 -6')).toEqual(['2001:db8:1::12', '2001:db8:1::11']);
  });

  it('plans exactly the batch lines ipvsadm accepted in the VM, and reports the order the kernel then had', () => {
    const state = { services: parseIpvsSave(fx6('ipvsadm-Sn-dual.txt')), order: new Map(Object.entries({
      '-f 1': ['10.1.0.11', '10.1.0.12'], '-f 1 -6': ['2001:db8:1::12', '2001:db8:1::11'], '-f 3 -6': ['2001:db8:1::11', '2001:db8:1::12'],
    })) };
    const captured = fx6('ipvsadm-R-dual-edit.txt').trim().split('\n');
    const svc = (mark: number, sched: 'sh' | 'mh', rs: [string, number][]) => ({ fwmark: mark, ipv6: true, scheduler: sched, flags: [`${sched}-fallback`], realServers: rs.map(([address, weight]) => ({ address, weight })) });
    const want = (f1: [string, number][], f3: [string, number][]): IpvsWant => ({ downAction: 'remove', services: [svc(1, 'sh', f1), svc(3, 'mh', f3)] });
    const f1 = (w11: number): [string, number][] => [['2001:db8:1::12', 100], ['2001:db8:1::11', w11]];
    expect(planIpvs(state, want(f1(0), [['2001:db8:1::11', 100], ['2001:db8:1::12', 50]])).batch).toEqual([captured[0]]);
    expect(planIpvs(state, want(f1(100), [['2001:db8:1::12', 50]])).batch).toEqual([captured[1]]);
    const readded = { services: state.services.map((x) => (x.key === '-f 3 -6' ? { ...x, realServers: x.realServers.filter((r) => !r.target.includes('::11')) } : x)), order: new Map([...state.order, ['-f 3 -6', ['2001:db8:1::12']]]) };
    expect(planIpvs(readded, want(f1(100), [['2001:db8:1::12', 50], ['2001:db8:1::11', 100]])).batch).toEqual([captured[2]]);
    expect(fx6('ipvsadm-R-dual-edit.stdout').trim()).toBe('exit 0');
    // Without -6 ipvsadm refuses an IPv6 real server (exit 2): the driver always writes -6 for IPv6 services.
    expect(fx6('ipvsadm-R-dual-no6.stderr')).toMatch(/Different address family/);
    expect(() => planIpvs(state, { downAction: 'remove', services: [{ fwmark: 1, ipv6: true, scheduler: 'sh', flags: [], realServers: [{ address: '10.1.0.11', weight: 1 }] }] })).toThrow(DriverInputError);
  });

  it('the fake IPVS answers like the VM did for the same batch (so actuator tests mean something)', () => {
    const f = new FakeIpvs();
    for (const l of fx6('ipvsadm-R-dual.txt').trim().split('\n')) expect(f.apply(l)).toBe('');
    expect(f.save()).toBe(fx6('ipvsadm-Sn-dual.txt'));
    expect(parseIpvsProc(f.proc())).toEqual(parseIpvsProc(fx6('proc-ip_vs-dual.txt')));
    expect(f.apply(fx6('ipvsadm-R-dual-no6.txt').trim())).toBe('Different address family is allowed only for tunneling servers');
  });

  it('ip -6 -j rule / route (iproute2 6.1 on the host): host rules without dstlen, metric 1024, default', () => {
    const rules = parseRules(fx('ip-6-j-rule-show.json'), 'ip -6 -j rule show', 6);
    expect(rules.find((x) => x.priority === 499)).toMatchObject({ to: '2001:db8:1::31', iif: 'd0', table: 201 });
    expect(rules.find((x) => x.priority === 1000)).toMatchObject({ from: '2001:db8:1::21', table: 201 });
    const routes = parseRoutes(fx('ip-6-j-route-table-201.json'), 'ip -6 -j route show table 201', 6);
    expect(routes.map((x) => `${x.dst} ${x.gateway} ${x.metric}`)).toEqual(['2001:db8:9::/48 2001:db8:1::12 1024', '::/0 2001:db8:1::11 1024']);
    const state = { rules, tables: new Map([[201, routes], [100, parseRoutes(fx('ip-6-j-route-table-100-local.json'), 'x', 6)]]) };
    const plan = planRoutes(state, {
      rules: [{ priority: 499, to: '2001:db8:1::31', iif: 'd0', table: 201 }, { priority: 1000, from: '2001:db8:1::21', table: 201 }, { priority: 100, fwmark: 1, table: 100 }, { priority: 500, fwmark: 2, iif: 'd0', table: 102 }],
      tables: { 201: [{ dst: 'default', via: '2001:db8:1::11', dev: 'd0' }, { dst: '2001:db8:9::/48', via: '2001:db8:1::12', dev: 'd0' }], 100: [{ dst: 'default', type: 'local', dev: 'lo' }] },
    }, 6);
    expect(plan.differences).toEqual([]);
  });

  it('IPv6 input errors name the driver and change nothing', async () => {
    const r = new FakeRunner(new FakeKernel([]).handle);
    await expect(new RoutesDriver(r, { family: 6 }).reconcile({ rules: [{ priority: 1, from: '10.0.0.1', table: 200 }], tables: {} })).rejects.toThrow('rule from "10.0.0.1" is not an IPv6 address or prefix');
    await expect(new RoutesDriver(r, { family: 6 }).reconcile({ rules: [], tables: { 5: [{ dst: 'default', via: '10.0.0.1' }] } })).rejects.toMatchObject({ driver: 'routes6' });
    await expect(new SysctlDriver(r).reconcile({ 'net/ipv6/conf/../accept_dad': '0' })).rejects.toThrow(DriverInputError);
    expect(r.calls).toEqual([]);
  });

  it('slash sysctl keys for interfaces with a dot; conntrack flush per family', async () => {
    const k = new FakeKernel([]);
    const r = new FakeRunner(k.handle);
    await new SysctlDriver(r).reconcile({ 'net/ipv6/conf/eth0.100/ndisc_notify': '1' });
    expect(k.sysctls.get('net/ipv6/conf/eth0.100/ndisc_notify')).toBe('1');
    expect((await new ConntrackDriver(r).flushMark(2, 'ipv6')).commands).toEqual(['conntrack -D -f ipv6 -m 2']);
    const v = new VipGroup(r, { name: 'g', addresses: [{ dev: 'eth0.100', address: '2001:db8::1/64' }, { dev: 'eth1', address: '192.0.2.1/24' }], garp: { count: 1, repeatAfterMs: 0, refreshIntervalMs: 0 } });
    expect(v.sysctls).toEqual({ 'net/ipv6/conf/eth0.100/accept_dad': '0', 'net/ipv6/conf/eth0.100/ndisc_notify': '1' });
  });
});
