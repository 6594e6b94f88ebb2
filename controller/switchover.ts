// Manual switchover: request → the leader checks the target → releases the VIP group → resigns → the target takes over.
import type { Config, Role } from './config';
import type { CoordinationStore } from './store';

export class SwitchoverRefused extends Error {
  override name = 'UsageError';
}

/**
 * Why `target` cannot take over `role` now, or null when it can: it must be a running node of
 * that role whose status is fresh and whose own probes see at least one firewall fully healthy.
 */
export async function targetProblem(config: Config, store: CoordinationStore, role: Role, target: string, now = Date.now()): Promise<string | null> {
  const node = config.nodes.find((n) => n.name === target);
  if (!node) return `unknown node "${target}" (known: ${config.nodes.map((n) => n.name).join(', ')})`;
  if (node.role !== role) return `${target} is an ${node.role} node, not ${role}`;
  const status = (await store.listNodeStatus()).find((s) => s.node === target);
  if (!status) return `${target} is not running (no status in the store)`;
  if (status.lifecycle !== 'RUNNING') return `${target} is ${status.lifecycle}`;
  if (now - status.updatedAt > config.timing.observationStaleMs) return `${target}'s status is ${Math.round((now - status.updatedAt) / 1000)} s old`;
  const mine = (await store.listObservations()).filter((o) => o.node === target && now - o.updatedAt <= config.timing.observationStaleMs);
  if (mine.length === 0) return `${target} has no fresh probe results`;
  const healthy = config.firewalls.filter((f) => {
    const obs = mine.filter((o) => o.firewall === f.name);
    return obs.length > 0 && obs.every((o) => o.state === 'up');
  });
  if (healthy.length === 0) return `${target} sees no healthy firewall path`;
  return null;
}

/** Files the request and waits (bounded) for the leadership to move. Returns a sentence for the operator. */
export async function requestSwitchover(config: Config, store: CoordinationStore, role: Role, to: string | null, by: string, waitMs = 10_000): Promise<string> {
  const leader = await store.getLeader(role);
  if (!leader) throw new SwitchoverRefused(`no ${role} leader at the moment; nothing to switch over`);
  if (to === leader.node) throw new SwitchoverRefused(`${to} is already the ${role} leader`);
  const candidates = to ? [to] : config.nodes.filter((n) => n.role === role && n.name !== leader.node).map((n) => n.name);
  if (candidates.length === 0) throw new SwitchoverRefused(`no other ${role} node to switch over to`);
  const problems: string[] = [];
  let ok: string | null = null;
  for (const c of candidates) {
    const p = await targetProblem(config, store, role, c);
    if (p === null) { ok = c; break; }
    problems.push(p);
  }
  if (!ok) throw new SwitchoverRefused(`refused: ${problems.join('; ')}`);
  const started = performance.now();
  await store.putSwitchover({ role, to: ok, from: leader.node, requestedBy: by, at: Date.now() });
  const deadline = started + waitMs;
  while (performance.now() < deadline) {
    const now = await store.getLeader(role);
    if (now && now.node !== leader.node) return `${role} leadership moved from ${leader.node} to ${now.node} in ${Math.round(performance.now() - started)} ms`;
    await new Promise((r) => setTimeout(r, 20));
  }
  await store.deleteSwitchover(role).catch(() => undefined);
  const last = await store.getLeader(role).catch(() => leader);
  if (last === null) {
    // The leader acted on the request (it resigned for the target, which it keeps honouring); only the takeover is late.
    throw new SwitchoverRefused(`${leader.node} released ${role} leadership, but no new leader within ${waitMs} ms; the takeover continues (see \`sandwich status\`)`);
  }
  if (last.node !== leader.node) return `${role} leadership moved from ${leader.node} to ${last.node} in ${Math.round(performance.now() - started)} ms`;
  throw new SwitchoverRefused(`${role} leadership did not move from ${leader.node} within ${waitMs} ms; request withdrawn`);
}
