// A prober namespace with one source address per firewall, policy-routed through two forwarding
// "firewall" namespaces to a target namespace (replies return through the same firewall).
// Shared by the probe system tests; each caller picks its own namespace names.
import { ExecRunner } from '../../failover/runner';

export interface TwoFirewalls {
  /** Prober namespace. */
  readonly prober: string;
  readonly firewalls: readonly [string, string];
  /** Target namespace. */
  readonly target: string;
  /** Probe source address for firewall 1 and 2. */
  readonly sources: readonly [string, string];
  /** Address on the target's loopback, reached only through the firewalls. */
  readonly targetAddress: string;
}

const exec = new ExecRunner(10_000);
const ip = (...args: string[]) => exec.run('ip', args);
const inNs = (ns: string, ...args: string[]) => exec.run('ip', ['netns', 'exec', ns, ...args]);

export async function buildTwoFirewalls(t: TwoFirewalls): Promise<void> {
  const { prober: P, firewalls: FW, target: S, sources: SRC } = t;
  for (const ns of [P, ...FW, S]) {
    await ip('netns', 'add', ns);
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    await inNs(ns, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0');
  }
  await ip('-n', P, 'link', 'add', 'br0', 'type', 'bridge');
  await ip('-n', P, 'addr', 'add', '10.201.0.10/24', 'dev', 'br0');
  for (const s of SRC) await ip('-n', P, 'addr', 'add', `${s}/24`, 'dev', 'br0');
  await ip('-n', P, 'link', 'set', 'br0', 'up');
  await ip('-n', S, 'addr', 'add', `${t.targetAddress}/32`, 'dev', 'lo');
  for (const i of [0, 1] as const) {
    const n = i + 1;
    const fw = FW[i];
    await ip('-n', P, 'link', 'add', `b${n}`, 'type', 'veth', 'peer', 'name', 'e0', 'netns', fw);
    await ip('-n', P, 'link', 'set', `b${n}`, 'master', 'br0', 'up');
    await ip('-n', fw, 'addr', 'add', `10.201.0.1${n}/24`, 'dev', 'e0');
    await ip('-n', fw, 'link', 'add', 'e1', 'type', 'veth', 'peer', 'name', `s${n}`, 'netns', S);
    await ip('-n', fw, 'addr', 'add', `10.202.${n}.1/24`, 'dev', 'e1');
    await ip('-n', S, 'addr', 'add', `10.202.${n}.2/24`, 'dev', `s${n}`);
    for (const dev of ['e0', 'e1']) await ip('-n', fw, 'link', 'set', dev, 'up');
    await ip('-n', S, 'link', 'set', `s${n}`, 'up');
    await ip('-n', fw, 'route', 'add', `${t.targetAddress}/32`, 'via', `10.202.${n}.2`);
    await inNs(fw, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    for (const src of SRC) {
      await inNs(fw, 'iptables', '-w', '-A', 'FORWARD', '-s', src, '-j', 'ACCEPT');
      await inNs(fw, 'iptables', '-w', '-A', 'FORWARD', '-d', src, '-j', 'ACCEPT');
    }
    // The node's probe routing (what failover/ sets up from probe.sources / tableBase).
    await ip('-n', P, 'route', 'add', 'default', 'via', `10.201.0.1${n}`, 'table', String(200 + n));
    await ip('-n', P, 'rule', 'add', 'from', SRC[i], 'lookup', String(200 + n), 'pref', '1000');
    // Return path: replies to source N go back through fwN.
    await ip('-n', S, 'route', 'add', `${SRC[i]}/32`, 'via', `10.202.${n}.1`);
  }
}

export async function removeTwoFirewalls(t: TwoFirewalls): Promise<void> {
  for (const ns of [t.prober, ...t.firewalls, t.target]) await ip('netns', 'del', ns).catch(() => undefined);
}
