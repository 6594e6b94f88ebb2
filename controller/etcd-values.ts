// Validation of values read from etcd: anything another process (or a person with etcdctl) wrote
// is checked before the controller sees it. A bad value becomes a StoreDataError naming the key.
import { z } from 'zod';
import { StoreDataError } from './store';

const role = z.enum(['ingress', 'egress']);
const str = z.string().min(1);
const time = z.number().finite();
const count = z.number().int().min(0);

export const ObservationValue = z.strictObject({
  node: str,
  role,
  firewall: str,
  check: str,
  state: z.enum(['unknown', 'up', 'down']),
  since: time,
  updatedAt: time,
  streak: count,
  lastError: z.string().nullable(),
  rttMs: z.number().finite().min(0).nullable(),
});

const DesiredFirewallValue = z.strictObject({
  state: z.enum(['up', 'draining', 'down']),
  weight: count,
  egressVia: str,
  reason: z.string(),
  since: time,
  healthySince: time.nullable(),
  failOpen: z.boolean().optional(),
});

export const DesiredValue = z.strictObject({
  revision: count,
  decidedBy: str,
  decidedAt: time,
  firewalls: z.record(z.string(), DesiredFirewallValue),
  services: z.record(z.string(), z.record(z.string(), DesiredFirewallValue)).optional(),
});

export const DrainValue = z.strictObject({ firewall: str, by: z.string(), reason: z.string(), since: time });
export const MaintenanceValue = z.strictObject({ name: str, firewall: str, until: time });
/** The leader key's value; the role is the key's last segment. */
export const LeaderValue = z.strictObject({ node: str, since: time });
export const SwitchoverValue = z.strictObject({ role, to: str.nullable(), from: str, requestedBy: z.string(), at: time });
export const NodeStatusValue = z.strictObject({
  node: str,
  role,
  lifecycle: z.string(),
  updatedAt: time,
  appliedRevision: count.nullable(),
  holdsVips: z.boolean(),
  applied: z.unknown(),
  drift: z.array(z.string()),
  errors: z.array(z.string()).optional(),
  fenceRemainingMs: z.number().finite().min(0).nullable().optional(),
  paths: z.strictObject({ held: z.boolean(), reason: z.string() }).optional(),
});

/** Parses JSON bytes from `key` with `schema`; throws StoreDataError naming the key and the fault. */
export function decode<T>(key: string, bytes: Buffer, schema: z.ZodType<T>): T {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new StoreDataError(key, `not JSON (${(e as Error).message}): ${preview(bytes)}`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(value)'}: ${i.message}`).join('; ');
    throw new StoreDataError(key, `invalid value: ${issues}`);
  }
  return r.data;
}

function preview(b: Buffer): string {
  const s = b.toString('utf8');
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);
}
