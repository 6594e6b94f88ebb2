// `sandwich status`: one view of leaders, verdicts, observations and each node's applied kernel state.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config, Role } from './config';
import type { CoordinationStore, LeaderRecord, NodeStatus } from './store';
import type { Desired, Drain, Observation } from './types';

export interface StatusReport {
  cluster: string;
  source: 'store' | 'status-files';
  now: string;
  leaders: Partial<Record<Role, LeaderRecord | null>>;
  desired: Desired | null;
  drains: Drain[];
  observations: Observation[];
  nodes: (NodeStatus & { stale: boolean })[];
  /** The config's VIP groups: mode and the nodes that may hold them (absent in reports built by hand). */
  vipGroups?: { name: string; role: Role; mode: 'leader' | 'active-active'; nodes: string[] }[];
}

interface StatusFile extends NodeStatus {
  leader?: boolean;
  desired?: Desired | null;
  observations?: Observation[];
}

function readStatusFiles(dir: string): StatusFile[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.status.json'))
    .flatMap((f) => {
      try {
        return [JSON.parse(readFileSync(join(dir, f), 'utf8')) as StatusFile];
      } catch {
        return [];
      }
    });
}

function vipGroupsOf(config: Config): NonNullable<StatusReport['vipGroups']> {
  return config.vipGroups.map((g) => ({
    name: g.name, role: g.role, mode: g.mode,
    nodes: g.mode === 'active-active' ? [...new Set((g.paths ?? []).map((p) => p.node))] : config.nodes.filter((n) => n.role === g.role).map((n) => n.name),
  }));
}

export async function collectStatus(config: Config, openStore: (c: Config) => Promise<CoordinationStore>): Promise<StatusReport> {
  const now = Date.now();
  const stale = (t: number) => now - t > config.timing.observationStaleMs;
  if (config.store.kind === 'memory') {
    // Standalone: the daemon's status file is the only source.
    const files = readStatusFiles(config.runtimeDir);
    const leaders: StatusReport['leaders'] = {};
    for (const f of files) if (f.leader) leaders[f.role] = { role: f.role, node: f.node, since: f.updatedAt };
    const desired = files.map((f) => f.desired).find((d): d is Desired => !!d) ?? null;
    return {
      cluster: config.cluster, source: 'status-files', now: new Date(now).toISOString(), leaders, desired, drains: [], vipGroups: vipGroupsOf(config),
      observations: files.flatMap((f) => f.observations ?? []),
      nodes: files.map(({ leader: _l, desired: _d, observations: _o, ...s }) => ({ ...s, stale: stale(s.updatedAt) })),
    };
  }
  const store = await openStore(config);
  try {
    const [ingress, egress, desired, drains, observations, nodes] = await Promise.all([
      store.getLeader('ingress'), store.getLeader('egress'), store.getDesired(), store.listDrains(), store.listObservations(), store.listNodeStatus(),
    ]);
    return {
      cluster: config.cluster, source: 'store', now: new Date(now).toISOString(), leaders: { ingress, egress }, desired: desired?.value ?? null,
      drains, observations, nodes: nodes.map((s) => ({ ...s, stale: stale(s.updatedAt) })), vipGroups: vipGroupsOf(config),
    };
  } finally {
    await store.close();
  }
}

function time(t: number): string {
  return new Date(t).toISOString().slice(11, 23);
}

export function formatStatus(s: StatusReport): string {
  const out: string[] = [];
  out.push(`cluster ${s.cluster}  (${s.source}, ${s.now})`);
  for (const role of ['ingress', 'egress'] as const) {
    if (!(role in s.leaders)) continue;
    const l = s.leaders[role];
    const holder = s.nodes.find((n) => n.role === role && n.holdsVips)?.node ?? 'nobody';
    const groups = s.vipGroups?.filter((g) => g.role === role) ?? [];
    const leaderGroups = groups.filter((g) => g.mode === 'leader');
    const vip = groups.length === 0 || leaderGroups.length > 0 ? `; VIP group${leaderGroups.length > 1 ? 's' : ''} held by ${holder}` : '';
    out.push(`${role} leader: ${l ? `${l.node} since ${time(l.since)}` : 'none'}${vip}`);
    // Active-active groups: every node holds its own path while healthy (docs/active-active.md).
    for (const g of groups.filter((x) => x.mode === 'active-active')) {
      const on = s.nodes.filter((n) => n.role === role && n.paths?.held && !n.stale).map((n) => n.node);
      out.push(`${role} VIP group ${g.name}: active-active, paths held by ${on.length ? on.join(', ') : 'nobody'} (of ${g.nodes.join(', ')})`);
    }
  }
  out.push('');
  out.push(s.desired ? `desired revision ${s.desired.revision} (decided by ${s.desired.decidedBy} at ${time(s.desired.decidedAt)})` : 'desired: none yet');
  const fwNames = s.desired ? Object.keys(s.desired.firewalls) : [...new Set(s.observations.map((o) => o.firewall))];
  for (const fw of fwNames) {
    const d = s.desired?.firewalls[fw];
    const drain = s.drains.find((x) => x.firewall === fw);
    out.push(`  ${fw.padEnd(10)} ${(d?.state ?? '?').padEnd(9)} weight ${String(d?.weight ?? '?').padEnd(5)} egress via ${d?.egressVia ?? '?'}${drain ? `  [drained by ${drain.by}: ${drain.reason}]` : ''}`);
    if (d) out.push(`             ${d.reason}`);
    for (const o of s.observations.filter((x) => x.firewall === fw).sort((a, b) => a.check.localeCompare(b.check) || a.node.localeCompare(b.node))) {
      out.push(`      ${o.check.padEnd(14)} from ${o.node.padEnd(8)} ${o.state.padEnd(7)} since ${time(o.since)}${o.rttMs !== null ? `  rtt ${o.rttMs.toFixed(1)} ms` : ''}${o.lastError ? `  (${o.lastError})` : ''}`);
    }
    // Services judged by checks of their own (docs/services-ipv6.md).
    for (const [svc, entries] of Object.entries(s.desired?.services ?? {})) {
      const e = entries[fw];
      if (e) out.push(`      service ${svc}: ${e.state} weight ${e.weight}${e.state !== 'up' || e.failOpen ? ` — ${e.reason}` : ''}`);
    }
  }
  out.push('');
  out.push('nodes:');
  for (const n of s.nodes) {
    const sync = s.desired && n.appliedRevision === s.desired.revision ? 'in sync' : `applied revision ${n.appliedRevision ?? 'none'}`;
    out.push(`  ${n.node.padEnd(8)} ${n.role.padEnd(8)} ${n.lifecycle.padEnd(9)} ${sync}${n.holdsVips ? ', holds VIPs' : ''}${typeof n.fenceRemainingMs === 'number' ? `, ARP fence ${n.fenceRemainingMs} ms left at ${time(n.updatedAt)}` : ''}${n.stale ? ', STALE' : ''}${n.drift.length ? `, drift corrected: ${n.drift.join('; ')}` : ''}`);
    if (n.paths) out.push(`           path ${n.paths.held ? 'held' : 'WITHDRAWN'}: ${n.paths.reason}`);
    if (n.applied) out.push(`           applied: ${JSON.stringify(n.applied)}`);
  }
  return out.join('\n');
}
