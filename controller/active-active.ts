// Active-active VIP groups (docs/active-active.md): whether this node should hold its own path
// addresses, from its own view only. A pure function, like decide().
//
// Policy:
//  - Only a RUNNING controller holds its path: at start-up the first reconcile must have installed the
//    probe routing and the probes must have risen; on stop the path goes first.
//  - Only once a desired state is known: before it, this node's IPVS table may differ from the other
//    nodes' (weights from the config), and identical tables are what lets a flow change LB.
//  - Only while at least one firewall is usable *from this node*: every whole-firewall check this
//    node runs on it is up. The desired state is the same on every node and cannot tell one LB from the
//    other; this node's own probes can (its firewall-side link is down, its probe routing is broken).
//  - The store is not asked: once a desired state is known, an unreachable etcd leaves the path held
//    (fail-static, as the rest of the data path). Two LBs holding their paths is the normal state in this
//    mode, so there is no exclusivity to lose; withdrawing on etcd trouble would turn a coordination
//    outage, which usually hits both LBs at once, into a data-path outage on both.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config, NodeConfig } from './config';
import { checksFor } from './config';
import type { Observation } from './types';

/** An operator's request to withdraw this node's path while its controller keeps running (`sandwich drain-node`). */
export interface PathDrain {
  readonly by: string;
  readonly reason: string;
  readonly since: number;
}

export interface PathInput {
  readonly config: Config;
  readonly node: NodeConfig;
  /** The controller's lifecycle ('RUNNING' …) and whether it is stopping. */
  readonly lifecycle: string;
  readonly stopping: boolean;
  /** A desired state has been read from the store (the node's IPVS table follows the shared one). */
  readonly hasDesired: boolean;
  /** This node's own observations (its prober's snapshot). */
  readonly observations: readonly Observation[];
  /** `sandwich drain-node` on this host: withdraw whatever the probes say. */
  readonly drain?: PathDrain | null;
}

export interface PathVerdict {
  readonly hold: boolean;
  /** One sentence naming the node and the evidence. */
  readonly reason: string;
  /** Firewalls usable from this node, in config order. */
  readonly usable: readonly string[];
}

/** Checks named in services[].checks judge only their services; the others judge the whole firewall. */
function wholeFirewallChecks(config: Config, fw: Config['firewalls'][number], role: NodeConfig['role']) {
  const serviceOnly = new Set(config.services.flatMap((s) => s.checks ?? []));
  return checksFor(config, fw).filter((k) => k.from === role && !serviceOnly.has(k.name));
}

export function pathVerdict(i: PathInput): PathVerdict {
  const name = i.node.name;
  if (i.stopping || i.lifecycle !== 'RUNNING') return { hold: false, reason: `${name} withdraws its path: controller ${i.stopping ? 'stopping' : i.lifecycle}`, usable: [] };
  if (i.drain) return { hold: false, reason: `${name} withdraws its path: drained by ${i.drain.by} (${i.drain.reason}); \`sandwich undrain-node --node ${name}\` returns it`, usable: [] };
  if (!i.hasDesired) return { hold: false, reason: `${name} withdraws its path: no desired state read from the store yet (its IPVS table may differ from the other nodes')`, usable: [] };
  const mine = i.observations.filter((o) => o.node === name);
  const usable: string[] = [];
  const why: string[] = [];
  let judged = 0;
  for (const fw of i.config.firewalls) {
    const checks = wholeFirewallChecks(i.config, fw, i.node.role);
    if (checks.length === 0) {
      usable.push(fw.name);
      continue;
    }
    judged++;
    const bad = checks.flatMap((k) => {
      const o = mine.find((x) => x.firewall === fw.name && x.check === k.name);
      if (!o) return [`${k.name} not run yet`];
      if (o.state === 'up') return [];
      return [`${k.name} ${o.state}${o.lastError ? ` (${o.lastError})` : ''}`];
    });
    if (bad.length === 0) usable.push(fw.name);
    else why.push(`${fw.name}: ${bad.join(', ')}`);
  }
  const total = i.config.firewalls.length;
  if (usable.length === 0) return { hold: false, reason: `${name} withdraws its path: no firewall usable from ${name} (${why.join('; ')})`, usable };
  const evidence = judged === 0 ? `no ${i.node.role} checks judge the firewalls` : `${usable.length} of ${total} firewalls usable from ${name} (${usable.join(', ')})`;
  return { hold: true, reason: `${name} holds its path: ${evidence}`, usable };
}

// The drain is a file in runtimeDir on the node's own host: it works with etcd down, and only someone on
// the host (or with its API) can take a node's path away.
export function pathDrainFile(config: Config, node: string): string {
  return join(config.runtimeDir, `${node}.path-drain.json`);
}

/** The drain request, or null (no file, or one that cannot be read: a torn or foreign file never withdraws). */
export function readPathDrain(file: string): PathDrain | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const o = JSON.parse(text) as Partial<PathDrain>;
    return { by: typeof o.by === 'string' ? o.by : 'operator', reason: typeof o.reason === 'string' ? o.reason : 'no reason given', since: typeof o.since === 'number' ? o.since : 0 };
  } catch {
    return { by: 'operator', reason: `unreadable drain file ${file}`, since: 0 };
  }
}

export function writePathDrain(file: string, d: PathDrain): void {
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(`${file}.tmp`, JSON.stringify(d));
  renameSync(`${file}.tmp`, file);
}

/** True when there was a drain to remove. */
export function removePathDrain(file: string): boolean {
  try {
    readFileSync(file);
  } catch {
    return false;
  }
  rmSync(file, { force: true });
  return true;
}
