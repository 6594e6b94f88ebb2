import { Actuator, isReadCommand, nodeWants } from '../../failover/actuator';
import { FakeRunner } from '../../failover/runner';
import { ManualTimers } from '../../failover/timers';
import { KernelUnavailableError } from '../../failover/types';
import { FakeKernel } from './fixtures/kernel/fake-kernel';
import { exampleConfig, previousDesired } from './fixtures/snapshot';

// Changing commands as run; an `ip -batch -` is listed line by line as `ip <line>`.
const writes = (r: FakeRunner) =>
  r.calls.filter((c) => !isReadCommand(c.file, c.args)).flatMap((c) =>
    c.file === 'ip' && c.args[0] === '-batch' ? (c.input ?? '').trim().split('\n').map((l) => `ip ${l}`) : [[c.file, ...c.args].join(' ') + (c.input ? `\n${c.input}` : '')]);

describe('Actuator on an ingress node (deploy/config.example.yaml, lb1)', () => {
  const config = exampleConfig();

  it('builds the whole ingress node from nothing, in takeover order, then is idempotent', async () => {
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    const r = new FakeRunner(k.handle);
    const act = new Actuator(config, 'lb1', r, { timers: new ManualTimers() });
    const res = await act.reconcile(null, { holdsVips: true });
    expect(res.errors).toEqual([]);
    expect(writes(r)).toEqual([
      'sysctl -w net.ipv4.ip_forward=1 net.ipv4.vs.expire_nodest_conn=1 net.ipv4.vs.expire_quiescent_template=1 net.ipv4.vs.sloppy_tcp=1',
      'ipvsadm -R\n-A -f 1 -s sh -b sh-fallback\n-a -f 1 -r 10.1.0.11:0 -g -w 100\n-a -f 1 -r 10.1.0.12:0 -g -w 100\n',
      'ip route replace local 0.0.0.0/0 dev lo table 100',
      'ip route replace 0.0.0.0/0 via 10.1.0.11 dev eth1 table 200',
      'ip route replace 0.0.0.0/0 via 10.1.0.12 dev eth1 table 201',
      'ip rule add priority 1000 from 10.1.0.21 lookup 200',
      'ip rule add priority 1000 from 10.1.0.22 lookup 201',
      'ip rule add priority 100 fwmark 1 lookup 100',
      'ip addr add 10.1.0.21/32 dev eth1',
      'ip addr add 10.1.0.22/32 dev eth1',
      'ip addr add 192.0.2.254/24 dev eth0',
      'ip addr add 10.1.0.254/24 dev eth1',
      'arping -U -c 3 -I eth0 192.0.2.254',
      'arping -U -c 3 -I eth1 10.1.0.254',
    ]);
    expect(res.applied).toEqual({
      node: 'lb1', role: 'ingress', revision: null, egressTables: [],
      ipvs: [{ service: 'web', fwmark: 1, ipv6: false, scheduler: 'sh', flags: ['sh-fallback'], realServers: [{ firewall: 'fw1', address: '10.1.0.11', weight: 100 }, { firewall: 'fw2', address: '10.1.0.12', weight: 100 }] }],
      vips: [{ group: 'ingress', held: true, addresses: ['192.0.2.254/24 dev eth0', '10.1.0.254/24 dev eth1'] }],
    });
    r.calls.length = 0;
    const again = await act.reconcile(null, { holdsVips: true });
    expect(again.errors).toEqual([]);
    expect(writes(r)).toEqual([]);
    expect(again.results.every((x) => x.commands.length === 0 && x.differences.length === 0)).toBe(true);
    act.close();
  });

  it('fw1 down (quiesce): only the weight changes; remove mode deletes it instead', async () => {
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    const r = new FakeRunner(k.handle);
    const act = new Actuator(config, 'lb1', r, { timers: new ManualTimers() });
    await act.reconcile(null, { holdsVips: false });
    r.calls.length = 0;
    const down = previousDesired(config, { fw1: 'down', fw2: 'up' }, 8);
    const res = await act.reconcile(down, { holdsVips: false });
    expect(writes(r)).toEqual(['ipvsadm -R\n-e -f 1 -r 10.1.0.11:0 -g -w 0\n']);
    expect(res.results.find((x) => x.driver === 'ipvs')!.differences).toEqual(['fwmark 1: fw1 (10.1.0.11) weight 100, want 0']);
    expect(res.applied.revision).toBe(8);
    const removeCfg = exampleConfig((c) => (c.policy.downAction = 'remove'));
    const act2 = new Actuator(removeCfg, 'lb1', r, { timers: new ManualTimers() });
    r.calls.length = 0;
    await act2.reconcile(down, { holdsVips: false });
    expect(writes(r)).toEqual(['ipvsadm -R\n-d -f 1 -r 10.1.0.11:0\n']);
    expect(k.ipvs.order(1)).toEqual(['10.1.0.12']);
  });

  it('losing leadership releases the VIPs first and touches nothing else; release() on shutdown likewise', async () => {
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    const r = new FakeRunner(k.handle);
    const timers = new ManualTimers();
    const act = new Actuator(config, 'lb1', r, { timers });
    await act.reconcile(null, { holdsVips: true });
    r.calls.length = 0;
    const res = await act.reconcile(null, { holdsVips: false });
    expect(writes(r)).toEqual(['ip addr del 192.0.2.254/24 dev eth0', 'ip addr del 10.1.0.254/24 dev eth1']);
    expect(res.results[0]!.driver).toBe('vip:ingress');
    expect(timers.size).toBe(0);
    await act.reconcile(null, { holdsVips: true });
    r.calls.length = 0;
    const rel = await act.release();
    expect(writes(r)).toEqual(['ip addr del 192.0.2.254/24 dev eth0', 'ip addr del 10.1.0.254/24 dev eth1']);
    expect(rel.applied.vips[0]!.held).toBe(false);
  });

  it('a kernel without IPVS fails the ipvs driver only; the rest is still applied', async () => {
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    k.ipvsAvailable = false;
    k.sysctls.delete('net.ipv4.vs.sloppy_tcp');
    const r = new FakeRunner(k.handle);
    const act = new Actuator(config, 'lb1', r, { timers: new ManualTimers() });
    const res = await act.reconcile(null, { holdsVips: true });
    expect(res.errors.map((e) => [e.driver, e.error.constructor])).toEqual([['ipvs', KernelUnavailableError]]);
    expect(res.errors[0]!.error.message).toMatch(/^IPVS not available in this kernel: modprobe ip_vs/);
    expect(res.applied.ipvs).toBeNull();
    expect(k.addrs.get('eth0')).toEqual(['192.0.2.254/24']);
    act.close();
  });
});

describe('Actuator on an egress node (er1)', () => {
  const config = exampleConfig();

  it('per-firewall tables and iif rules; fw1 down re-points table 101 via fw2 and flushes mark 1; recovery restores without flush', async () => {
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    const r = new FakeRunner(k.handle);
    const act = new Actuator(config, 'er1', r, { timers: new ManualTimers() });
    const first = await act.reconcile(null, { holdsVips: false });
    expect(first.errors).toEqual([]);
    expect(writes(r)).toEqual([
      'sysctl -w net.ipv4.ip_forward=1',
      'ip route replace 203.0.113.0/24 via 10.2.0.11 dev eth0 table 101',
      'ip route replace 203.0.113.0/24 via 10.2.0.12 dev eth0 table 102',
      'ip route replace 0.0.0.0/0 via 10.2.0.11 dev eth0 table 200',
      'ip route replace 0.0.0.0/0 via 10.2.0.12 dev eth0 table 201',
      'ip rule add priority 1000 from 10.2.0.21 lookup 200',
      'ip rule add priority 1000 from 10.2.0.22 lookup 201',
      'ip rule add priority 500 fwmark 1 iif eth1 lookup 101',
      // Probe replies for fwN stay pinned to fwN (lb1's and lb2's sources), whatever table N says.
      'ip rule add priority 499 to 10.1.0.21 iif eth1 lookup 200',
      'ip rule add priority 499 to 10.1.0.31 iif eth1 lookup 200',
      'ip rule add priority 500 fwmark 2 iif eth1 lookup 102',
      'ip rule add priority 499 to 10.1.0.22 iif eth1 lookup 201',
      'ip rule add priority 499 to 10.1.0.32 iif eth1 lookup 201',
      'ip addr add 10.2.0.21/32 dev eth0',
      'ip addr add 10.2.0.22/32 dev eth0',
    ]);
    expect(k.conntrackFlushes).toEqual([]);
    r.calls.length = 0;
    const down = await act.reconcile(previousDesired(config, { fw1: 'down', fw2: 'up' }), { holdsVips: false });
    expect(writes(r)).toEqual(['ip route replace 203.0.113.0/24 via 10.2.0.12 dev eth0 table 101', 'conntrack -D -m 1']);
    expect(down.results.find((x) => x.driver === 'routes')!.differences).toEqual(['table 101: 203.0.113.0/24 via 10.2.0.11 dev eth0, want via 10.2.0.12 dev eth0']);
    expect(down.applied.egressTables).toEqual([
      { firewall: 'fw1', table: 101, via: 'fw2', nextHop: '10.2.0.12' },
      { firewall: 'fw2', table: 102, via: 'fw2', nextHop: '10.2.0.12' },
    ]);
    r.calls.length = 0;
    await act.reconcile(previousDesired(config, { fw1: 'down', fw2: 'up' }), { holdsVips: false });
    expect(writes(r)).toEqual([]);
    await act.reconcile(previousDesired(config, { fw1: 'up', fw2: 'up' }), { holdsVips: false });
    expect(writes(r)).toEqual(['ip route replace 203.0.113.0/24 via 10.2.0.11 dev eth0 table 101']);
    expect(k.conntrackFlushes).toEqual([1]);
  });

  it('a flush that failed is retried on the next pass while the table points away, and dropped once it points home', async () => {
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    const r = new FakeRunner(k.handle);
    const act = new Actuator(config, 'er1', r, { timers: new ManualTimers() });
    await act.reconcile(null, { holdsVips: false });
    const fw1Down = previousDesired(config, { fw1: 'down', fw2: 'up' });
    k.conntrackFailures = 2;
    const down = await act.reconcile(fw1Down, { holdsVips: false });
    expect(down.errors.map((e) => e.driver)).toEqual(['conntrack']);
    expect(down.applied.egressTables![0]).toMatchObject({ firewall: 'fw1', via: 'fw2' });
    expect((await act.reconcile(fw1Down, { holdsVips: false })).errors.map((e) => e.driver)).toEqual(['conntrack']);
    r.calls.length = 0;
    const retried = await act.reconcile(fw1Down, { holdsVips: false });
    expect(retried.errors).toEqual([]);
    expect(writes(r)).toEqual(['conntrack -D -m 1']);
    expect(k.conntrackFlushes).toEqual([1]);
    r.calls.length = 0;
    await act.reconcile(fw1Down, { holdsVips: false });
    expect(writes(r)).toEqual([]);
    // Failed while down, then fw1 came back before a retry: nothing left to flush.
    k.conntrackFailures = 1;
    await act.reconcile(previousDesired(config, { fw1: 'up', fw2: 'up' }), { holdsVips: false });
    await act.reconcile(fw1Down, { holdsVips: false });
    await act.reconcile(previousDesired(config, { fw1: 'up', fw2: 'up' }), { holdsVips: false });
    r.calls.length = 0;
    await act.reconcile(previousDesired(config, { fw1: 'up', fw2: 'up' }), { holdsVips: false });
    expect(writes(r)).toEqual([]);
    expect(k.conntrackFlushes).toEqual([1]);
  });

  it('a hand-deleted rule is drift: reported and put back', async () => {
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    const r = new FakeRunner(k.handle);
    const act = new Actuator(config, 'er1', r, { timers: new ManualTimers() });
    await act.reconcile(null, { holdsVips: false });
    k.rules.splice(k.rules.findIndex((x) => x.fwmark === 2), 1);
    const res = await act.reconcile(null, { holdsVips: false });
    expect(res.results.find((x) => x.driver === 'routes')).toMatchObject({ differences: ['rule 500: from all fwmark 2 iif eth1 lookup 102 missing'], commands: ['ip rule add priority 500 fwmark 2 iif eth1 lookup 102'] });
  });
});

describe('mapping and plan', () => {
  it('draining keeps the server at weight 0 in remove mode too, with the fallback flag', () => {
    const cfg = exampleConfig((c) => (c.policy.downAction = 'remove'));
    const w = nodeWants(cfg, cfg.nodes[0]!, previousDesired(cfg, { fw1: 'draining', fw2: 'up' }));
    expect(w.ipvs!.services[0]).toEqual({ fwmark: 1, scheduler: 'sh', flags: ['sh-fallback'], realServers: [{ name: 'fw1', address: '10.1.0.11', weight: 0 }, { name: 'fw2', address: '10.1.0.12', weight: 100 }] });
  });

  it('plan reads the kernel for real and prints the changes without running them', async () => {
    const config = exampleConfig();
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    const reader = new FakeRunner(k.handle);
    const { commands, errors } = await Actuator.plan(config, 'er1', reader, previousDesired(config, { fw1: 'down', fw2: 'up' }), { holdsVips: false });
    expect(errors).toEqual([]);
    expect(commands.find((c) => c.startsWith("ip -batch - <<'EOF'\n"))).toContain('\nroute replace 203.0.113.0/24 via 10.2.0.12 dev eth0 table 101\n');
    expect(commands).toContain('conntrack -D -m 1');
    expect(reader.calls.every((c) => isReadCommand(c.file, c.args))).toBe(true);
    expect(k.tables.size).toBe(0);
  });

  it('rejects a desired state naming an unknown firewall as egress next hop, without touching the kernel', async () => {
    const config = exampleConfig();
    const r = new FakeRunner(new FakeKernel(['eth0', 'eth1', 'lo']).handle);
    const d = previousDesired(config, { fw1: { state: 'down', egressVia: 'fw9' }, fw2: 'up' });
    const res = await new Actuator(config, 'er1', r).reconcile(d, { holdsVips: false });
    expect(res.errors[0]!.error.message).toBe('desired state re-points fw1\'s egress table via unknown firewall "fw9"');
    expect(writes(r)).toEqual([]);
  });
});
