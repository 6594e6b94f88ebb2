import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AddressesDriver, parseAddresses } from '../../failover/addresses';
import { ConntrackDriver } from '../../failover/conntrack';
import { IpvsDriver, parseIpvsProc, parseIpvsSave, planIpvs, readIpvs, type IpvsWant } from '../../failover/ipvs';
import { parseRoutes, parseRules, planRoutes, RoutesDriver, type RoutesWant } from '../../failover/routes';
import { CommandFailedError, FakeRunner, type RecordedCall } from '../../failover/runner';
import { SysctlDriver } from '../../failover/sysctl';
import { ManualTimers } from '../../failover/timers';
import { KernelParseError, KernelUnavailableError, KernelVerifyError, type DriverLogEntry } from '../../failover/types';
import { VipGroup } from '../../failover/vip';
import { FakeIpvs } from './fixtures/kernel/fake-ipvs';

const fx = (name: string) => readFileSync(join(__dirname, 'fixtures/kernel', name), 'utf8');
const failed = (file: string, args: readonly string[], code: number, stderr: string) => new CommandFailedError(file, args, `${file}: exit ${code}: ${stderr.trim().split('\n').pop()}`, code, stderr);
const writes = (r: FakeRunner) => r.calls.filter((c) => !isRead(c));
function isRead(c: RecordedCall): boolean {
  return (c.file === 'ipvsadm' && c.args[0] === '-Sn') || c.file === 'cat' || (c.file === 'sysctl' && c.args[0] === '-n') || (c.file === 'ip' && c.args[0] === '-j');
}

const seedWant = (w1: number, w2: number, extra: Partial<IpvsWant> = {}): IpvsWant => ({
  downAction: 'quiesce',
  services: [{ fwmark: 1, scheduler: 'sh', flags: ['sh-fallback'], realServers: [{ name: 'fw1', address: '10.1.0.11', weight: w1 }, { name: 'fw2', address: '10.1.0.12', weight: w2 }] }],
  ...extra,
});

describe('ipvs parsers (real ipvsadm 1.31 / kernel 6.1 output)', () => {
  it('parses every service of ipvsadm -Sn, managed or not, with flags, weights and the signed fwmark', () => {
    const s = parseIpvsSave(fx('ipvsadm-Sn-mixed.txt'));
    expect(s.map((x) => x.key)).toEqual(['-f 4294967295', '-t 192.0.2.10:80', '-u 192.0.2.10:53', '-f 1', '-f 2', '-f 3', '-f 4']);
    expect(s[2]).toMatchObject({ protocol: 'udp', scheduler: 'wrr', extra: ['-p', '300'], realServers: [{ target: '10.1.0.12:53', forwarding: 'm', weight: 5 }] });
    expect(s[3]).toMatchObject({ fwmark: 1, scheduler: 'sh', flags: ['sh-fallback'], realServers: [{ target: '10.1.0.11:0', weight: 100 }, { target: '10.1.0.12:0', weight: 0 }] });
    expect(s[4]).toMatchObject({ fwmark: 2, scheduler: 'mh', flags: ['mh-fallback', 'mh-port'] });
    expect(s[6]).toMatchObject({ fwmark: 4, flags: ['sh-fallback', 'sh-port'], realServers: [] });
  });

  it('tells an IPv6 fwmark service apart and reads the kernel list order from /proc/net/ip_vs', () => {
    const s = parseIpvsSave(fx('ipvsadm-Sn-v6.txt'));
    expect(s.find((x) => x.key === '-f 6 -6')).toMatchObject({ ipv6: true, fwmark: 6 });
    expect(s.find((x) => x.key === '-t [2001:db8::10]:443')).toMatchObject({ protocol: 'tcp', ipv6: true });
    // Added .12, .11, .13: ipvsadm sorts by address, /proc shows the list newest first.
    expect(parseIpvsSave(fx('ipvsadm-Sn-order.txt')).find((x) => x.fwmark === 1)!.realServers.map((r) => r.target)).toEqual(['10.1.0.11:0', '10.1.0.12:0', '10.1.0.13:0']);
    expect(parseIpvsProc(fx('proc-ip_vs-order.txt')).get('-f 1')).toEqual(['10.1.0.13', '10.1.0.11', '10.1.0.12']);
    expect(parseIpvsProc(fx('proc-ip_vs-readd.txt')).get('-f 1')).toEqual(['10.1.0.12', '10.1.0.13', '10.1.0.11']);
    expect(parseIpvsProc(fx('proc-ip_vs-v6.txt')).get('-f 6 -6')).toBeUndefined(); // no real servers: family unknown in /proc
  });

  it('rejects garbage with a typed error naming the command and the line', () => {
    const bad = fx('ipvsadm-Sn-mixed.txt').replace('-a -f 1 -r 10.1.0.12:0 -g -w 0', '-a -f 1 -r 10.1.0.12:0 -g -w zero');
    expect(() => parseIpvsSave(bad)).toThrow(KernelParseError);
    expect(() => parseIpvsSave(bad)).toThrow(/ipvsadm -Sn.*line 8: weight "zero" is not a number: "-a -f 1 -r 10.1.0.12:0 -g -w zero"/);
    expect(() => parseIpvsSave('Try `ipvsadm -h\' for help\n')).toThrow(/expected a line starting with -A or -a/);
    expect(() => parseIpvsSave('-a -f 9 -r 10.1.0.1:0 -g -w 1\n')).toThrow(/not listed before/);
    expect(() => parseIpvsProc(fx('proc-ip_vs-order.txt') + 'FWM  zz sh\n')).toThrow(/cat \/proc\/net\/ip_vs.*8 hex digits/);
  });
});

describe('IpvsDriver', () => {
  it('reports the host kernel without IPVS as a typed error and applies nothing', async () => {
    const r = new FakeRunner((c) => failed(c.file, c.args, 2, fx('ipvsadm-Sn-host-no-ipvs.stderr')));
    const err = await new IpvsDriver(r).reconcile(seedWant(100, 100)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelUnavailableError);
    expect((err as Error).message).toBe("IPVS not available in this kernel: modprobe ip_vs (ipvsadm: modprobe: FATAL: Module ip_vs not found in directory /lib/modules/6.18.44-fc-v782)");
    expect(r.lines()).toEqual(['ipvsadm -Sn']);
  });

  it('creates the service in one -R batch, then finds nothing to do', async () => {
    const k = new FakeIpvs();
    const r = new FakeRunner(k.handle);
    const d = new IpvsDriver(r);
    const first = await d.reconcile(seedWant(100, 100));
    expect(first.differences).toEqual(['fwmark 1: service missing, want sh (sh-fallback) with fw1 (10.1.0.11) weight 100, fw2 (10.1.0.12) weight 100']);
    expect(writes(r).map((c) => [c.file, ...c.args, c.input])).toEqual([['ipvsadm', '-R', '-A -f 1 -s sh -b sh-fallback\n-a -f 1 -r 10.1.0.11:0 -g -w 100\n-a -f 1 -r 10.1.0.12:0 -g -w 100\n']]);
    expect(first.commands).toEqual([`ipvsadm -R <<'EOF'\n-A -f 1 -s sh -b sh-fallback\n-a -f 1 -r 10.1.0.11:0 -g -w 100\n-a -f 1 -r 10.1.0.12:0 -g -w 100\nEOF`]);
    expect(k.order(1)).toEqual(['10.1.0.11', '10.1.0.12']);
    r.calls.length = 0;
    const second = await d.reconcile(seedWant(100, 100));
    expect(second).toMatchObject({ differences: [], commands: [] });
    expect(writes(r)).toEqual([]);
  });

  it('quiesces fw1 (weight 0) with -e, keeping the order, and leaves unmanaged services alone', async () => {
    const k = new FakeIpvs();
    k.apply('-A -f 1 -s sh -b sh-fallback');
    k.apply('-a -f 1 -r 10.1.0.11:0 -g -w 100');
    k.apply('-a -f 1 -r 10.1.0.12:0 -g -w 100');
    k.apply('-A -f 3 -s rr');
    k.apply('-a -f 3 -r 10.9.9.9:0 -g -w 1');
    const r = new FakeRunner(k.handle);
    const res = await new IpvsDriver(r).reconcile(seedWant(0, 100));
    expect(res.differences).toEqual(['fwmark 1: fw1 (10.1.0.11) weight 100, want 0']);
    expect(k.applied).toEqual(['-e -f 1 -r 10.1.0.11:0 -g -w 0']);
    expect(k.order(1)).toEqual(['10.1.0.11', '10.1.0.12']);
    expect(k.order(3)).toEqual(['10.9.9.9']);
  });

  it('orders the batch: service edit and adds/edits first, deletes last', () => {
    const state = { services: parseIpvsSave(fx('ipvsadm-Sn-mixed.txt')), order: new Map([['-f 1', ['10.1.0.11', '10.1.0.12']], ['-f 2', ['10.1.0.11', '10.1.0.12']]]) };
    const want: IpvsWant = {
      downAction: 'remove',
      services: [
        { fwmark: 1, scheduler: 'mh', flags: ['mh-fallback'], realServers: [{ address: '10.1.0.11', weight: 50 }] },
        { fwmark: 2, scheduler: 'mh', flags: ['mh-port', 'mh-fallback'], realServers: [{ address: '10.1.0.11', weight: 100 }, { address: '10.1.0.12', weight: 100 }, { address: '10.1.0.13', weight: 7 }] },
      ],
    };
    const p = planIpvs(state, want);
    expect(p.batch).toEqual([
      '-E -f 1 -s mh -b mh-fallback',
      '-e -f 1 -r 10.1.0.11:0 -g -w 50',
      '-a -f 2 -r 10.1.0.13:0 -g -w 7',
      '-d -f 1 -r 10.1.0.12:0',
    ]);
    expect(p.differences).toEqual([
      'fwmark 1: scheduler sh, want mh',
      'fwmark 1: flags sh-fallback, want mh-fallback',
      'fwmark 1: 10.1.0.11 weight 100, want 50',
      'fwmark 1: 10.1.0.12 present, want absent',
      'fwmark 2: 10.1.0.13 missing, want weight 7',
    ]);
  });

  it('remove mode: deletes the down firewall, re-adds it at the end and reports the order until fixOrder', async () => {
    const k = new FakeIpvs();
    const r = new FakeRunner(k.handle);
    const only2 = seedWant(100, 100);
    const removed: IpvsWant = { ...only2, downAction: 'remove', services: [{ ...only2.services[0]!, realServers: [only2.services[0]!.realServers[1]!] }] };
    await new IpvsDriver(r).reconcile(seedWant(100, 100));
    const down = await new IpvsDriver(r).reconcile(removed);
    expect(down.differences).toEqual(['fwmark 1: 10.1.0.11 present, want absent']);
    expect(k.order(1)).toEqual(['10.1.0.12']);
    const back = await new IpvsDriver(r).reconcile(seedWant(100, 100));
    expect(back.differences).toEqual([
      'fwmark 1: fw1 (10.1.0.11) missing, want weight 100',
      'fwmark 1: real-server order 10.1.0.12, 10.1.0.11, want 10.1.0.11, 10.1.0.12 (left as is: fixOrder is off)',
    ]);
    expect(k.order(1)).toEqual(['10.1.0.12', '10.1.0.11']);
    // Reported on every pass, never "fixed" without being asked.
    const n = k.applied.length;
    const again = await new IpvsDriver(r).reconcile(seedWant(100, 100));
    expect(again.commands).toEqual([]);
    expect(again.differences).toHaveLength(1);
    expect(k.applied.length).toBe(n);
    const fixed = await new IpvsDriver(r, { fixOrder: true }).reconcile(seedWant(100, 100));
    expect(k.applied.slice(n)).toEqual(['-d -f 1 -r 10.1.0.11:0', '-a -f 1 -r 10.1.0.11:0 -g -w 100', '-d -f 1 -r 10.1.0.12:0', '-a -f 1 -r 10.1.0.12:0 -g -w 100']);
    expect(fixed.differences).toEqual(['fwmark 1: real-server order 10.1.0.12, 10.1.0.11, want 10.1.0.11, 10.1.0.12']);
    expect(k.order(1)).toEqual(['10.1.0.11', '10.1.0.12']);
  });

  it('reads the real order of a re-added server from the captured /proc output', async () => {
    const r = new FakeRunner((c) => (c.file === 'cat' ? fx('proc-ip_vs-readd.txt') : fx('ipvsadm-Sn-readd.txt')));
    const st = await readIpvs(r);
    // Added .12 .11 .13, then .12 deleted and re-added: insertion order .11 .13 .12.
    expect(st.order.get('-f 1')).toEqual(['10.1.0.11', '10.1.0.13', '10.1.0.12']);
  });

  it('reads /proc/net/ip_vs without an exec when the runner can read files; a failed read names the file', async () => {
    const r = new FakeRunner(() => fx('ipvsadm-Sn-readd.txt'));
    const read: string[] = [];
    const direct = Object.assign(r, { readFile: async (path: string) => (read.push(path), fx('proc-ip_vs-readd.txt')) });
    const st = await readIpvs(direct);
    expect(st.order.get('-f 1')).toEqual(['10.1.0.11', '10.1.0.13', '10.1.0.12']);
    expect(read).toEqual(['/proc/net/ip_vs']);
    expect(r.calls.map((c) => c.file)).toEqual(['ipvsadm']);
    const broken = Object.assign(new FakeRunner(() => fx('ipvsadm-Sn-readd.txt')), { readFile: async () => Promise.reject(new Error('EACCES: permission denied')) });
    await expect(readIpvs(broken)).rejects.toThrow(/cat \/proc\/net\/ip_vs: EACCES/);
  });

  it('fails verification when ipvsadm -R exits 0 but a line did not apply (as the real one does)', async () => {
    const k = new FakeIpvs();
    k.apply('-A -f 1 -s sh -b sh-fallback');
    const r = new FakeRunner((c) => {
      if (c.file === 'ipvsadm' && c.args[0] === '-R') return { stdout: '', stderr: 'Service not defined' }; // nothing applied
      return k.handle(c);
    });
    const err = await new IpvsDriver(r).reconcile(seedWant(100, 100)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelVerifyError);
    expect((err as Error).message).toMatch(/fw1 \(10\.1\.0\.11\) missing.*ipvsadm -R said: Service not defined/);
  });

  it('garbage output: typed error, nothing applied', async () => {
    const r = new FakeRunner((c) => (c.file === 'cat' ? fx('proc-ip_vs-order.txt') : '-A -f 1 -s sh\nsomething else\n'));
    await expect(new IpvsDriver(r).reconcile(seedWant(100, 100))).rejects.toThrow(/cannot parse output of "ipvsadm -Sn" line 2/);
    expect(writes(r)).toEqual([]);
  });
});

describe('SysctlDriver', () => {
  const keys = { 'net.ipv4.vs.expire_nodest_conn': '1', 'net.ipv4.vs.sloppy_tcp': '1', 'net.ipv4.ip_local_port_range': '32768 60999' };
  it('reads all keys in one call, writes only the differing ones, verifies', async () => {
    const kernel: Record<string, string> = { 'net.ipv4.vs.expire_nodest_conn': '0', 'net.ipv4.vs.sloppy_tcp': '1', 'net.ipv4.ip_local_port_range': '32768\t60999' };
    const r = new FakeRunner((c) => {
      if (c.args[0] === '-n') return c.args.slice(1).map((k) => kernel[k]).join('\n') + '\n';
      for (const kv of c.args.slice(1)) kernel[kv.split('=')[0]!] = kv.split('=')[1]!;
      return '';
    });
    const d = new SysctlDriver(r);
    const res = await d.reconcile(keys);
    expect(res.differences).toEqual(['net.ipv4.vs.expire_nodest_conn = 0, want 1']);
    expect(res.commands).toEqual(['sysctl -w net.ipv4.vs.expire_nodest_conn=1']);
    r.calls.length = 0;
    expect((await d.reconcile(keys)).commands).toEqual([]);
    expect(r.lines()).toEqual(['sysctl -n net.ipv4.vs.expire_nodest_conn net.ipv4.vs.sloppy_tcp net.ipv4.ip_local_port_range']);
  });
  it('names a missing key (no IPVS on the host)', async () => {
    const r = new FakeRunner((c) => failed(c.file, c.args, 1, 'sysctl: cannot stat /proc/sys/net/ipv4/vs/sloppy_tcp: No such file or directory\n'));
    await expect(new SysctlDriver(r).reconcile(keys)).rejects.toThrow('sysctl: kernel has no parameter net.ipv4.vs.sloppy_tcp (IPVS not loaded: modprobe ip_vs)');
  });
  it('rejects output with the wrong number of lines', async () => {
    const r = new FakeRunner(() => '1\n');
    await expect(new SysctlDriver(r).reconcile(keys)).rejects.toThrow(KernelParseError);
    expect(writes(r)).toEqual([]);
  });
  it('reads /proc/sys without an exec where the runner can read files; writes with sysctl -w', async () => {
    const files: Record<string, string> = {
      '/proc/sys/net/ipv4/vs/expire_nodest_conn': '0\n', '/proc/sys/net/ipv4/vs/sloppy_tcp': '1\n', '/proc/sys/net/ipv4/ip_local_port_range': '32768\t60999\n',
      '/proc/sys/net/ipv6/conf/eth0.100/accept_dad': '1\n',
    };
    const r = Object.assign(new FakeRunner((c) => {
      for (const kv of c.args.slice(1)) {
        const [k, v] = kv.split('=') as [string, string];
        files[k.includes('/') ? `/proc/sys/${k}` : `/proc/sys/${k.replace(/\./g, '/')}`] = `${v}\n`;
      }
      return '';
    }), {
      readFile: async (path: string) => {
        if (!(path in files)) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
        return files[path]!;
      },
    });
    const d = new SysctlDriver(r);
    const want = { ...keys, 'net/ipv6/conf/eth0.100/accept_dad': '0' };
    const res = await d.reconcile(want);
    expect(res.commands).toEqual(['sysctl -w net.ipv4.vs.expire_nodest_conn=1 net/ipv6/conf/eth0.100/accept_dad=0']);
    expect(r.lines()).toEqual(['sysctl -w net.ipv4.vs.expire_nodest_conn=1 net/ipv6/conf/eth0.100/accept_dad=0']);   // the reads and the verification: no exec
    expect((await d.reconcile(want)).commands).toEqual([]);
    delete files['/proc/sys/net/ipv4/vs/sloppy_tcp'];
    await expect(d.reconcile(want)).rejects.toThrow('sysctl: kernel has no parameter net.ipv4.vs.sloppy_tcp (IPVS not loaded: modprobe ip_vs)');
  });
  it('writes /proc/sys without an exec where the runner can write files; lists the sysctl -w it equals', async () => {
    const files: Record<string, string> = { '/proc/sys/net/ipv4/ip_forward': '0\n', '/proc/sys/net/ipv4/ip_local_port_range': '32768\t60999\n' };
    const written: string[] = [];
    const r = Object.assign(new FakeRunner(() => ''), {
      readFile: async (path: string) => {
        if (!(path in files)) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
        return files[path]!;
      },
      writeFile: async (path: string, data: string) => {
        if (!(path in files)) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
        written.push(`${path} ${JSON.stringify(data)}`);
        files[path] = data;
      },
    });
    const d = new SysctlDriver(r);
    const res = await d.reconcile({ 'net.ipv4.ip_forward': '1', 'net.ipv4.ip_local_port_range': '1024 65000' });
    expect(res.commands).toEqual(['sysctl -w net.ipv4.ip_forward=1 \'net.ipv4.ip_local_port_range=1024 65000\'']);
    expect(written).toEqual(['/proc/sys/net/ipv4/ip_forward "1\\n"', '/proc/sys/net/ipv4/ip_local_port_range "1024 65000\\n"']);
    expect(r.calls).toEqual([]);
    // A key the read found but the write cannot: named, not a raw ENOENT.
    files['/proc/sys/net/ipv4/vs/sloppy_tcp'] = '0\n';
    const write = r.writeFile;
    r.writeFile = async (path: string, data: string) => (path.endsWith('/sloppy_tcp') ? Promise.reject(Object.assign(new Error('ENOENT'), { code: 'ENOENT' })) : write(path, data));
    await expect(d.reconcile({ 'net.ipv4.vs.sloppy_tcp': '1' })).rejects.toThrow('sysctl: kernel has no parameter net.ipv4.vs.sloppy_tcp (IPVS not loaded: modprobe ip_vs)');
  });
});

describe('routes', () => {
  const rules = parseRules(fx('ip-j-rule-show.json'));
  it('parses real ip -j rule output', () => {
    expect(rules.find((r) => r.priority === 100)).toMatchObject({ fwmark: 1, table: 100, other: [] });
    expect(rules.find((r) => r.priority === 500)).toMatchObject({ fwmark: 2, iif: 'v1', table: 102 });
    expect(rules.find((r) => r.priority === 501)).toMatchObject({ fwmark: 0x10, fwmask: 0xff });
    expect(rules.find((r) => r.priority === 502)).toMatchObject({ from: '10.0.0.0/8', table: 104 });
    expect(rules.find((r) => r.priority === 503)).toMatchObject({ not: true, from: '10.9.0.0/16' });
    expect(rules.find((r) => r.priority === 504)).toMatchObject({ action: 'unreachable', table: undefined });
    expect(rules.find((r) => r.priority === 1000)).toMatchObject({ from: '10.1.0.21', table: 200 });
    expect(rules.find((r) => r.priority === 32766)).toMatchObject({ table: 254 });
  });
  it('parses real ip -j route output', () => {
    expect(parseRoutes(fx('ip-j-route-table-100-local.json'), 'x')).toEqual([{ type: 'local', dst: '0.0.0.0/0', dstText: 'default', dev: 'lo', metric: 0, multipath: false, gateway: undefined }]);
    expect(parseRoutes(fx('ip-j-route-table-102-mixed.json'), 'x').map((r) => [r.type, r.dst, r.gateway, r.metric])).toEqual([
      ['blackhole', '198.18.0.0/16', undefined, 0],
      ['unicast', '198.51.100.0/24', '10.1.0.12', 10],
      ['unicast', '203.0.113.0/24', '10.1.0.12', 0],
    ]);
  });
  it('plans: replace wrong next hops, add missing rules, delete unwanted ones at managed priorities only, deletes last', () => {
    const state = { rules, tables: new Map([[102, parseRoutes(fx('ip-j-route-table-102-mixed.json'), 'x')], [200, parseRoutes(fx('ip-j-route-table-200.json'), 'x')]]) };
    const want: RoutesWant = {
      rules: [{ priority: 500, fwmark: 2, iif: 'v1', table: 102 }, { priority: 500, fwmark: 1, iif: 'v1', table: 101 }, { priority: 1000, from: '10.1.0.21', table: 200 }],
      tables: { 102: [{ dst: '203.0.113.0/24', via: '10.1.0.11', dev: 'v0' }], 200: [{ dst: 'default', via: '10.1.0.11', dev: 'v0' }] },
      managedPriorities: [501],
    };
    const p = planRoutes(state, want);
    expect(p.steps.map((s) => s.join(' '))).toEqual([
      'route replace 203.0.113.0/24 via 10.1.0.11 dev v0 table 102',
      'rule add priority 500 fwmark 1 iif v1 lookup 101',
      'rule del priority 501 fwmark 0x10/0xff lookup 103',
      'route del blackhole 198.18.0.0/16 table 102',
      'route del 198.51.100.0/24 metric 10 table 102',
    ]);
    expect(p.differences).toEqual([
      'table 102: 203.0.113.0/24 via 10.1.0.12 dev v0, want via 10.1.0.11 dev v0',
      'table 102: 198.18.0.0/16 blackhole present, not wanted',
      'table 102: 198.51.100.0/24 via 10.1.0.12 dev v0 metric 10 present, not wanted',
      'rule 500: from all fwmark 1 iif v1 lookup 101 missing',
      'rule 501: from all fwmark 16 lookup 103 present, not wanted',
    ]);
    expect(p.changedTables).toEqual([102]);
  });
  it('reads rules and every managed table in one ip -j -batch, and is idempotent when in sync', async () => {
    const r = new FakeRunner((c) => {
      expect(c.input).toBe('rule show\nroute show table 200\nroute show table 999\n');
      // iproute2 in batch mode prints [] for a table that does not exist
      return [fx('ip-j-rule-show.json'), fx('ip-j-route-table-200.json'), '[]'].map((s) => s.trim()).join('\n') + '\n';
    });
    const want: RoutesWant = { rules: [{ priority: 1000, from: '10.1.0.21/32', table: 200 }], tables: { 200: [{ dst: 'default', via: '10.1.0.11', dev: 'v0' }], 999: [] } };
    const res = await new RoutesDriver(r).reconcile(want);
    expect(res).toMatchObject({ differences: [], commands: [], changedTables: [] });
    expect(r.lines()).toEqual(['ip -j -batch -']);
  });
  it('applies all changes in one ip -batch', async () => {
    const r = new FakeRunner((c) => (c.args[0] === '-j' ? '[]\n[]\n' : ''));
    const res = await new RoutesDriver(r, { verify: false }).reconcile({ rules: [{ priority: 500, fwmark: 1, iif: 'eth1', table: 101 }], tables: { 101: [{ dst: '203.0.113.0/24', via: '10.2.0.11', dev: 'eth0' }] } });
    expect(res.commands).toEqual(['ip route replace 203.0.113.0/24 via 10.2.0.11 dev eth0 table 101', 'ip rule add priority 500 fwmark 1 iif eth1 lookup 101']);
    expect(r.calls.map((c) => [c.args.join(' '), c.input])).toEqual([
      ['-j -batch -', 'rule show\nroute show table 101\n'],
      ['-batch -', 'route replace 203.0.113.0/24 via 10.2.0.11 dev eth0 table 101\nrule add priority 500 fwmark 1 iif eth1 lookup 101\n'],
    ]);
  });
  it('garbage: typed error naming the command', async () => {
    const r = new FakeRunner(() => '[{"priority":"x"}]\n');
    await expect(new RoutesDriver(r).reconcile({ rules: [], tables: {} })).rejects.toThrow(/cannot parse output of "ip -j rule show" line 1: rule without numeric priority/);
    const r2 = new FakeRunner(() => 'Error: something\n[]\n');
    await expect(new RoutesDriver(r2).reconcile({ rules: [], tables: { 7: [] } })).rejects.toThrow(/not JSON/);
    const r3 = new FakeRunner(() => '[]\n');
    await expect(new RoutesDriver(r3).reconcile({ rules: [], tables: { 7: [] } })).rejects.toThrow(/expected 2 JSON line\(s\)/);
    expect(writes(r3)).toEqual([]);
  });
});

describe('AddressesDriver', () => {
  it('parses real output, adds missing, replaces a wrong prefix, removes absent ones; then nothing', async () => {
    expect(parseAddresses(fx('ip-j-addr-show-dev-v0.json'), 'v0', 'x').map((a) => `${a.local}/${a.prefixlen}`)).toEqual(['10.1.0.1/24', '10.1.0.21/32', 'fe80::a49b:9eff:fe65:e4ce/64']);
    let json = fx('ip-j-addr-show-dev-v0.json');
    const r = new FakeRunner((c) => (c.args[0] === '-j' ? json : ''));
    const want = { present: [{ dev: 'v0', address: '10.1.0.22/32' }, { dev: 'v0', address: '10.1.0.1/25' }], absent: [{ dev: 'v0', address: '10.1.0.21/32' }] };
    const res = await new AddressesDriver(r, { verify: false }).reconcile(want);
    expect(res.commands).toEqual(['ip addr add 10.1.0.22/32 dev v0', 'ip addr add 10.1.0.1/25 dev v0', 'ip addr del 10.1.0.1/24 dev v0', 'ip addr del 10.1.0.21/32 dev v0']);
    expect(res.differences).toEqual(['v0: 10.1.0.22/32 missing', 'v0: 10.1.0.1/25 present as /24', 'v0: 10.1.0.21/32 present, want absent']);
    json = json.replace('"local":"10.1.0.1","prefixlen":24', '"local":"10.1.0.1","prefixlen":25').replace('"local":"10.1.0.21"', '"local":"10.1.0.22"');
    r.calls.length = 0;
    expect((await new AddressesDriver(r).reconcile(want)).commands).toEqual([]);
    expect(writes(r)).toEqual([]);
  });
  it('an address added by another writer between read and add ("File exists") is verified, not an error', async () => {
    const before = fx('ip-j-addr-show-dev-v0.json');
    const after = before.replace('"local":"10.1.0.21"', '"local":"10.1.0.22"');
    let reads = 0;
    const r = new FakeRunner((c) => {
      if (c.args[0] === '-j') return reads++ === 0 ? before : after;
      return failed('ip', c.args, 2, 'RTNETLINK answers: File exists\n');
    });
    const res = await new AddressesDriver(r).reconcile({ present: [{ dev: 'v0', address: '10.1.0.22/32' }], absent: [] });
    expect(res.commands).toEqual(['ip addr add 10.1.0.22/32 dev v0']);
    // Still missing after "File exists" (e.g. the other writer removed it again): the verify says so.
    const gone = new FakeRunner((c) => (c.args[0] === '-j' ? before : failed('ip', c.args, 2, 'RTNETLINK answers: File exists\n')));
    await expect(new AddressesDriver(gone).reconcile({ present: [{ dev: 'v0', address: '10.1.0.22/32' }], absent: [] })).rejects.toThrow(/10\.1\.0\.22\/32 missing/);
    // Any other failure of the add is an error.
    const denied = new FakeRunner((c) => (c.args[0] === '-j' ? before : failed('ip', c.args, 2, 'RTNETLINK answers: Operation not permitted\n')));
    await expect(new AddressesDriver(denied).reconcile({ present: [{ dev: 'v0', address: '10.1.0.22/32' }], absent: [] })).rejects.toThrow(/Operation not permitted/);
  });
  it('names a missing interface', async () => {
    const r = new FakeRunner((c) => failed('ip', c.args, 1, fx('ip-j-addr-show-dev-nosuch.stderr')));
    await expect(new AddressesDriver(r).reconcile({ present: [{ dev: 'nosuch', address: '10.0.0.1/32' }], absent: [] })).rejects.toThrow('addresses: interface nosuch does not exist');
  });
});

describe('ConntrackDriver', () => {
  it('counts deleted entries; zero entries (exit 1) is not an error; other failures are', async () => {
    const two = new FakeRunner(() => ({ stdout: fx('conntrack-D-two.stdout'), stderr: fx('conntrack-D-two.stderr') }));
    expect(await new ConntrackDriver(two).flushMark(7)).toMatchObject({ deleted: 2, commands: ['conntrack -D -m 7'], differences: ['2 conntrack entries with mark 7'] });
    const none = new FakeRunner((c) => failed('conntrack', c.args, 1, fx('conntrack-D-none.stderr')));
    expect(await new ConntrackDriver(none).flushMark(7)).toMatchObject({ deleted: 0, differences: [] });
    const broken = new FakeRunner((c) => failed('conntrack', c.args, 1, 'conntrack v1.4.7 (conntrack-tools): Operation failed: Permission denied\n'));
    await expect(new ConntrackDriver(broken).flushMark(7)).rejects.toThrow(/Permission denied/);
  });
});

describe('VipGroup', () => {
  const group = { name: 'ingress', addresses: [{ dev: 'eth0', address: '192.0.2.254/24' }, { dev: 'eth1', address: '10.1.0.254/24' }], garp: { count: 3, repeatAfterMs: 5000, refreshIntervalMs: 60_000 } };
  function fakeKernel() {
    const addrs = new Map<string, Set<string>>([['eth0', new Set()], ['eth1', new Set()]]);
    const arpings: string[] = [];
    const pending: (() => void)[] = [];
    const runner = new FakeRunner((c) => {
      if (c.file === 'arping') {
        arpings.push(c.args.join(' '));
        return new Promise((res) => pending.push(() => res('')));
      }
      const dev = c.args[c.args.length - 1]!;
      if (c.args[0] === '-j') return JSON.stringify([{ ifname: dev, addr_info: [...addrs.get(dev)!].map((a) => ({ family: 'inet', local: a.split('/')[0], prefixlen: Number(a.split('/')[1]) })) }]);
      if (c.args[1] === 'add') addrs.get(dev)!.add(c.args[2]!);
      if (c.args[1] === 'del') addrs.get(dev)!.delete(c.args[2]!);
      return '';
    });
    return { runner, addrs, arpings, finishArpings: () => pending.splice(0).forEach((f) => f()) };
  }

  it('takeover: addresses first, then a background ARP burst, a second burst and periodic refreshes; idempotent; release stops them', async () => {
    const k = fakeKernel();
    const timers = new ManualTimers();
    const logs: DriverLogEntry[] = [];
    const v = new VipGroup(k.runner, group, { timers, log: (e) => logs.push(e) });
    const res = await v.reconcile(true);
    expect(res.commands).toEqual(['ip addr add 192.0.2.254/24 dev eth0', 'ip addr add 10.1.0.254/24 dev eth1', 'arping -U -c 3 -I eth0 192.0.2.254', 'arping -U -c 3 -I eth1 10.1.0.254']);
    // reconcile returned while the arpings still run
    expect(k.arpings).toHaveLength(2);
    const firstArping = k.runner.calls.findIndex((c) => c.file === 'arping');
    expect(k.runner.calls.slice(0, firstArping).filter((c) => c.args[1] === 'add')).toHaveLength(2);
    expect((await v.reconcile(true)).commands).toEqual([]);
    timers.advance(4999);
    expect(k.arpings).toHaveLength(2);
    timers.advance(1);
    expect(k.arpings).toHaveLength(4);
    timers.advance(60_000 - 5000);
    expect(k.arpings).toHaveLength(6);
    timers.advance(60_000);
    expect(k.arpings).toHaveLength(8);
    k.finishArpings();
    await v.settled();
    expect(v.announcements.map((a) => `${a.reason} ${a.address} ${a.ok}`)).toEqual(['takeover 192.0.2.254 true', 'takeover 10.1.0.254 true', 'repeat 192.0.2.254 true', 'repeat 10.1.0.254 true', 'refresh 192.0.2.254 true', 'refresh 10.1.0.254 true', 'refresh 192.0.2.254 true', 'refresh 10.1.0.254 true']);
    expect(logs.filter((l) => l.level === 'info')).toHaveLength(8);
    const rel = await v.reconcile(false);
    expect(rel.commands).toEqual(['ip addr del 192.0.2.254/24 dev eth0', 'ip addr del 10.1.0.254/24 dev eth1']);
    expect(timers.size).toBe(0);
    timers.advance(600_000);
    expect(k.arpings).toHaveLength(8);
    expect((await v.reconcile(false)).commands).toEqual([]);
  });

  it('re-announces when an address was deleted by hand while held', async () => {
    const k = fakeKernel();
    const v = new VipGroup(k.runner, group, { timers: new ManualTimers() });
    await v.reconcile(true);
    k.addrs.get('eth1')!.clear();
    const res = await v.reconcile(true);
    expect(res.differences).toEqual(['eth1: 10.1.0.254/24 missing']);
    expect(res.commands.filter((c) => c.startsWith('arping'))).toHaveLength(2);
  });

  it('never spawns arping when canAnnounce() says no, checked before each one', async () => {
    const k = fakeKernel();
    const timers = new ManualTimers();
    let valid = true;
    let asked = 0;
    const logs: DriverLogEntry[] = [];
    const v = new VipGroup(k.runner, group, { timers, canAnnounce: () => (asked++, valid), log: (e) => logs.push(e) });
    await v.reconcile(true);
    expect(k.arpings).toHaveLength(2);
    expect(asked).toBe(2);
    valid = false;
    timers.advance(5000);
    expect(k.arpings).toHaveLength(2);
    expect(asked).toBe(4);
    expect(logs.filter((l) => l.level === 'warn').map((l) => l.message)).toContain('not announcing 192.0.2.254 on eth0 (repeat): leadership cannot be proven');
  });

  it('release stops an arping in flight: recorded as not done, logged as stopped, not as an error', async () => {
    const k = fakeKernel();
    const logs: DriverLogEntry[] = [];
    const v = new VipGroup(k.runner, group, { timers: new ManualTimers(), log: (e) => logs.push(e) });
    await v.reconcile(true);
    expect(k.arpings).toHaveLength(2);
    await v.reconcile(false);
    await v.settled();
    expect(v.announcements.map((a) => `${a.address} ${a.ok} ${a.error}`)).toEqual(['192.0.2.254 false arping -U -c 3 -I eth0 192.0.2.254: aborted', '10.1.0.254 false arping -U -c 3 -I eth1 10.1.0.254: aborted']);
    expect(logs.filter((l) => l.level === 'error')).toEqual([]);
    expect(logs.filter((l) => /stopped: the addresses are being released/.test(l.message))).toHaveLength(2);
  });

  it('collects the result of a failed arping (address not on the interface: exit 2)', async () => {
    const logs: DriverLogEntry[] = [];
    const r = new FakeRunner((c) => {
      if (c.file === 'arping') return failed('arping', c.args, 2, 'arping: bind: Cannot assign requested address\n');
      return JSON.stringify([{ ifname: c.args[4], addr_info: [{ family: 'inet', local: c.args[4] === 'eth0' ? '192.0.2.254' : '10.1.0.254', prefixlen: 24 }] }]);
    });
    const v = new VipGroup(r, group, { timers: new ManualTimers(), log: (e) => logs.push(e) });
    await v.reconcile(true);
    await v.settled();
    expect(v.announcements.map((a) => a.ok)).toEqual([false, false]);
    expect(logs.filter((l) => l.level === 'error')[0]!.message).toMatch(/gratuitous ARP for 192.0.2.254 on eth0 \(takeover\) failed/);
  });
});
