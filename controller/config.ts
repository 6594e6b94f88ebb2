// The sandwich described in one YAML file: schema, cross-checks, and errors that name the YAML line.
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { LineCounter, parseDocument, isNode } from 'yaml';
import { z } from 'zod';

const NAME_RE = /^[a-z][a-z0-9_-]{0,31}$/;
// Linux interface names: at most 15 bytes; we accept a conservative subset, never shell metacharacters.
const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

const name = z.string().regex(NAME_RE, 'must be a name: lower-case letter, then up to 31 of a-z 0-9 _ -');
const ifName = z.string().regex(IFNAME_RE, 'must be an interface name: 1-15 of A-Z a-z 0-9 _ . - (no spaces or shell metacharacters)');
const ipv4 = z.string().refine((s) => isIPv4(s), 'must be an IPv4 address');
// Kept in the compressed lower-case form iproute2 and ipvsadm print, so comparisons with the kernel hold.
const ipv6 = z.string().refine((s) => isIPv6(s), 'must be an IPv6 address').transform(canonicalIPv6);
const ipAddr = z.string().refine((s) => isIPv4(s) || isIPv6(s), 'must be an IPv4 or IPv6 address');
const cidr = z.string().refine(isCidr, 'must be an address with a prefix length, e.g. 192.0.2.1/24')
  .transform((s) => (isIPv6(s.split('/')[0] ?? '') ? `${canonicalIPv6(s.split('/')[0]!)}/${s.split('/')[1]}` : s));
const prefix = z.string().refine((s) => s === 'default' || isCidr(s), 'must be a network prefix such as 203.0.113.0/24, or "default"');
const mac = z.string().regex(MAC_RE, 'must be a MAC address like 02:00:00:00:f1:0e').transform((s) => s.toLowerCase());
const ms = (min: number, max: number) => z.number().int().min(min).max(max);
const table = z.number().int().min(1).max(0xfffffffe).refine((t) => t !== 253 && t !== 254 && t !== 255, 'must not be a reserved table (253 default, 254 main, 255 local)');
const mark = z.number().int().min(1).max(0xffffffff);
const hostname = z.string().refine((s) => isIPv6(s) || /^[A-Za-z0-9.-]{1,253}$/.test(s), 'must be an IP address or host name');

/** "2001:DB8:0::1" → "2001:db8::1" (the form iproute2 and ipvsadm print). */
export function canonicalIPv6(a: string): string {
  return new URL(`http://[${a}]/`).hostname.slice(1, -1);
}

export function isCidr(s: string): boolean {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
  if (!m) return false;
  const [, addr, len] = m as unknown as [string, string, string];
  const n = Number(len);
  if (isIPv4(addr)) return n <= 32;
  if (isIPv6(addr)) return n <= 128;
  return false;
}

const ProbeSchema = z.strictObject({
  /** Logical interface (a key of the node's `interfaces`) that faces the firewalls. */
  interface: name,
  /** Source address per firewall; probes from it are policy-routed through that firewall. */
  sources: z.record(name, ipv4),
  /** IPv6 source address per firewall, for checks with family ipv6 (same tables as IPv4: tableBase + i). */
  sources6: z.record(name, ipv6).optional(),
  /** Routing table for firewall i (config order) is tableBase + i. */
  tableBase: table.default(200),
  /** Priority of the `from <source> lookup <table>` rules. */
  rulePriority: z.number().int().min(1).max(32765).default(1000),
});

const NodeSchema = z.strictObject({
  name,
  role: z.enum(['ingress', 'egress']),
  /** Logical name → Linux interface on this host, e.g. { client: eth0, firewall: eth1 }. */
  interfaces: z.record(name, ifName).default({}),
  probe: ProbeSchema.optional(),
  /** Address other controllers use to reach this node (API, peer checks); informational for now. */
  address: ipAddr.optional(),
});

const FirewallSchema = z.strictObject({
  name,
  ingressAddress: ipv4,
  egressAddress: ipv4,
  /** IPv6 address on the LB side: the real server of IPv6 services, the next hop of IPv6 probes from ingress nodes. */
  ingressAddress6: ipv6.optional(),
  /** IPv6 address on the egress-router side: next hop of this firewall's IPv6 egress table. */
  egressAddress6: ipv6.optional(),
  egressMac: mac,
  weight: z.number().int().min(1).max(65535).default(100),
  /** Connection mark the egress router gives flows that arrived from this firewall. */
  mark,
  /** Egress router's routing table for replies through this firewall. */
  table,
  /** Names of the checks that apply to this firewall (default: all). */
  checks: z.array(name).optional(),
});

const CheckSchema = z.strictObject({
  name,
  kind: z.enum(['icmp', 'tcp', 'http']),
  /** path: through the firewall to a target beyond it; leg: to the firewall's own address on the observer's side. */
  scope: z.enum(['path', 'leg']),
  /** Which nodes run it. */
  from: z.enum(['ingress', 'egress']).default('ingress'),
  /** ipv6: probes go from the node's sources6 (leg checks to the firewall's ingressAddress6/egressAddress6). Default ipv4. */
  family: z.enum(['ipv4', 'ipv6']).optional(),
  /** Host for icmp/tcp path checks. */
  target: hostname.optional(),
  port: z.number().int().min(1).max(65535).optional(),
  /** URL for http checks (path scope). For leg scope, only the path part is used against the firewall address. */
  url: z.string().url('must be an http:// or https:// URL').refine((u) => /^https?:\/\//.test(u), 'must be an http:// or https:// URL').optional(),
  expectStatus: z.array(z.number().int().min(100).max(599)).min(1).optional(),
  bodyMatch: z.string().max(1024).refine(isRegex, 'must be a valid regular expression').optional(),
  intervalMs: ms(50, 3_600_000).default(1000),
  timeoutMs: ms(10, 600_000).default(800),
  rise: z.number().int().min(1).max(100).default(3),
  fall: z.number().int().min(1).max(100).default(3),
  /** Random extra delay per run, as a fraction of intervalMs, so probes do not synchronise. */
  jitter: z.number().min(0).max(0.5).default(0.1),
  /**
   * Gray failures: also down when the last `probes` results hold at least downPct % failures, and up
   * again (besides `rise` successes in a row) only when they hold at most upPct %. Off when absent.
   */
  lossWindow: z.strictObject({
    /** Results counted: the last this many probes. */
    probes: z.number().int().min(10).max(100_000),
    /** Down at this share of failures (percent). */
    downPct: z.number().gt(0).max(100),
    /** Up again only at or below this share (percent), below downPct. */
    upPct: z.number().min(0).lt(100),
  }).optional(),
  /** icmp only: 'stream' (the daemon's default) = one long-lived ping per target; 'package' = one ping process per probe (the `ping` npm package, as one-shot CLI checks use). */
  icmpEngine: z.enum(['package', 'stream']).optional(),
});

const GarpSchema = z.strictObject({
  count: z.number().int().min(1).max(20).default(3),
  /** Second burst this long after takeover (keepalived's garp_master_delay). 0 disables. */
  repeatAfterMs: ms(0, 600_000).default(5000),
  /** Periodic refresh while leader (keepalived's garp_master_refresh). 0 disables. */
  refreshIntervalMs: ms(0, 3_600_000).default(60_000),
});

const VipPathSchema = z.strictObject({
  /** The node (of the group's role) that holds this address while it is healthy. */
  node: name,
  /** Its own address with prefix length, e.g. 192.0.2.21/24: a next hop of the upstream router's ECMP route (or BGP next hop). */
  address: cidr,
  /** Logical interface (a key of the node's interfaces) it goes on. */
  interface: name,
});

const VipGroupSchema = z.strictObject({
  name,
  role: z.enum(['ingress', 'egress']),
  /**
   * leader: the role's leader holds the addresses and moves them by gratuitous ARP. active-active: no address
   * moves; every node holds its own path addresses (paths) while it is healthy and the upstream router spreads
   * flows over them by ECMP (docs/active-active.md).
   */
  mode: z.enum(['leader', 'active-active']).default('leader'),
  /** leader mode: the addresses the leader holds, each with its logical interface (at least one). */
  addresses: z.array(z.strictObject({ address: cidr, interface: name })).default([]),
  /** active-active mode: per-node path addresses; every node of the role needs at least one. */
  paths: z.array(VipPathSchema).optional(),
  /**
   * active-active mode: a kernel ARP fence on the path addresses expires this long after the controller last
   * confirmed the node healthy, so a killed or frozen controller's node stops answering ARP for them. 0: no fence.
   */
  pathFenceMs: ms(0, 600_000).default(3000),
  garp: GarpSchema.default({ count: 3, repeatAfterMs: 5000, refreshIntervalMs: 60_000 }),
});

const ServiceSchema = z.strictObject({
  name,
  fwmark: mark,
  /** ipv4: `ipvsadm -f N`; ipv6: `-f N -6` to the firewalls' ingressAddress6; dual: both, one mark. */
  family: z.enum(['ipv4', 'ipv6', 'dual']).default('ipv4'),
  /**
   * Checks that judge only this service: when one fails on a firewall, the firewall leaves this service
   * (weight 0, or removed) while its other services and its egress table stay. Checks named by no
   * service judge the whole firewall.
   */
  checks: z.array(name).optional(),
  scheduler: z.enum(['sh', 'mh']).default('sh'),
  /** Table holding `local 0/0 dev lo` for marked packets (the seed's table 100). */
  localTable: table.default(100),
  rulePriority: z.number().int().min(1).max(32765).default(100),
});

const EgressSchema = z.strictObject({
  /** Logical interface facing the firewalls (next hops live there). */
  firewallInterface: name.default('firewall'),
  /** Logical interface facing the servers: the fwmark rules only match packets arriving here. */
  serverInterface: name.default('server'),
  /** Destinations put in every per-firewall table (the routes back towards the clients). */
  routes: z.array(prefix).min(1).default(['default']),
  /** IPv6 destinations of every per-firewall table (`ip -6`), used when the firewalls have egressAddress6. */
  routes6: z.array(prefix).min(1).default(['default']),
  /** Priority of the `fwmark N iif <server> lookup <table>` rules; the probe-reply rules use one less. */
  rulePriority: z.number().int().min(2).max(32765).default(500),
  /** Delete conntrack entries carrying a dead firewall's mark when its table is re-pointed. */
  flushConntrack: z.boolean().default(true),
});

/**
 * How the leader of a role is chosen and kept (docs/coordination.md):
 * lease: the leader key is bound to the node's etcd lease (validity = last acknowledged keepalive's send time + TTL − margin);
 * fast: no lease; the leader rewrites its key by compare-and-swap every renewIntervalMs, a standby takes it over by
 * compare-and-swap once it has seen no new revision for takeoverAfterMs, and the leader's validity ends marginMs before that.
 */
const LeadershipSchema = z.discriminatedUnion('mode', [
  z.strictObject({ mode: z.literal('lease') }),
  z.strictObject({
    /** lease: the leader key lives as long as the node's lease (leaseTtlS); fast: the leader renews its key by compare-and-swap, no lease. */
    mode: z.literal('fast'),
    /** The leader rewrites its key this often. */
    renewIntervalMs: ms(10, 60_000).default(100),
    /** A standby takes the key over after seeing no renewal for this long. */
    takeoverAfterMs: ms(50, 600_000).default(500),
    /** The leader's validity (and its kernel ARP fence) ends this long before a standby may take over; must cover the host's worst nft latency. */
    marginMs: ms(10, 60_000).default(150),
  }),
]);

const StoreSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('memory') }),
  z.strictObject({
    kind: z.literal('etcd'),
    endpoints: z.array(z.string().regex(/^https?:\/\/[A-Za-z0-9.:[\]-]+$/, 'must be an http(s)://host:port endpoint')).min(1),
    /** Key prefix; default /sandwich/<cluster>/. A "/" is appended (/sandwich/a and /sandwich/ab never overlap); no segment may be named like a key kind (leader, observations, desired, drain, maintenance, switchover, status). An etcd user limited to it is enough (deploy/etcd-tls). */
    prefix: z.string().regex(/^\/[A-Za-z0-9_./-]*$/, 'must be a key prefix starting with /').optional(),
    callTimeoutMs: ms(10, 60_000).default(1000),
    leaseTtlS: z.number().int().min(1).max(3600).default(2),
    auth: z.strictObject({ username: z.string().min(1), passwordFile: z.string().min(1) }).optional(),
    tls: z.strictObject({ caFile: z.string().min(1), certFile: z.string().min(1).optional(), keyFile: z.string().min(1).optional() }).optional(),
    /** lease (default) or fast: how the leader key is kept (docs/coordination.md). */
    leadership: LeadershipSchema.default({ mode: 'lease' }),
    /** etcd's --election-timeout (ms; etcd's default 1000): the fast profile must ride out a raft election. */
    etcdElectionTimeoutMs: ms(10, 60_000).default(1000),
  }),
]);

const TimingSchema = z.strictObject({
  /** How often the leader re-decides even without a change. */
  decideIntervalMs: ms(50, 600_000).default(500),
  /** How often every node re-reads its kernel and corrects drift. */
  reconcileIntervalMs: ms(100, 600_000).default(2000),
  /** Failback waits this long after a firewall is healthy again. */
  holdDownMs: ms(0, 3_600_000).default(10_000),
  /** Observations not refreshed for this long are ignored. */
  observationStaleMs: ms(100, 3_600_000).default(15_000),
  /** Other nodes let a switchover's target campaign alone for at most this long (until some other node leads). */
  switchoverTimeoutMs: ms(100, 600_000).default(5000),
  /** Deadline for one kernel command. */
  commandTimeoutMs: ms(100, 120_000).default(5000),
});

const PolicySchema = z.strictObject({
  /** fail-open: never take the last firewall(s) out of service; fail-closed: all may go. */
  allDown: z.enum(['fail-open', 'fail-closed']).default('fail-open'),
  /** quiesce: a down firewall gets weight 0 (service uses sh/mh-fallback, order and mapping kept);
   *  remove: its real server is deleted (connections expired; re-add goes to the end of the list). */
  downAction: z.enum(['quiesce', 'remove']).default('quiesce'),
  /** Ignore an observer that sees every firewall down on a check that another observer sees up. */
  discountBrokenObserver: z.boolean().default(true),
});

const EventsSchema = z.strictObject({
  /** JSON-lines event log; "{node}" is replaced by the node's name (several nodes on one host). */
  file: z.string().min(1).default('/var/log/sandwich/events.log'),
  maxSizeBytes: z.number().int().min(4096).default(10 * 1024 * 1024),
  maxFiles: z.number().int().min(1).max(100).default(5),
});

const SysctlSchema = z.strictObject({
  expireNodestConn: z.boolean().default(true),
  expireQuiescentTemplate: z.boolean().default(true),
  sloppyTcp: z.boolean().default(true),
});

// Loopback only: the API moves VIPs, so it is never exposed on the network.
const API_LISTEN_RE = /^(unix:\/[A-Za-z0-9_./-]{1,100}|(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\]|localhost):\d{1,5})$/;
const ApiSchema = z.strictObject({
  /** "127.0.0.1:9455" (loopback addresses only) or "unix:/run/sandwich/api.sock". */
  listen: z.string().regex(API_LISTEN_RE, 'must be "127.0.0.1:<port>", "[::1]:<port>", "localhost:<port>" or "unix:/absolute/path"')
    .refine((s) => s.startsWith('unix:') || (Number(s.slice(s.lastIndexOf(':') + 1)) >= 1 && Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535), 'port must be 1-65535'),
  /** File holding the bearer token for POST requests; without it the API is read-only. */
  tokenFile: z.string().min(1).optional(),
});

const ConfigObject = z.strictObject({
  cluster: name,
  store: StoreSchema.default({ kind: 'memory' }),
  timing: TimingSchema.default(TimingSchema.parse({})),
  policy: PolicySchema.default(PolicySchema.parse({})),
  nodes: z.array(NodeSchema).min(1),
  firewalls: z.array(FirewallSchema).min(1),
  checks: z.array(CheckSchema).min(1),
  services: z.array(ServiceSchema).default([]),
  ipvsSysctls: SysctlSchema.default(SysctlSchema.parse({})),
  vipGroups: z.array(VipGroupSchema).default([]),
  egress: EgressSchema.default(EgressSchema.parse({})),
  events: EventsSchema.default(EventsSchema.parse({})),
  /** Where the daemon keeps its status file. */
  runtimeDir: z.string().min(1).default('/run/sandwich'),
  /** Local HTTP API (status, metrics, failover, drain); off when absent. */
  api: ApiSchema.optional(),
});

export const ConfigSchema = ConfigObject.superRefine(crossCheck);

export type Config = z.infer<typeof ConfigSchema>;
export type NodeConfig = Config['nodes'][number];
export type FirewallConfig = Config['firewalls'][number];
export type CheckConfig = Config['checks'][number];
export type ServiceConfig = Config['services'][number];
export type VipGroupConfig = Config['vipGroups'][number];
export type VipPathConfig = NonNullable<VipGroupConfig['paths']>[number];
export type Role = NodeConfig['role'];

function isRegex(s: string): boolean {
  try {
    new RegExp(s);
    return true;
  } catch {
    return false;
  }
}

function crossCheck(c: z.infer<typeof ConfigObject>, ctx: z.RefinementCtx): void {
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
  const dup = <T>(items: T[], key: (t: T) => string | number, path: (i: number) => (string | number)[], what: string) => {
    const seen = new Map<string | number, number>();
    items.forEach((it, i) => {
      const k = key(it);
      const prev = seen.get(k);
      if (prev !== undefined) issue(path(i), `duplicate ${what} "${k}" (also at index ${prev})`);
      else seen.set(k, i);
    });
  };
  dup(c.nodes, (n) => n.name, (i) => ['nodes', i, 'name'], 'node name');
  dup(c.firewalls, (f) => f.name, (i) => ['firewalls', i, 'name'], 'firewall name');
  dup(c.firewalls, (f) => f.ingressAddress, (i) => ['firewalls', i, 'ingressAddress'], 'firewall address');
  dup(c.firewalls, (f) => f.egressAddress, (i) => ['firewalls', i, 'egressAddress'], 'firewall address');
  dup(c.firewalls, (f) => f.egressMac, (i) => ['firewalls', i, 'egressMac'], 'MAC');
  dup(c.firewalls, (f) => f.mark, (i) => ['firewalls', i, 'mark'], 'mark');
  dup(c.firewalls, (f) => f.table, (i) => ['firewalls', i, 'table'], 'table');
  dup(c.checks, (k) => k.name, (i) => ['checks', i, 'name'], 'check name');
  dup(c.services, (s) => s.name, (i) => ['services', i, 'name'], 'service name');
  dup(c.services, (s) => s.fwmark, (i) => ['services', i, 'fwmark'], 'fwmark');
  dup(c.vipGroups, (v) => v.name, (i) => ['vipGroups', i, 'name'], 'VIP group name');
  dup(c.vipGroups.flatMap((v) => [...v.addresses, ...(v.paths ?? [])].map((a) => a.address.split('/')[0] ?? '')), (a) => a, () => ['vipGroups'], 'VIP or path address');

  if (c.store.kind === 'etcd' && c.store.leadership.mode === 'fast') {
    const { renewIntervalMs: renew, takeoverAfterMs: takeover, marginMs: margin } = c.store.leadership;
    const at = ['store', 'leadership'];
    const window = takeover - margin;
    if (margin >= takeover) issue([...at, 'marginMs'], `must be less than takeoverAfterMs (${takeover} ms), got ${margin} ms`);
    else if (2 * renew > window) issue([...at, 'renewIntervalMs'], `${renew} ms leaves fewer than two renewals in the leader's validity window (takeoverAfterMs − marginMs = ${window} ms)`);
    else if (window <= c.store.etcdElectionTimeoutMs + renew) {
      issue([...at, 'takeoverAfterMs'], `takeoverAfterMs − marginMs (${window} ms) must exceed etcd's election timeout (store.etcdElectionTimeoutMs, ${c.store.etcdElectionTimeoutMs} ms) plus one renewal interval (${renew} ms): a raft election would look like a dead leader`);
    }
  }
  for (const key of ['ingressAddress6', 'egressAddress6'] as const) {
    const have = c.firewalls.filter((f) => f[key] !== undefined);
    dup(have, (f) => f[key]!, (i) => ['firewalls', c.firewalls.indexOf(have[i]!), key], 'firewall address');
    // A per-firewall table or IPVS service needs every firewall's address, or none.
    if (have.length > 0 && have.length < c.firewalls.length) {
      c.firewalls.forEach((f, i) => {
        if (f[key] === undefined) issue(['firewalls', i, key], `missing: firewall${have.length > 1 ? 's' : ''} ${have.map((x) => x.name).join(', ')} ${have.length > 1 ? 'have' : 'has'} ${key}, so every firewall needs one`);
      });
    }
  }
  if (c.store.kind === 'etcd') storePrefixIssues(c.store.prefix ?? `/sandwich/${c.cluster}/`).forEach((m) => issue(['store', 'prefix'], m));
  c.egress.routes.forEach((r, i) => {
    if (r !== 'default' && !isIPv4(r.split('/')[0] ?? '')) issue(['egress', 'routes', i], `"${r}" is not an IPv4 prefix (IPv6 destinations go in egress.routes6)`);
  });
  c.egress.routes6.forEach((r, i) => {
    if (r !== 'default' && !isIPv6(r.split('/')[0] ?? '')) issue(['egress', 'routes6', i], `"${r}" is not an IPv6 prefix`);
  });

  const fwNames = new Set(c.firewalls.map((f) => f.name));
  const checkNames = new Set(c.checks.map((k) => k.name));
  c.firewalls.forEach((f, i) => (f.checks ?? []).forEach((k, j) => {
    if (!checkNames.has(k)) issue(['firewalls', i, 'checks', j], `unknown check "${k}"`);
  }));

  const serviceChecks = new Set<string>();
  c.services.forEach((svc, i) => {
    if (svc.family !== 'ipv4') {
      c.firewalls.forEach((f, j) => {
        if (f.ingressAddress6 === undefined) issue(['firewalls', j, 'ingressAddress6'], `service "${svc.name}" is ${svc.family}: firewall "${f.name}" needs ingressAddress6 (its IPv6 real-server address)`);
      });
    }
    (svc.checks ?? []).forEach((k, j) => {
      if (!checkNames.has(k)) issue(['services', i, 'checks', j], `unknown check "${k}"`);
      serviceChecks.add(k);
    });
  });
  if (serviceChecks.size > 0) {
    c.firewalls.forEach((f, i) => {
      if (!checksFor(c, f).some((k) => !serviceChecks.has(k.name))) {
        issue(['firewalls', i, 'checks'], `every check of firewall "${f.name}" is named in services[].checks: keep at least one check that judges the whole firewall (its egress table follows only those)`);
      }
    });
  }

  c.checks.forEach((k, i) => {
    const p = (f: string) => ['checks', i, f];
    if (k.timeoutMs >= k.intervalMs) issue(p('timeoutMs'), `timeoutMs (${k.timeoutMs}) must be less than intervalMs (${k.intervalMs})`);
    if (k.kind === 'http' && !k.url) issue(p('url'), 'http checks need a url');
    if (k.kind !== 'http' && (k.url || k.expectStatus || k.bodyMatch)) issue(p('kind'), `url, expectStatus and bodyMatch are for http checks, not ${k.kind}`);
    if (k.kind !== 'icmp' && k.icmpEngine) issue(p('icmpEngine'), `icmpEngine is for icmp checks, not ${k.kind}`);
    if (k.lossWindow && k.lossWindow.upPct >= k.lossWindow.downPct) issue(p('lossWindow'), `upPct (${k.lossWindow.upPct}) must be below downPct (${k.lossWindow.downPct}), or a firewall could be judged down and up by the same window`);
    if (k.kind === 'tcp' && !k.port) issue(p('port'), 'tcp checks need a port');
    if (k.scope === 'path' && k.kind !== 'http' && !k.target) issue(p('target'), 'path checks need a target beyond the firewalls');
    if (k.scope === 'leg' && k.target) issue(p('target'), 'leg checks target the firewall itself; remove target');
    const host = k.kind === 'http' && k.url ? urlHost(k.url) : k.target;
    if (host !== undefined && k.scope === 'path') {
      if (k.family === 'ipv6' && isIPv4(host)) issue(p(k.kind === 'http' ? 'url' : 'target'), `${host} is an IPv4 address but the check's family is ipv6`);
      if (k.family !== 'ipv6' && isIPv6(host)) issue(p(k.kind === 'http' ? 'url' : 'target'), `${host} is an IPv6 address: set family: ipv6`);
    }
    if (k.family === 'ipv6' && k.scope === 'leg') {
      const key = k.from === 'ingress' ? 'ingressAddress6' : 'egressAddress6';
      c.firewalls.filter((f) => checksFor(c, f).includes(k)).forEach((f) => {
        if (f[key] === undefined) issue(p('family'), `IPv6 ${k.from} leg check: firewall "${f.name}" has no ${key}`);
      });
    }
    if (c.timing.observationStaleMs < 2 * (k.intervalMs + k.timeoutMs))
      issue(['timing', 'observationStaleMs'], `observationStaleMs (${c.timing.observationStaleMs}) must be at least 2 × (intervalMs + timeoutMs) of check "${k.name}" (${2 * (k.intervalMs + k.timeoutMs)})`);
  });

  const usedTables = new Map<number, string>();
  c.firewalls.forEach((f) => usedTables.set(f.table, `firewall ${f.name}'s egress table`));
  c.services.forEach((s) => usedTables.set(s.localTable, `service ${s.name}'s local table`));

  c.nodes.forEach((n, i) => {
    const needsProbe = c.checks.some((k) => k.from === n.role);
    if (!needsProbe) return;
    if (!n.probe) {
      issue(['nodes', i, 'probe'], `node "${n.name}" runs ${n.role} checks and needs probe: { interface, sources }`);
      return;
    }
    if (!(n.probe.interface in n.interfaces)) issue(['nodes', i, 'probe', 'interface'], `"${n.probe.interface}" is not one of this node's interfaces (${Object.keys(n.interfaces).join(', ') || 'none'})`);
    for (const f of c.firewalls) {
      if (!(f.name in n.probe.sources)) issue(['nodes', i, 'probe', 'sources'], `missing source address for firewall "${f.name}"`);
    }
    for (const k of Object.keys(n.probe.sources)) {
      if (!fwNames.has(k)) issue(['nodes', i, 'probe', 'sources', k], `unknown firewall "${k}"`);
    }
    dup(Object.entries(n.probe.sources), ([, a]) => a, () => ['nodes', i, 'probe', 'sources'], 'probe source address');
    const needs6 = c.checks.some((k) => k.from === n.role && k.family === 'ipv6');
    const s6 = n.probe.sources6 ?? {};
    if (needs6) {
      for (const f of c.firewalls) {
        if (!(f.name in s6)) issue(['nodes', i, 'probe', 'sources6'], `missing IPv6 source address for firewall "${f.name}" (node "${n.name}" runs IPv6 ${n.role} checks)`);
      }
    }
    for (const k of Object.keys(s6)) {
      if (!fwNames.has(k)) issue(['nodes', i, 'probe', 'sources6', k], `unknown firewall "${k}"`);
      const f = c.firewalls.find((x) => x.name === k);
      const via = n.role === 'ingress' ? 'ingressAddress6' : 'egressAddress6';
      if (f && f[via] === undefined) issue(['nodes', i, 'probe', 'sources6', k], `IPv6 probes through firewall "${k}" need its ${via} (their next hop)`);
    }
    dup(Object.entries(s6), ([, a]) => a, () => ['nodes', i, 'probe', 'sources6'], 'probe source address');
    c.firewalls.forEach((f, j) => {
      const t = n.probe!.tableBase + j;
      const other = usedTables.get(t);
      if (t >= 253 && t <= 255) issue(['nodes', i, 'probe', 'tableBase'], `probe table ${t} for ${f.name} is a reserved table (253 default, 254 main, 255 local): lower tableBase or raise it above 255`);
      if (other && n.role === 'egress' && other.startsWith('firewall')) issue(['nodes', i, 'probe', 'tableBase'], `probe table ${t} for ${f.name} collides with ${other}`);
      if (other && n.role === 'ingress' && other.startsWith('service')) issue(['nodes', i, 'probe', 'tableBase'], `probe table ${t} for ${f.name} collides with ${other}`);
    });
  });

  c.vipGroups.forEach((g, i) => {
    const holders = c.nodes.filter((n) => n.role === g.role);
    if (holders.length === 0) issue(['vipGroups', i, 'role'], `no ${g.role} node can hold VIP group "${g.name}"`);
    g.addresses.forEach((a, j) => holders.forEach((n) => {
      if (!(a.interface in n.interfaces)) issue(['vipGroups', i, 'addresses', j, 'interface'], `node "${n.name}" has no interface "${a.interface}"`);
    }));
    if (g.mode === 'leader') {
      if (g.addresses.length === 0) issue(['vipGroups', i, 'addresses'], `VIP group "${g.name}" (mode leader) needs at least one address`);
      if (g.paths !== undefined) issue(['vipGroups', i, 'paths'], `paths are for mode active-active; VIP group "${g.name}" is mode leader (set mode: active-active, or remove paths)`);
      return;
    }
    // active-active: no shared address (the router's ECMP route names each node's path address).
    if (g.addresses.length > 0) issue(['vipGroups', i, 'addresses'], `VIP group "${g.name}" is active-active: it has no address moving between nodes; give each node its own address under paths, and route the service prefix to them on the upstream router (docs/active-active.md)`);
    const paths = g.paths ?? [];
    if (paths.length === 0) issue(['vipGroups', i, 'paths'], `VIP group "${g.name}" is active-active and needs paths: one address per ${g.role} node (${holders.map((n) => n.name).join(', ') || 'none'})`);
    paths.forEach((p, j) => {
      const n = c.nodes.find((x) => x.name === p.node);
      if (!n) issue(['vipGroups', i, 'paths', j, 'node'], `unknown node "${p.node}" (known: ${c.nodes.map((x) => x.name).join(', ')})`);
      else if (n.role !== g.role) issue(['vipGroups', i, 'paths', j, 'node'], `node "${p.node}" is an ${n.role} node; VIP group "${g.name}" belongs to ${g.role} nodes`);
      else if (!(p.interface in n.interfaces)) issue(['vipGroups', i, 'paths', j, 'interface'], `node "${n.name}" has no interface "${p.interface}" (its interfaces: ${Object.keys(n.interfaces).join(', ') || 'none'})`);
    });
    if (paths.length > 0) {
      holders.forEach((n) => {
        if (!paths.some((p) => p.node === n.name)) issue(['vipGroups', i, 'paths'], `${g.role} node "${n.name}" has no path address in active-active VIP group "${g.name}" (every ${g.role} node needs one)`);
      });
    }
  });
  for (const n of c.nodes.filter((x) => x.role === 'egress')) {
    const i = c.nodes.indexOf(n);
    for (const key of ['firewallInterface', 'serverInterface'] as const) {
      if (!(c.egress[key] in n.interfaces)) issue(['nodes', i, 'interfaces'], `egress node "${n.name}" needs interface "${c.egress[key]}" (egress.${key})`);
    }
  }
  if (c.services.length > 0 && !c.nodes.some((n) => n.role === 'ingress')) issue(['services'], 'services are set up on ingress nodes, and there is none');
}

function urlHost(url: string): string | undefined {
  try {
    const h = new URL(url).hostname;
    return h.startsWith('[') ? h.slice(1, -1) : h;
  } catch {
    return undefined;
  }
}

/**
 * The first segment of every key the etcd store writes under its prefix (controller/etcd-store.ts).
 * A prefix containing one of them as a segment could nest inside another sandwich's range for that
 * kind (/x/ and /x/drain/y/: the outer one would read the inner one's keys as its drains).
 */
export const STORE_KEY_KINDS = ['leader', 'observations', 'desired', 'drain', 'maintenance', 'switchover', 'status'] as const;

/**
 * Why a store prefix is refused, or []. The store appends "/", so prefixes that are string prefixes of each
 * other (/sandwich/a, /sandwich/ab) never overlap. Prefixes that nest as paths (/sandwich/, /sandwich/a/)
 * do overlap: each sandwich sharing an etcd needs a prefix that is no path prefix of another's (the default
 * /sandwich/<cluster>/ with distinct cluster names); a config alone cannot see the others, so it refuses
 * only what makes nesting harmful: a segment named like one of the store's key kinds.
 */
export function storePrefixIssues(prefix: string): string[] {
  const body = prefix.replace(/^\//, '').replace(/\/$/, '');
  if (body === '') return [`"${prefix}" is the whole keyspace: use a prefix such as /sandwich/<cluster>/`];
  const out: string[] = [];
  for (const seg of body.split('/')) {
    if (seg === '' || seg === '.' || seg === '..') out.push(`"${prefix}" has an empty, "." or ".." segment`);
    else if ((STORE_KEY_KINDS as readonly string[]).includes(seg)) {
      out.push(`"${prefix}" has a segment "${seg}", a key kind the store writes under every prefix (${STORE_KEY_KINDS.join(', ')}): a sandwich nested there would read another's keys${prefix.startsWith('/sandwich/') ? '; rename the cluster or set store.prefix' : ''}`);
    }
  }
  return [...new Set(out)];
}

export interface ConfigIssue {
  path: string;
  message: string;
  line?: number;
}

export class ConfigError extends Error {
  constructor(readonly file: string, readonly issues: ConfigIssue[]) {
    super(`${file}: ${issues.length} error${issues.length === 1 ? '' : 's'}\n` + issues.map((i) => `  ${formatIssue(i)}`).join('\n'));
    this.name = 'ConfigError';
  }
}

export function formatIssue(i: ConfigIssue): string {
  return `${i.path || '(top)'}: ${i.message}${i.line ? ` (line ${i.line})` : ''}`;
}

/** Parse and validate YAML text; throws ConfigError listing every problem. */
export function parseConfig(text: string, file = '<config>'): Config {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(file, doc.errors.map((e) => ({ path: '', message: e.message.split('\n')[0] ?? e.message, line: lc.linePos(e.pos[0]).line })));
  }
  const raw: unknown = doc.toJS();
  const result = ConfigSchema.safeParse(raw ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues.map((iss) => {
    const path = iss.path.map(String);
    const keys = 'keys' in iss && Array.isArray(iss.keys) ? iss.keys as string[] : [];
    const full = keys.length ? [...path, keys[0]!] : path;
    return { path: path.join('.'), message: iss.message, line: lineOf(doc, lc, full) };
  });
  throw new ConfigError(file, issues);
}

export function loadConfig(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [{ path: '', message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}` }]);
  }
  return parseConfig(text, file);
}

function lineOf(doc: ReturnType<typeof parseDocument>, lc: LineCounter, path: string[]): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const keyPath = path.slice(0, n).map((p) => (/^\d+$/.test(p) ? Number(p) : p));
    const node = n === 0 ? doc.contents : doc.getIn(keyPath, true);
    if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
    // Unknown keys: find the key node itself in its parent map.
    if (n === path.length && n > 0) {
      const parent = doc.getIn(keyPath.slice(0, -1), true) as { items?: { key?: { value?: unknown; range?: [number, number, number] } }[] } | undefined;
      const item = parent?.items?.find((it) => it.key?.value === keyPath[keyPath.length - 1]);
      if (item?.key?.range) return lc.linePos(item.key.range[0]).line;
    }
  }
  return undefined;
}

/** JSON Schema for editors (yaml-language-server). */
export function configJsonSchema(): unknown {
  return z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' });
}

// --- derived helpers used across the code base ---

export function nodeByName(c: Config, node: string): NodeConfig {
  const n = c.nodes.find((x) => x.name === node);
  if (!n) throw new ConfigError('<args>', [{ path: 'node', message: `unknown node "${node}" (known: ${c.nodes.map((x) => x.name).join(', ')})` }]);
  return n;
}

export function checksFor(c: Config, fw: FirewallConfig): CheckConfig[] {
  return fw.checks ? c.checks.filter((k) => fw.checks!.includes(k.name)) : c.checks;
}

/** The active-active VIP groups a node takes part in, with its own path addresses in each. */
export function pathGroupsOf(c: Config, node: NodeConfig): { group: VipGroupConfig; paths: VipPathConfig[] }[] {
  return c.vipGroups
    .filter((g) => g.mode === 'active-active' && g.role === node.role)
    .map((g) => ({ group: g, paths: (g.paths ?? []).filter((p) => p.node === node.name) }));
}

/** Probe routing table for firewall index i on a node. */
export function probeTable(n: NodeConfig, fwIndex: number): number {
  return (n.probe?.tableBase ?? 200) + fwIndex;
}

/** The event log file of one node. */
export function eventLogPath(c: Config, node: string): string {
  return c.events.file.replaceAll('{node}', node);
}

/** Every node's event log file (one path unless events.file contains "{node}"). */
export function eventLogPaths(c: Config): string[] {
  return [...new Set(c.nodes.map((n) => eventLogPath(c, n.name)))];
}
