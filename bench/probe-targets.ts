// Probe targets in network namespaces, shared by bench/probe-engine.ts and bench/controller-rss.ts:
//
//   prober ns: br0 10.230.0.1/16, source N = 10.230.2.N, `from <source N> lookup 1000+N: default via fwN`
//   fwN ns:    10.230.1.N (ingress leg) ─ 10.231.N.1      (forwarding)
//   target ns: 10.231.N.2 per firewall, targets 10.232.0.1 and 10.232.0.2 on lo, replies to source N via fwN
//
// With `proberRouting: false` the prober ns gets only br0 and its ports: the source addresses, rules
// and tables are left to whoever probes (a real controller puts them there itself).
import type { CommandRunner } from '../failover/runner';

export interface TargetNames {
  readonly prober: string;
  readonly target: string;
  /** fwN's namespace is fws[N - 1]. */
  readonly fws: readonly string[];
}

/** Namespace names under a prefix unique to the caller (e.g. `pe<pid>`). */
export function targetNames(prefix: string, firewalls: number): TargetNames {
  return { prober: `${prefix}-p`, target: `${prefix}-t`, fws: Array.from({ length: firewalls }, (_, i) => `${prefix}-f${i + 1}`) };
}

/** Addresses of firewall N (1-based) and of the targets behind every firewall. */
export const TARGETS = ['10.232.0.1', '10.232.0.2'] as const;
export const fwLegAddress = (n: number) => `10.230.1.${n}`;
export const proberSource = (n: number) => `10.230.2.${n}`;

async function batch(exec: CommandRunner, ns: string, lines: string[]): Promise<void> {
  await exec.run('ip', ['-n', ns, '-batch', '-'], { input: lines.join('\n') + '\n' });
}

export async function createTargets(exec: CommandRunner, names: TargetNames, opts: { proberRouting?: boolean } = {}): Promise<void> {
  const { prober, target, fws } = names;
  for (const ns of [prober, target, ...fws]) {
    await exec.run('ip', ['netns', 'add', ns]);
    await exec.run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0', 'net.ipv4.ip_forward=1']);
  }
  const p = ['link set lo up', 'link add br0 type bridge', 'addr add 10.230.0.1/16 dev br0', 'link set br0 up'];
  fws.forEach((fw, i) => {
    const n = i + 1;
    p.push(`link add b${n} type veth peer name e0 netns ${fw}`, `link set b${n} master br0`, `link set b${n} up`);
    if (opts.proberRouting !== false) {
      p.push(`addr add ${proberSource(n)}/16 dev br0`, `route add default via ${fwLegAddress(n)} table ${1000 + n}`, `rule add from ${proberSource(n)} lookup ${1000 + n} pref 1000`);
    }
  });
  await batch(exec, prober, p);
  await batch(exec, target, ['link set lo up', ...TARGETS.map((t) => `addr add ${t}/32 dev lo`)]);
  for (const [i, fw] of fws.entries()) {
    const n = i + 1;
    await batch(exec, fw, ['link set lo up', `addr add ${fwLegAddress(n)}/16 dev e0`, 'link set e0 up', `link add e1 type veth peer name s${n} netns ${target}`,
      `addr add 10.231.${n}.1/24 dev e1`, 'link set e1 up', `route add 10.232.0.0/24 via 10.231.${n}.2`]);
  }
  await batch(exec, target, fws.flatMap((_, i) => [`addr add 10.231.${i + 1}.2/24 dev s${i + 1}`, `link set s${i + 1} up`, `route add ${proberSource(i + 1)}/32 via 10.231.${i + 1}.1`]));
}

/** Deletes the namespaces (each one that exists; errors ignored). */
export async function deleteTargets(exec: CommandRunner, names: TargetNames): Promise<void> {
  for (const ns of [names.prober, names.target, ...names.fws]) await exec.run('ip', ['netns', 'del', ns]).catch(() => undefined);
}
