// Which probes a node runs: one job per (firewall, check run from the node's role).
import { checksFor, nodeByName, type CheckConfig, type Config, type Role } from '../controller/config';

export type ProbeKind = CheckConfig['kind'];

export interface ProbeJob {
  /** Node running the probe. */
  readonly node: string;
  readonly role: Role;
  /** Name of the firewall the probe must traverse. */
  readonly firewall: string;
  readonly check: CheckConfig;
  readonly kind: ProbeKind;
  /** Source address policy-routed through this firewall (node.probe.sources[firewall], or sources6 for IPv6 checks). */
  readonly source: string;
  /** 6 for checks with family ipv6; absent or 4: IPv4. */
  readonly family?: 4 | 6;
  /** icmp/tcp: a host; http: a full URL. */
  readonly target: string;
  /** tcp: the port; otherwise null (http carries its port in the URL). */
  readonly port: number | null;
  /** "fw1/path-http": unique within a node. */
  readonly key: string;
}

/**
 * Jobs for one node, firewalls in config order, checks in config order within each.
 * Path checks aim beyond the firewall (check.target / check.url); leg checks aim at the firewall's own
 * address on the node's side (ingressAddress from ingress nodes, egressAddress from egress nodes).
 */
export function probeJobs(config: Config, nodeName: string): ProbeJob[] {
  const node = nodeByName(config, nodeName);
  const jobs: ProbeJob[] = [];
  for (const fw of config.firewalls) {
    for (const check of checksFor(config, fw)) {
      if (check.from !== node.role) continue;
      const v6 = check.family === 'ipv6';
      const source = v6 ? node.probe?.sources6?.[fw.name] : node.probe?.sources[fw.name];
      // The config's cross-check requires a source per firewall (and family) on every node that runs checks.
      if (source === undefined) throw new Error(`node "${node.name}" has no ${v6 ? 'IPv6 ' : ''}probe source for firewall "${fw.name}" (check "${check.name}")`);
      const legAddress = v6 ? (node.role === 'ingress' ? fw.ingressAddress6 : fw.egressAddress6) : node.role === 'ingress' ? fw.ingressAddress : fw.egressAddress;
      if (legAddress === undefined) throw new Error(`firewall "${fw.name}" has no IPv6 ${node.role} address (check "${check.name}")`);
      let target: string;
      let port: number | null = null;
      if (check.kind === 'http') {
        if (!check.url) throw new Error(`check "${check.name}" is an http check without a url`);
        target = check.scope === 'path' ? check.url : legUrl(check.url, legAddress, check.port);
      } else {
        target = check.scope === 'path' ? (check.target ?? '') : legAddress;
        if (!target) throw new Error(`check "${check.name}" is a path check without a target`);
        if (check.kind === 'tcp') {
          if (check.port === undefined) throw new Error(`check "${check.name}" is a tcp check without a port`);
          port = check.port;
        }
      }
      jobs.push({ node: node.name, role: node.role, firewall: fw.name, check, kind: check.kind, source, family: v6 ? 6 : 4, target, port, key: `${fw.name}/${check.name}` });
    }
  }
  return jobs;
}

/** The check URL's scheme, port (or `port` when set), path and query, against the firewall's address. */
function legUrl(url: string, address: string, port: number | undefined): string {
  const u = new URL(url);
  u.hostname = address.includes(':') ? `[${address}]` : address;
  if (port !== undefined) u.port = String(port);
  u.username = '';
  u.password = '';
  u.hash = '';
  return u.toString();
}
