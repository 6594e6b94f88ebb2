// A real `sandwich run` holding an active-active path (docs/active-active.md), in the namespaces of
// test/system/topo.sh (prefix "aad"), with a one-member etcd. The host has no IPVS, so the node here is
// the egress router er1 with an egress-role active-active group (the same code path as the LBs':
// verdict from its own probes, path fence, withdrawal on stop): its path 10.2.0.101 on the
// firewall-facing network is held while its egress-leg checks see a firewall.
import { readEvents } from '../../controller/events';
import { NetnsSandwich, sh, sleep, trySh, waitFor } from './harness';

jest.setTimeout(180_000);

const CONFIG = `
cluster: aadtest
store: { kind: etcd, endpoints: [http://10.9.0.1:2379], callTimeoutMs: 1000, leaseTtlS: 3 }
timing: { decideIntervalMs: 100, reconcileIntervalMs: 500, holdDownMs: 1000, observationStaleMs: 3000 }
nodes:
  - name: er1
    role: egress
    interfaces: { firewall: fwn, server: srv }
    probe: { interface: firewall, sources: { fw1: 10.2.0.21, fw2: 10.2.0.22 } }
firewalls:
  - { name: fw1, ingressAddress: 10.1.0.11, egressAddress: 10.2.0.11, egressMac: "02:00:00:00:f1:0e", mark: 1, table: 101 }
  - { name: fw2, ingressAddress: 10.1.0.12, egressAddress: 10.2.0.12, egressMac: "02:00:00:00:f2:0e", mark: 2, table: 102 }
checks:
  - { name: egress-leg, kind: icmp, scope: leg, from: egress, intervalMs: 400, timeoutMs: 300, rise: 2, fall: 2 }
vipGroups:
  - name: epath
    role: egress
    mode: active-active
    paths:
      - { node: er1, address: 10.2.0.101/24, interface: firewall }
    pathFenceMs: 1500
    garp: { count: 1, repeatAfterMs: 0, refreshIntervalMs: 1000 }
egress: { routes: [default] }
events: { file: "@DIR@/{node}/events.log" }
runtimeDir: "@DIR@/run"
`;

const lab = new NetnsSandwich('aad');
const er1 = () => lab.ns('er1');
const hasPath = () => sh(er1(), ['ip', '-o', 'addr', 'show', 'dev', 'fwn']).includes('10.2.0.101/24');
/** A firewall resolves the path address afresh (its neighbour entry flushed first) and pings it. */
const answers = (fw = 'fw1') => {
  trySh(lab.ns(fw), ['ip', 'neigh', 'flush', 'dev', 'egr']);
  return trySh(lab.ns(fw), ['ping', '-c', '1', '-W', '1', '10.2.0.101']).ok;
};
const events = () => readEvents(`${lab.dir}/er1/events.log`).map((e) => e.reason);

describe('sandwich run with an active-active path (namespaces aad-*)', () => {
  beforeAll(async () => {
    await lab.up(CONFIG);
  });
  afterAll(async () => {
    await lab.down();
  });

  it('holds the path once its probes see a firewall, announced and answering; status shows it', async () => {
    lab.start('er1');
    const t = await waitFor('er1 holds its path', hasPath, 60_000, 50);
    expect(answers()).toBe(true);
    expect(sh(er1(), ['nft', 'list', 'table', 'arp', 'sandwich_paths'])).toContain('10.2.0.101');
    await waitFor('status shows the path', () => lab.cli(['status'], 'er1').out.includes('egress VIP group epath: active-active, paths held by er1 (of er1)'), 20_000, 200);
    expect(lab.cli(['status'], 'er1').out).toMatch(/path held: er1 holds its path: 2 of 2 firewalls usable from er1 \(fw1, fw2\)/);
    expect(events().some((r) => /^er1 holds its path: [12] of 2 firewalls usable from er1 .*; path addresses of epath \(10\.2\.0\.101\/24\) added, gratuitous ARP sent$/.test(r))).toBe(true);
    console.log(`er1 held its path ${Math.round(t.ms)} ms after start`);
  });

  it('withdraws it when no firewall is usable from er1, and takes it back when one is', async () => {
    for (const f of ['fw1', 'fw2']) sh(lab.ns(f), ['iptables', '-I', 'INPUT', '-p', 'icmp', '-j', 'DROP']);
    try {
      const gone = await waitFor('path withdrawn', () => !hasPath(), 20_000, 20);
      await waitFor('the withdrawal event', () => events().some((r) => r.startsWith('er1 withdraws its path: no firewall usable from er1 (fw1: egress-leg down')), 5000, 50);
      sh(lab.ns('fw2'), ['iptables', '-D', 'INPUT', '-p', 'icmp', '-j', 'DROP']);
      const back = await waitFor('path back', hasPath, 20_000, 20);
      expect(answers('fw2')).toBe(true); // fw1 still drops ICMP
      console.log(`both firewalls unreachable → path withdrawn ${Math.round(gone.ms)} ms; fw2 back → path held ${Math.round(back.ms)} ms (checks every 400 ms, fall 2, rise 2)`);
    } finally {
      for (const f of ['fw1', 'fw2']) trySh(lab.ns(f), ['iptables', '-D', 'INPUT', '-p', 'icmp', '-j', 'DROP']);
    }
  });

  it('drain-node withdraws the path while the controller runs; undrain-node returns it', async () => {
    const d = lab.cli(['drain-node', '--node', 'er1', '--reason', 'system test'], 'er1');
    expect(d.ok).toBe(true);
    const gone = await waitFor('path withdrawn', () => !hasPath(), 10_000, 20);
    await waitFor('the drain event', () => events().some((r) => r.startsWith('er1 withdraws its path: drained by')), 5000, 50);
    expect(lab.cli(['undrain-node', '--node', 'er1'], 'er1').out).toContain('er1: undrained');
    const back = await waitFor('path back', hasPath, 10_000, 20);
    expect(answers()).toBe(true);
    console.log(`drain-node → path withdrawn ${Math.round(gone.ms)} ms after the command returned; undrain-node → held again ${Math.round(back.ms)} ms`);
  });

  it('kill -9: the address stays but the path fence silences it; a restarted controller revives it', async () => {
    await lab.stop('er1', 'SIGKILL');
    const killed = performance.now();
    expect(hasPath()).toBe(true);
    const silent = await waitFor('the path stops answering ARP', () => !answers(), 10_000, 100);
    expect(hasPath()).toBe(true);
    console.log(`kill -9 → path silent after ${Math.round(performance.now() - killed)} ms (pathFenceMs 1500; polled by fw1, ~1 s per failed try)`);
    expect(silent.ms).toBeLessThan(5000);
    lab.start('er1');
    await waitFor('the path answers again', answers, 60_000, 200);
  });

  it('SIGTERM withdraws the path and removes its fence', async () => {
    expect(await lab.stop('er1', 'SIGTERM')).toBe(0);
    expect(hasPath()).toBe(false);
    expect(trySh(er1(), ['nft', 'list', 'table', 'arp', 'sandwich_paths']).ok).toBe(false);
    expect(events().some((r) => r.startsWith('er1 withdraws its path: controller stopping (SIGTERM)'))).toBe(true);
    await sleep(10);
  });
});
