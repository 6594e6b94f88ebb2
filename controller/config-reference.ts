// Generates docs/config-reference.md from the zod schema (types, defaults, limits) and the doc
// comments in controller/config.ts (descriptions). Run: scripts/gen-config-reference.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configJsonSchema } from './config';

interface JsonSchema {
  type?: string;
  const?: unknown;
  enum?: unknown[];
  default?: unknown;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  propertyNames?: JsonSchema;
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
}

interface SchemaSource {
  /** Const name → property → doc comment. */
  docs: Map<string, Map<string, string>>;
  /** Const name → property → the schema const its initializer refers to. */
  refs: Map<string, Map<string, string>>;
}

/** Doc comments and schema references from config.ts (its style: `/** … *\/` above `key: initializer`). */
export function readSchemaSource(text: string): SchemaSource {
  const docs = new Map<string, Map<string, string>>();
  const refs = new Map<string, Map<string, string>>();
  const parts = text.split(/^(?:export )?const (\w+) = /m);
  for (let i = 1; i + 1 < parts.length; i += 2) {
    const name = parts[i]!;
    const body = parts[i + 1]!;
    const d = new Map<string, string>();
    for (const m of body.matchAll(/\/\*\*([\s\S]*?)\*\/\s*\n\s*(\w+):/g)) {
      if (!d.has(m[2]!)) d.set(m[2]!, m[1]!.split('\n').map((l) => l.replace(/^\s*\*?\s?/, '').trim()).join(' ').trim());
    }
    const r = new Map<string, string>();
    for (const m of body.matchAll(/^\s*(\w+): (.*)$/gm)) {
      const ref = /\b([A-Z]\w*Schema)\b/.exec(m[2]!);
      if (ref && !r.has(m[1]!)) r.set(m[1]!, ref[1]!);
    }
    docs.set(name, d);
    refs.set(name, r);
  }
  return { docs, refs };
}

/** Descriptions for fields config.ts has no doc comment for (config.ts comments win). */
const EXTRA_DOCS: Record<string, Record<string, string>> = {
  ConfigObject: {
    cluster: 'Name of this sandwich; the etcd key prefix defaults to /sandwich/<cluster>/.',
    store: 'Where nodes coordinate: etcd (production) or memory (one standalone node).',
    timing: 'Loop periods and timeouts.',
    policy: 'What decide() does when firewalls fail.',
    nodes: 'Every controller host: load balancers (ingress) and egress routers.',
    firewalls: 'The stateful firewalls between the two sides.',
    checks: 'Health checks run by the nodes through each firewall.',
    services: 'IPVS fwmark services on the ingress nodes, each with its own mark (docs/services-ipv6.md).',
    ipvsSysctls: 'net.ipv4.vs.* settings on the ingress nodes.',
    vipGroups: 'Addresses held by the leader of a role (moved together, announced by gratuitous ARP or, for IPv6, unsolicited neighbour advertisements), or, in mode active-active, one path address per node held while that node is healthy (docs/active-active.md).',
    egress: 'Egress router policy routing: replies go back through the firewall the flow came in by.',
    events: 'The JSON-lines event log (rotated by size by the daemon itself).',
  },
  StoreSchema: {
    kind: '"etcd" or "memory".',
    endpoints: 'Client URLs of the etcd members; https:// with tls.',
    prefix: 'Key prefix; default /sandwich/<cluster>/. An etcd user limited to it is enough (deploy/etcd-tls).',
    callTimeoutMs: 'Deadline of every etcd call, retries included.',
    leaseTtlS: 'Session lease TTL: leadership lapses this long after the last renewal (minus a margin).',
    auth: 'etcd user name and a file holding its password (never logged).',
    tls: 'CA, and client certificate and key for mTLS.',
    username: 'etcd user.',
    passwordFile: 'File holding the password (first line).',
    caFile: 'CA certificate that signed the etcd server certificates.',
    certFile: 'Client certificate (mTLS).',
    keyFile: 'Client key (mTLS).',
  },
  NodeSchema: { name: 'Node name, as given to `sandwich run --node`.', role: 'ingress: an IPVS-DR load balancer; egress: an egress router.' },
  FirewallSchema: {
    name: 'Firewall name.', ingressAddress: 'Its address on the load balancer side (IPVS real server, next hop).',
    egressAddress: 'Its address on the egress router side (next hop for replies).', egressMac: 'Its MAC on the egress side.',
    weight: 'IPVS weight while in service.',
  },
  CheckSchema: {
    name: 'Check name.', kind: 'icmp, tcp or http.', port: 'TCP port (tcp checks).', expectStatus: 'Accepted HTTP status codes (default 2xx/3xx).',
    bodyMatch: 'Regular expression the HTTP body must match.', intervalMs: 'Time between probes.', timeoutMs: 'Deadline of one probe.',
    rise: 'Successes in a row to turn up.', fall: 'Failures in a row to turn down.',
  },
  GarpSchema: { count: 'Frames per burst and address (gratuitous ARPs, or unsolicited neighbour advertisements for IPv6), 100 ms apart.' },
  VipGroupSchema: { name: 'Group name.', role: 'Which role\'s nodes hold the group (its leader, or in mode active-active each node).', address: 'Address with prefix length.', interface: 'Logical interface (a key of the nodes\' interfaces) it goes on.', addresses: 'Address with prefix length, and the logical interface it goes on.', garp: 'Announcements after takeover: bursts of gratuitous ARPs (IPv4) and unsolicited neighbour advertisements (IPv6) sent by the controller; without its packet-socket addon, arping, and IPv6 addresses re-added to announce again.' },
  ServiceSchema: { name: 'Service name.', fwmark: 'Firewall mark of the IPVS service (set by the LB\'s iptables/nft rules).', scheduler: 'sh or mh (consistent: a client keeps its firewall).' },
  SysctlSchema: { expireNodestConn: 'net.ipv4.vs.expire_nodest_conn', expireQuiescentTemplate: 'net.ipv4.vs.expire_quiescent_template', sloppyTcp: 'net.ipv4.vs.sloppy_tcp' },
  EventsSchema: { maxSizeBytes: 'Rotate when the file would grow past this size.', maxFiles: 'Files kept, the current one included.' },
};

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const code = (v: unknown) => `\`${cell(typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v))}\``;

function variants(s: JsonSchema): JsonSchema[] | null {
  return s.oneOf ?? s.anyOf ?? null;
}

function isObject(s: JsonSchema): boolean {
  return !!s.properties;
}

function typeOf(s: JsonSchema): string {
  if (s.const !== undefined) return code(s.const);
  if (s.enum) return s.enum.map(code).join(' \\| ');
  const v = variants(s);
  if (v) return v.map(typeOf).join(' or ');
  if (s.type === 'array') return `list of ${s.items ? typeOf(s.items) : 'anything'}`;
  if (s.type === 'object' && !s.properties && typeof s.additionalProperties === 'object') return `map: name → ${typeOf(s.additionalProperties)}`;
  if (isObject(s)) return 'object';
  return s.type ?? 'any';
}

function limits(s: JsonSchema): string {
  const out: string[] = [];
  if (s.minimum !== undefined && s.maximum !== undefined) out.push(`${s.minimum} – ${s.maximum}`);
  else if (s.minimum !== undefined) out.push(`≥ ${s.minimum}`);
  else if (s.maximum !== undefined) out.push(`≤ ${s.maximum}`);
  if (s.minLength !== undefined && s.minLength > 1) out.push(`length ≥ ${s.minLength}`);
  if (s.maxLength !== undefined) out.push(`length ≤ ${s.maxLength}`);
  if (s.minItems !== undefined) out.push(`at least ${s.minItems}`);
  if (s.pattern) out.push(`matches \`${cell(s.pattern)}\``);
  if (s.format) out.push(s.format);
  if (s.type === 'array' && s.items && !isObject(s.items)) {
    const inner = limits(s.items);
    if (inner) out.push(`each ${inner}`);
  }
  return out.join('; ');
}

/** config.ts next to this file (ts-node/jest) or in the source tree (dist/controller/…). */
function configSourcePath(): string {
  const candidates = [join(__dirname, 'config.ts'), join(__dirname, '..', '..', 'controller', 'config.ts')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`config-reference: cannot find controller/config.ts (looked at ${candidates.join(', ')})`);
  return found;
}

/** The Markdown reference. */
export function configReference(source = readFileSync(configSourcePath(), 'utf8')): string {
  const src = readSchemaSource(source);
  const root = configJsonSchema() as JsonSchema;
  const out: string[] = [
    '# Configuration reference',
    '',
    '<!-- Generated by scripts/gen-config-reference from controller/config.ts; do not edit by hand. -->',
    '',
    'One YAML file describes the whole sandwich; every node reads the same file (`/etc/sandwich/config.yaml`',
    'by default, or `SANDWICH_CONFIG`, or `--config`). `sandwich check-config FILE` validates it and prints',
    'every problem as `path: message (line N)`; `sandwich schema` prints the JSON Schema for editors.',
    'Besides the per-field rules below, check-config cross-checks the file: unique names, addresses, marks',
    'and tables; checks named by firewalls exist; every node that runs checks has a probe source per',
    'firewall; VIP interfaces exist on every node of the role; `timeoutMs < intervalMs`; and',
    '`observationStaleMs ≥ 2 × (intervalMs + timeoutMs)` of every check.',
    '',
    'Durations are in milliseconds (`…Ms`) or seconds (`…S`) as their names say.',
    '',
  ];
  const sections: { title: string; schema: JsonSchema; constName: string; required: boolean }[] = [];
  const table = (path: string, s: JsonSchema, constName: string) => {
    out.push(`## \`${path}\``, '');
    const head = sections.length;
    const rows: string[] = ['| key | type | required | default | limits | description |', '|---|---|---|---|---|---|'];
    for (const [key, child] of Object.entries(s.properties ?? {})) {
      const required = (s.required ?? []).includes(key) && child.default === undefined;
      const childConst = src.refs.get(constName)?.get(key) ?? constName;
      const doc = src.docs.get(constName)?.get(key) ?? EXTRA_DOCS[constName]?.[key] ?? '';
      const dflt = child.default !== undefined && !(typeof child.default === 'object' && child.default !== null && !Array.isArray(child.default)) ? code(child.default) : child.default !== undefined ? '(see below)' : '';
      const sub = `${path === '(top level)' ? '' : `${path}.`}${key}`;
      let type = typeOf(child);
      const v = variants(child);
      if (v && v.every(isObject)) {
        v.forEach((variant, i) => {
          const kind = Object.entries(variant.properties ?? {}).find(([, p]) => p.const !== undefined);
          sections.splice(head + i, 0, { title: kind ? `${sub} (${kind[0]}: ${JSON.stringify(kind[1].const)})` : `${sub} (variant ${i + 1})`, schema: variant, constName: childConst, required });
        });
        type = v.map((x) => { const k = Object.entries(x.properties ?? {}).find(([, p]) => p.const !== undefined); return k ? `object (${k[0]} ${code(k[1].const)})` : 'object'; }).join(' or ');
      } else if (isObject(child)) {
        sections.push({ title: sub, schema: child, constName: childConst, required });
      } else if (child.type === 'array' && child.items && isObject(child.items)) {
        sections.push({ title: `${sub}[]`, schema: child.items, constName: childConst, required });
        type = 'list of objects';
      }
      rows.push(`| \`${key}\` | ${type} | ${required ? 'yes' : ''} | ${dflt} | ${limits(child)} | ${cell(doc)} |`);
    }
    out.push(...rows, '');
  };
  table('(top level)', root, 'ConfigObject');
  while (sections.length > 0) {
    const s = sections.shift()!;
    table(s.title, s.schema, s.constName);
  }
  return `${out.join('\n').trimEnd()}\n`;
}

/** scripts/gen-config-reference calls this with the output path. */
if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: config-reference.js OUTPUT.md\n');
    process.exitCode = 2;
  } else {
    writeFileSync(file, configReference());
  }
}
