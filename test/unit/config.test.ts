import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, parseConfig } from '../../controller/config';

const example = readFileSync(join(__dirname, '../../deploy/config.example.yaml'), 'utf8');

function errorsOf(text: string): string[] {
  try {
    parseConfig(text, 't.yaml');
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map((i) => `${i.path}: ${i.message}${i.line ? ` @${i.line}` : ''}`);
    throw e;
  }
  return [];
}

describe('config', () => {
  it('accepts the example config of the seed sandwich and fills defaults', () => {
    const c = parseConfig(example);
    expect(c.nodes.map((n) => `${n.name}:${n.role}`)).toEqual(['lb1:ingress', 'lb2:ingress', 'er1:egress']);
    expect(c.firewalls.map((f) => f.weight)).toEqual([100, 100]);
    expect(c.policy.allDown).toBe('fail-open');
    expect(c.vipGroups[0]?.garp.count).toBe(3);
  });

  it('a loss window needs upPct below downPct, and sane numbers', () => {
    const win = (w: string) => example.replace('- { name: ingress-leg, kind: icmp, scope: leg, from: ingress, intervalMs: 1000, timeoutMs: 800 }', `- { name: ingress-leg, kind: icmp, scope: leg, from: ingress, intervalMs: 1000, timeoutMs: 800, lossWindow: ${w} }`);
    expect(parseConfig(win('{ probes: 160, downPct: 10, upPct: 4 }')).checks.find((k) => k.name === 'ingress-leg')?.lossWindow).toEqual({ probes: 160, downPct: 10, upPct: 4 });
    expect(errorsOf(win('{ probes: 160, downPct: 5, upPct: 5 }'))).toEqual([expect.stringMatching(/^checks\.\d+\.lossWindow: upPct \(5\) must be below downPct \(5\)/)]);
    expect(errorsOf(win('{ probes: 5, downPct: 0, upPct: 1 }')).join('\n')).toMatch(/lossWindow\.probes.*\n.*lossWindow\.downPct/);
  });

  it('validates the fast leadership profile against its own timing and etcd\'s election timeout', () => {
    const etcd = (leadership: string, election = '') => example.replace(/store:[^\n]*\n(  [^\n]*\n)*/, `store: { kind: etcd, endpoints: [http://10.9.0.1:2379], leadership: ${leadership}${election} }\n`);
    const ok = parseConfig(etcd('{ mode: fast, renewIntervalMs: 100, takeoverAfterMs: 500, marginMs: 150 }', ', etcdElectionTimeoutMs: 100'));
    expect(ok.store).toMatchObject({ leadership: { mode: 'fast', renewIntervalMs: 100, takeoverAfterMs: 500, marginMs: 150 } });
    expect(parseConfig(etcd('{ mode: lease }')).store).toMatchObject({ leadership: { mode: 'lease' }, etcdElectionTimeoutMs: 1000 });
    expect(errorsOf(etcd('{ mode: fast, takeoverAfterMs: 500, marginMs: 500 }', ', etcdElectionTimeoutMs: 100'))).toEqual([
      expect.stringMatching(/^store\.leadership\.marginMs: must be less than takeoverAfterMs \(500 ms\), got 500 ms/),
    ]);
    expect(errorsOf(etcd('{ mode: fast, renewIntervalMs: 200, takeoverAfterMs: 500, marginMs: 150 }', ', etcdElectionTimeoutMs: 100'))).toEqual([
      expect.stringMatching(/^store\.leadership\.renewIntervalMs: 200 ms leaves fewer than two renewals in the leader's validity window \(takeoverAfterMs − marginMs = 350 ms\)/),
    ]);
    // etcd's default election timeout (1000 ms): a raft election would look like a dead leader.
    expect(errorsOf(etcd('{ mode: fast }'))).toEqual([
      expect.stringMatching(/^store\.leadership\.takeoverAfterMs: takeoverAfterMs − marginMs \(350 ms\) must exceed etcd's election timeout \(store\.etcdElectionTimeoutMs, 1000 ms\)/),
    ]);
    expect(errorsOf(etcd('{ mode: quick }'))[0]).toMatch(/^store\.leadership\.mode: /);
  });

  it('names every error with its path and YAML line', () => {
    const bad = example
      .replace('interfaces: { client: eth0, firewall: eth1 }', 'interfaces: { client: "eth0;reboot", firewall: eth1 }')
      .replace('ingressAddress: 10.1.0.12', 'ingressAddress: 10.1.0.300')
      .replace('cluster: seed', 'cluster: seed\nbogus: 1');
    const errs = errorsOf(bad);
    expect(errs).toEqual(expect.arrayContaining([
      expect.stringMatching(/^nodes\.0\.interfaces\.client: must be an interface name.*@\d+$/),
      expect.stringMatching(/^firewalls\.1\.ingressAddress: must be an IPv4 address @\d+$/),
      expect.stringMatching(new RegExp(`Unrecognized key: "bogus" @${bad.split('\n').indexOf('bogus: 1') + 1}$`)),
    ]));
  });

  it('rejects duplicates and impossible timings', () => {
    const bad = example
      .replace('name: fw2, ingressAddress', 'name: fw1, ingressAddress')
      .replace('intervalMs: 1000, timeoutMs: 800, rise: 3', 'intervalMs: 500, timeoutMs: 800, rise: 3');
    const errs = errorsOf(bad);
    expect(errs.some((e) => /duplicate firewall name "fw1"/.test(e))).toBe(true);
    expect(errs.some((e) => /timeoutMs \(800\) must be less than intervalMs \(500\)/.test(e))).toBe(true);
  });

  it('reports YAML syntax errors with a line', () => {
    expect(errorsOf('cluster: x\nnodes: [\n')[0]).toMatch(/@[23]$/);
  });
});

describe('config: probe tables', () => {
  it('rejects probe tables that would land on the kernel\'s reserved tables', () => {
    const bad = example.replace("sources: { fw1: 10.1.0.21, fw2: 10.1.0.22 }", "sources: { fw1: 10.1.0.21, fw2: 10.1.0.22 }\n      tableBase: 253");
    expect(errorsOf(bad)).toEqual(expect.arrayContaining([
      expect.stringMatching(/^nodes\.0\.probe\.tableBase: probe table 253 for fw1 is a reserved table/),
      expect.stringMatching(/^nodes\.0\.probe\.tableBase: probe table 254 for fw2 is a reserved table/),
    ]));
  });
});
