import { Actuator } from '../../failover/actuator';
import { ArpFence } from '../../failover/fence';
import { FakeRunner, FakeSpawner, type FakeProcess } from '../../failover/runner';
import { ManualTimers } from '../../failover/timers';
import { parseConfig } from '../../controller/config';

describe('ArpFence', () => {
  let now = 1000;
  let until = 1750;
  const mono = () => now;
  const fence = (runner: FakeRunner) => new ArpFence(runner, ['192.0.2.254/24', '10.1.0.254/24', '2001:db8::1/64'], () => until, { mono });

  beforeEach(() => {
    now = 1000;
    until = 1750;
  });

  it('installs the table with live elements in one transaction, once', async () => {
    const r = new FakeRunner();
    const f = fence(r);
    const res = await f.hold();
    expect(r.calls).toHaveLength(1);
    // The script is nft's one argument (no stdin: a frozen controller cannot delay it once spawned).
    expect(r.calls.map((c) => [c.file, c.args.length, c.input])).toEqual([['nft', 1, undefined]]);
    const input = r.calls[0]!.args[0]!;
    expect(input).toContain('table arp sandwich_fence {}\ndelete table arp sandwich_fence\n');
    expect(input).toContain('arp saddr ip @valid accept');
    expect(input).toContain('arp saddr ip { 192.0.2.254, 10.1.0.254 } drop');
    expect(input).toContain('add element arp sandwich_fence valid { 192.0.2.254 timeout 750ms, 10.1.0.254 timeout 750ms }');
    // IPv6 VIPs: neighbour advertisements sent from the VIP, in an ip6 table of the same name, same transaction.
    expect(input).toContain('table ip6 sandwich_fence {}\ndelete table ip6 sandwich_fence\n');
    expect(input).toContain('icmpv6 type nd-neighbor-advert ip6 saddr @valid accept');
    expect(input).toContain('icmpv6 type nd-neighbor-advert ip6 saddr { 2001:db8::1 } drop');
    expect(input).toContain('add element ip6 sandwich_fence valid { 2001:db8::1 timeout 750ms }');
    expect(res.commands).toHaveLength(1);
    expect(f.state).toBe('installed');
    expect((await f.hold()).commands).toEqual([]);
    expect(r.calls).toHaveLength(1);
  });

  it('refreshes with add, delete, add so the timeout restarts at the validity left now', async () => {
    const r = new FakeRunner();
    const f = fence(r);
    expect(await f.refresh()).toBe(false); // not installed: nothing to refresh
    await f.hold();
    now = 1300;
    until = 2100;
    expect(await f.refresh()).toBe(true);
    expect(r.calls[1]!.args[0]).toBe([
      'add element arp sandwich_fence valid { 192.0.2.254, 10.1.0.254 }',
      'delete element arp sandwich_fence valid { 192.0.2.254, 10.1.0.254 }',
      'add element arp sandwich_fence valid { 192.0.2.254 timeout 800ms, 10.1.0.254 timeout 800ms }',
      'add element ip6 sandwich_fence valid { 2001:db8::1 }',
      'delete element ip6 sandwich_fence valid { 2001:db8::1 }',
      'add element ip6 sandwich_fence valid { 2001:db8::1 timeout 800ms }',
      '',
    ].join('\n'));
  });

  it('never sets an element once validity is (nearly) gone', async () => {
    const r = new FakeRunner();
    const f = fence(r);
    until = 1010;
    await f.hold();
    expect(r.calls[0]!.args[0]).not.toContain('add element');
    expect(await f.refresh()).toBe(false);
    until = Number.NEGATIVE_INFINITY;
    expect(await f.refresh()).toBe(false);
    expect(r.calls).toHaveLength(1);
  });

  it('removes the table idempotently, reporting a change only when it had installed it', async () => {
    const r = new FakeRunner();
    const f = fence(r);
    expect((await f.release()).commands).toEqual([]); // start-up clean-up of a leftover table
    expect(r.calls[0]!.args[0]).toBe('table arp sandwich_fence {}\ndelete table arp sandwich_fence\ntable ip6 sandwich_fence {}\ndelete table ip6 sandwich_fence\n');
    expect((await f.release()).commands).toEqual([]);
    expect(r.calls).toHaveLength(1);
    await f.hold();
    expect((await f.release()).commands).toHaveLength(1);
    expect(f.state).toBe('absent');
  });

  it('skips a refresh that would gain less than minExtendMs, or while one is running; reports the time left', async () => {
    let release: () => void = () => undefined;
    let hold = false;
    const r = new FakeRunner(() => (hold ? new Promise<string>((res) => (release = () => res(''))) : ''));
    const f = new ArpFence(r, ['192.0.2.254/24'], () => until, { mono, minExtendMs: 100 });
    expect(f.remainingMs()).toBe(0);
    await f.hold();
    expect(f.remainingMs()).toBe(750);
    now = 1050;
    until = 1800; // +50 ms only
    expect(await f.refresh()).toBe(false);
    expect(f.remainingMs()).toBe(700);
    until = 1900; // +150 ms
    hold = true;
    const first = f.refresh();
    expect(await f.refresh()).toBe(false); // one nft at a time
    release();
    expect(await first).toBe(true);
    expect(f.remainingMs()).toBe(850);
    expect(r.calls).toHaveLength(2);
    hold = false;
    await f.release();
    expect(f.remainingMs()).toBe(0);
  });

  it('ends the elements early by the slowest recent nft run, capped by maxLeadMs', async () => {
    let cost = 40;
    const r = new FakeRunner(() => {
      now += cost; // this nft run takes `cost` ms
      return '';
    });
    const f = new ArpFence(r, ['192.0.2.254/24'], () => until, { mono, maxLeadMs: 100 });
    await f.hold();
    expect(r.calls[0]!.args[0]).toContain('timeout 750ms'); // no run measured yet
    expect(f.leadMs()).toBe(40);
    until = now + 700;
    expect(f.timeoutMs()).toBe(660);
    cost = 500;
    until = now + 900;
    expect(await f.refresh()).toBe(true);
    expect(f.leadMs()).toBe(100);
    until = now + 700;
    expect(f.timeoutMs()).toBe(600);
  });

  it('names the fence and the nft error when nft fails', async () => {
    const r = new FakeRunner(() => new Error('Error: Could not process rule: No such file or directory'));
    await expect(fence(r).hold()).rejects.toThrow(/fence: install ARP fence for 192\.0\.2\.254, 10\.1\.0\.254, 2001:db8::1, 750 ms failed: .*No such file/);
  });
});

describe('ArpFence through one long-lived nft -i', () => {
  let now = 1000;
  let until = 1750;
  const mono = () => now;
  /** nft answers each transaction as `nft -e -i` does: the echoed commands, then the generation line. */
  const answer = (p: FakeProcess, data: string) => {
    for (const cmd of data.trim().split('; ').filter((c) => c.startsWith('add '))) p.handlers.onStdoutLine(cmd);
    p.handlers.onStdoutLine(`# new generation ${p.written.length + 1} by process 4242 (nft)`);
  };
  const setup = (sessionTimeoutMs = 2000) => {
    const r = new FakeRunner();
    const s = new FakeSpawner();
    s.onWrite = answer;
    const f = new ArpFence(r, ['192.0.2.254/24', '2001:db8::1/64'], () => until, { mono, spawner: s, sessionTimeoutMs });
    return { r, s, f };
  };

  beforeEach(() => {
    now = 1000;
    until = 1750;
  });

  it('writes every transaction (install, refreshes, removal) as one line to the same nft, which outlives a release', async () => {
    const { r, s, f } = setup();
    await f.hold();
    for (const t of [1300, 1600]) {
      now = t;
      until = t + 800;
      expect(await f.refresh()).toBe(true);
    }
    await f.release();
    expect(r.calls).toHaveLength(0);
    expect(s.procs).toHaveLength(1);
    const p = s.last();
    expect([p.file, ...p.args]).toEqual(['nft', '-e', '-i']);
    expect(p.written).toHaveLength(4);
    expect(p.written.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n'))).toBe(true);
    expect(p.written[0]).toContain('table arp sandwich_fence {}; delete table arp sandwich_fence; table arp sandwich_fence {;   set valid');
    expect(p.written[0]).toContain('add element arp sandwich_fence valid { 192.0.2.254 timeout 750ms }');
    expect(p.written[1]).toBe([
      'add element arp sandwich_fence valid { 192.0.2.254 }',
      'delete element arp sandwich_fence valid { 192.0.2.254 }',
      'add element arp sandwich_fence valid { 192.0.2.254 timeout 800ms }',
      'add element ip6 sandwich_fence valid { 2001:db8::1 }',
      'delete element ip6 sandwich_fence valid { 2001:db8::1 }',
      'add element ip6 sandwich_fence valid { 2001:db8::1 timeout 800ms }',
    ].join('; ') + '\n');
    expect(p.written[3]).toBe('table arp sandwich_fence {}; delete table arp sandwich_fence; table ip6 sandwich_fence {}; delete table ip6 sandwich_fence\n');
    expect(p.stopped).toBe(false); // kept for the next takeover
    await f.close();
    expect(p.stopped).toBe(true);
  });

  it('waits for the generation line: a transaction is not done before nft has committed it', async () => {
    const { s, f } = setup();
    await f.hold();
    s.onWrite = () => undefined;
    now = 1300;
    until = 2100;
    let done = false;
    const pending = f.refresh().then((v) => { done = v; });
    await new Promise((res) => setImmediate(res));
    expect(done).toBe(false);
    s.last().handlers.onStdoutLine('add element arp sandwich_fence valid { 192.0.2.254 }'); // an echo is not the commit
    await new Promise((res) => setImmediate(res));
    expect(done).toBe(false);
    s.last().handlers.onStdoutLine('# new generation 7 by process 4242 (nft)');
    await pending;
    expect(done).toBe(true);
  });

  it('computes a queued transaction\'s timeout when its turn comes, not when it was asked for', async () => {
    const { s, f } = setup();
    await f.hold();
    let answerRelease!: () => void;
    s.onWrite = (p, data) => { answerRelease = () => answer(p, data); };
    const releasing = f.release(); // nft has not answered yet
    until = 2200;
    now = 1300;
    const holding = f.hold(); // queued behind the removal
    await new Promise((res) => setImmediate(res));
    expect(s.last().written).toHaveLength(2);
    now = 1500;
    s.onWrite = answer;
    answerRelease();
    await releasing;
    await holding;
    expect(s.last().written[2]).toContain('add element arp sandwich_fence valid { 192.0.2.254 timeout 700ms }'); // 2200 − 1500
    expect(f.state).toBe('installed');
    await f.close();
  });

  it('an nft error fails the transaction with nft\'s message, kills that nft and leaves the table to be reinstalled', async () => {
    const { s, f } = setup();
    await f.hold();
    s.onWrite = (p) => p.handlers.onStderrLine?.('Error: Could not process rule: No such file or directory');
    now = 1300;
    until = 2100;
    await expect(f.refresh()).rejects.toThrow(/fence: refresh ARP fence, 800 ms failed: nft -i: Error: Could not process rule: No such file or directory/);
    expect(s.last().killed).toBe(true);
    expect(f.state).toBe('unknown');
    expect(await f.refresh()).toBe(false); // nothing to refresh until installed again
    s.onWrite = answer;
    await f.hold();
    expect(s.procs).toHaveLength(2); // a new nft
    now = 1600;
    until = 2500;
    expect(await f.refresh()).toBe(true);
    await f.close();
  });

  it('kills an nft that does not answer in time (a late transaction must not be applied), and one that exits', async () => {
    const { s, f } = setup(30);
    await f.hold();
    s.onWrite = () => undefined;
    now = 1300;
    until = 2100;
    await expect(f.refresh()).rejects.toThrow(/nft -i: no answer within 30 ms/);
    expect(s.last().killed).toBe(true);
    s.onWrite = answer;
    await f.hold();
    s.onWrite = (p) => p.exit({ code: 1, signal: null });
    now = 1600;
    until = 2500;
    const refresh = f.refresh();
    s.last().handlers.onStderrLine?.('nft: out of memory');
    await expect(refresh).rejects.toThrow(/nft -i exited \(code 1\): nft: out of memory/);
    expect(s.procs).toHaveLength(2);
    await f.close();
  });
});

describe('Actuator with the ARP fence', () => {
  const yaml = `
cluster: t
nodes:
  - { name: lb1, role: ingress, interfaces: { client: cli, firewall: fwn } }
  - { name: er1, role: egress, interfaces: { firewall: fwn, server: srv }, probe: { interface: firewall, sources: { fw1: 10.2.0.21 } } }
firewalls:
  - { name: fw1, ingressAddress: 10.1.0.11, egressAddress: 10.2.0.11, egressMac: "02:00:00:00:f1:0e", mark: 1, table: 101 }
services: []
checks: [{ name: leg, kind: icmp, scope: leg, from: egress }]
vipGroups:
  - { name: ingress, role: ingress, addresses: [{ address: 192.0.2.254/24, interface: client }], garp: { count: 1, repeatAfterMs: 0, refreshIntervalMs: 0 } }
egress: { routes: [default] }
`;

  function runner(): FakeRunner {
    let vipPresent = false;
    return new FakeRunner((c) => {
      const line = [c.file, ...c.args].join(' ');
      if (line.startsWith('ip -j') && line.includes('addr')) {
        return JSON.stringify(vipPresent ? [{ ifname: 'cli', addr_info: [{ family: 'inet', local: '192.0.2.254', prefixlen: 24 }] }] : [{ ifname: 'cli', addr_info: [] }]);
      }
      if (c.file === 'ip' && c.input?.includes('192.0.2.254')) vipPresent = c.input.includes('add');
      if (c.file === 'ip' && c.args.includes('192.0.2.254/24')) vipPresent = c.args.includes('add');
      return '';
    });
  }

  it('installs the fence before the VIP address, and removes it after the address on release', async () => {
    const config = parseConfig(yaml, 'test.yaml');
    const r = runner();
    let until = performance.now() + 700;
    const a = new Actuator(config, 'lb1', r, { timers: new ManualTimers(), fenceUntil: () => until, verify: false });
    const res = await a.reconcile(null, { holdsVips: true });
    // Other drivers get empty kernel output from this fake and fail; only the fence and the VIPs matter here.
    const vipErrors = (e: { driver: string }[]) => e.filter((x) => x.driver === 'fence' || x.driver.startsWith('vip:'));
    expect(vipErrors(res.errors)).toEqual([]);
    const nftAt = r.calls.findIndex((c) => c.file === 'nft' && c.args[0]?.includes('chain output'));
    const vipAt = r.calls.findIndex((c) => c.file !== 'nft' && c.file !== 'arping' && JSON.stringify(c).includes('192.0.2.254/24') && !c.args.includes('-j'));
    expect(nftAt).toBeGreaterThanOrEqual(0);
    expect(vipAt).toBeGreaterThan(nftAt);
    until = performance.now() + 700;
    expect(await a.refreshFence()).toBe(true);
    const before = r.calls.length;
    const rel = await a.release();
    expect(vipErrors(rel.errors)).toEqual([]);
    const after = r.calls.slice(before);
    const delAt = after.findIndex((c) => c.file === 'nft' && c.args[0]?.includes('delete table'));
    const addrAt = after.findIndex((c) => c.file !== 'nft' && JSON.stringify(c).includes('192.0.2.254/24') && !c.args.includes('-j'));
    expect(addrAt).toBeGreaterThanOrEqual(0);
    expect(delAt).toBeGreaterThan(addrAt);
    a.close();
  });

  it('takeVips: fence and address only, without the data-path drivers; a reconcile begun before the takeover does not release them', async () => {
    const config = parseConfig(yaml, 'test.yaml');
    const r = runner();
    let leader = false;
    const a = new Actuator(config, 'lb1', r, { timers: new ManualTimers(), fenceUntil: () => performance.now() + 700, verify: false, canAnnounce: () => leader });
    const vipAdds = () => r.calls.filter((c) => c.file === 'ip' && c.args.includes('192.0.2.254/24')).map((c) => c.args.includes('add') ? 'add' : 'del');
    // A reconcile starts as a standby; the node becomes leader (takeVips) before its VIP step runs.
    const pass = a.reconcile(null, { holdsVips: false, wantVips: () => leader });
    leader = true;
    const took = await a.takeVips();
    await pass;
    expect(took.errors).toEqual([]);
    expect(took.results.map((x) => x.driver)).toEqual(['fence', 'vip:ingress']);
    expect(vipAdds()).toEqual(['add']);
    // Leadership gone: the next pass releases.
    leader = false;
    await a.reconcile(null, { holdsVips: false, wantVips: () => leader });
    expect(vipAdds()).toEqual(['add', 'del']);
    a.close();
  });

  it('takeVips with an announcer: the gratuitous ARP is the controller\'s own frame, sent after the fence and the address, no arping', async () => {
    const config = parseConfig(yaml, 'test.yaml');
    const r = runner();
    const sent: string[] = [];
    const announcer = {
      prepare: (dev: string, ip: string) => ({ dev, ip, ifindex: 3, bytes: Buffer.alloc(42) }),
      send: (f: { dev: string; ip: string }) => void sent.push(`${f.ip} on ${f.dev} after ${r.calls.length} calls`),
      close: () => undefined,
    };
    const a = new Actuator(config, 'lb1', r, { timers: new ManualTimers(), fenceUntil: () => performance.now() + 700, verify: false, canAnnounce: () => true, kernel: { announcer } });
    const took = await a.takeVips();
    expect(took.errors).toEqual([]);
    expect(took.results.find((x) => x.driver === 'vip:ingress')!.commands).toEqual(['ip addr add 192.0.2.254/24 dev cli', 'arping -U -c 1 -i 0.1 -I cli 192.0.2.254']);
    const addAt = r.calls.findIndex((c) => c.file === 'ip' && c.args.includes('192.0.2.254/24'));
    expect(sent).toEqual([`192.0.2.254 on cli after ${addAt + 1} calls`]);
    expect(r.calls.filter((c) => c.file === 'arping')).toEqual([]);
    a.close();
  });
});
