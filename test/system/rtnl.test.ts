// The rtnetlink backend (failover/netlink) against the real kernel, in a scratch namespace (prefix rtnl-, removed
// afterwards). The drivers run in a child process inside the namespace (test/system/rtnl-agent.js, over dist/:
// build first with `npx tsc -p tsconfig.build.json`); every result is checked through `ip -j` output.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseAddresses } from '../../failover/addresses';
import { parseRoutes, parseRules, type RoutesWant } from '../../failover/routes';
import { sh, trySh, waitFor } from './harness';

const NS = `rtnl-${process.pid % 100000}`;
const AGENT = join(__dirname, 'rtnl-agent.js');

interface Answer { id: number; ok: boolean; value?: unknown; error?: { name: string; message: string; code?: string; object?: string; driver?: string } }
let agent: ChildProcess;
const answers = new Map<number, (a: Answer) => void>();
const changes: { what: string; count: number }[] = [];
let nextId = 1;

function call(method: string, args: unknown = {}): Promise<Answer> {
  const id = nextId++;
  return new Promise((resolve) => {
    answers.set(id, resolve);
    agent.stdin!.write(JSON.stringify({ id, method, args }) + '\n');
  });
}
async function ok<T>(method: string, args: unknown = {}): Promise<T> {
  const a = await call(method, args);
  if (!a.ok) throw new Error(`${method}: ${a.error?.name}: ${a.error?.message}`);
  return a.value as T;
}
const ip = (...args: string[]) => sh(NS, ['ip', ...args]);
const rules4 = () => parseRules(ip('-j', 'rule', 'show'));
const rules6 = () => parseRules(ip('-6', '-j', 'rule', 'show'), 'ip -6 -j rule show', 6);
const table = (t: number, family: 4 | 6 = 4) => parseRoutes(ip(...(family === 6 ? ['-6'] : []), '-j', 'route', 'show', 'table', String(t)), 'x', family);

beforeAll(async () => {
  if (!existsSync(join(__dirname, '../../dist/failover/netlink/kernels.js'))) throw new Error('dist/ is not built: npx tsc -p tsconfig.build.json');
  trySh(null, ['ip', 'netns', 'del', NS]);
  sh(null, ['ip', 'netns', 'add', NS]);
  for (const cmd of [
    'link set lo up',
    'link add d0 type veth peer name d1',
    'link set d0 up',
    'link set d1 up',
    'addr add 10.9.0.1/24 dev d0',
    'addr add 2001:db8:9::1/64 dev d0 nodad',
  ]) ip(...cmd.split(' '));
  agent = spawn('ip', ['netns', 'exec', NS, process.execPath, AGENT], { stdio: ['pipe', 'pipe', 'inherit'] });
  createInterface({ input: agent.stdout! }).on('line', (l) => {
    const m = JSON.parse(l) as Answer & { change?: { what: string; count: number }; fatal?: string };
    if (m.fatal) throw new Error(m.fatal);
    if (m.change) changes.push(m.change);
    else answers.get(m.id)?.(m);
  });
});

afterAll(() => {
  agent?.stdin?.end();
  agent?.kill();
  trySh(null, ['ip', 'netns', 'del', NS]);
});

const want4 = (via: string): RoutesWant => ({
  rules: [{ priority: 500, fwmark: 1, iif: 'd1', table: 101 }, { priority: 499, from: '10.9.0.31', table: 200 }],
  tables: { 101: [{ dst: '203.0.113.0/24', via, dev: 'd0' }, { dst: '198.51.100.0/24', via, dev: 'd0' }], 200: [{ dst: 'default', via, dev: 'd0' }], 150: [{ dst: 'default', type: 'local', dev: 'lo' }] },
  managedPriorities: [498],
});

describe('rtnetlink routes driver (real kernel)', () => {
  it('adds rules and routes in managed tables, reports them as ip command lines, and is idempotent', async () => {
    const r = await ok<{ commands: string[]; changedTables: number[] }>('routesReconcile', { family: 4, want: want4('10.9.0.21') });
    expect(r.commands).toEqual([
      'ip route replace 203.0.113.0/24 via 10.9.0.21 dev d0 table 101',
      'ip route replace 198.51.100.0/24 via 10.9.0.21 dev d0 table 101',
      // Tables in numeric order (object keys).
      'ip route replace local 0.0.0.0/0 dev lo table 150',
      'ip route replace 0.0.0.0/0 via 10.9.0.21 dev d0 table 200',
      'ip rule add priority 500 fwmark 1 iif d1 lookup 101',
      'ip rule add priority 499 from 10.9.0.31 lookup 200',
    ]);
    expect(r.changedTables).toEqual([101, 150, 200]);
    expect(table(101).map((x) => [x.dst, x.gateway, x.dev])).toEqual([['198.51.100.0/24', '10.9.0.21', 'd0'], ['203.0.113.0/24', '10.9.0.21', 'd0']]);
    expect(table(150)).toMatchObject([{ type: 'local', dst: '0.0.0.0/0', dev: 'lo' }]);
    expect(rules4().filter((x) => x.priority === 499 || x.priority === 500)).toMatchObject([{ priority: 499, from: '10.9.0.31', table: 200 }, { priority: 500, fwmark: 1, iif: 'd1', table: 101 }]);
    expect((await ok<{ commands: string[] }>('routesReconcile', { family: 4, want: want4('10.9.0.21') })).commands).toEqual([]);
  });

  it('reads exactly what ip -j reads (rules and tables)', async () => {
    const s = await ok<{ rules: unknown[]; tables: [number, unknown[]][] }>('routesRead', { family: 4, tables: [101, 150, 200] });
    const plain = (x: unknown) => JSON.parse(JSON.stringify(x));
    const mine = s.rules as { priority: number; fwmask?: number }[];
    // ip -j prints no fwmask when it is the full mask; the planner treats both forms alike.
    expect(mine.map(({ fwmask, ...r }) => (fwmask === 0xffffffff ? r : { ...r, fwmask }))).toEqual(plain(rules4()));
    for (const [t, routes] of s.tables) expect(routes).toEqual(plain(table(t)));
  });

  it('replaces changed next hops, deletes unwanted routes and rules at managed priorities', async () => {
    ip('rule', 'add', 'priority', '498', 'from', '10.9.0.99', 'lookup', '200');
    ip('route', 'add', '192.0.2.0/24', 'via', '10.9.0.23', 'table', '101');
    const r = await ok<{ commands: string[] }>('routesReconcile', { family: 4, want: want4('10.9.0.22') });
    expect(r.commands).toEqual([
      'ip route replace 203.0.113.0/24 via 10.9.0.22 dev d0 table 101',
      'ip route replace 198.51.100.0/24 via 10.9.0.22 dev d0 table 101',
      'ip route replace 0.0.0.0/0 via 10.9.0.22 dev d0 table 200',
      'ip rule del priority 498 from 10.9.0.99 lookup 200',
      'ip route del 192.0.2.0/24 table 101',
    ]);
    expect(table(101).map((x) => x.gateway)).toEqual(['10.9.0.22', '10.9.0.22']);
    expect(rules4().some((x) => x.priority === 498)).toBe(false);
  });

  it('IPv6: rules and routes, the kernel default metric 1024 included', async () => {
    const want: RoutesWant = {
      rules: [{ priority: 500, fwmark: 1, iif: 'd1', table: 101 }, { priority: 499, from: '2001:db8:9::31', table: 200 }],
      tables: { 101: [{ dst: '2001:db8:77::/48', via: '2001:db8:9::21', dev: 'd0' }], 200: [{ dst: 'default', via: '2001:db8:9::21', dev: 'd0' }], 150: [{ dst: 'default', type: 'local', dev: 'lo' }] },
    };
    const r = await ok<{ driver: string; commands: string[] }>('routesReconcile', { family: 6, want });
    expect(r.driver).toBe('routes6');
    expect(r.commands).toEqual([
      'ip -6 route replace 2001:db8:77::/48 via 2001:db8:9::21 dev d0 table 101',
      'ip -6 route replace local ::/0 dev lo table 150',
      'ip -6 route replace ::/0 via 2001:db8:9::21 dev d0 table 200',
      'ip -6 rule add priority 500 fwmark 1 iif d1 lookup 101',
      'ip -6 rule add priority 499 from 2001:db8:9::31 lookup 200',
    ]);
    expect(table(101, 6)).toMatchObject([{ dst: '2001:db8:77::/48', gateway: '2001:db8:9::21', dev: 'd0', metric: 1024 }]);
    expect(rules6().filter((x) => x.priority === 499)).toMatchObject([{ from: '2001:db8:9::31', table: 200 }]);
    expect((await ok<{ commands: string[] }>('routesReconcile', { family: 6, want })).commands).toEqual([]);
    // The other family's rules at the same priorities are untouched.
    expect(rules4().filter((x) => x.priority === 500)).toHaveLength(1);
  });

  it('a kernel refusal comes back as KernelNetlinkError naming the route and the errno', async () => {
    const a = await call('routesApply', { family: 4, ops: [{ op: 'route-replace', table: 101, dst: '203.0.113.0/24', via: '10.99.0.1', dev: 'd0' }] });
    expect(a.error).toMatchObject({ name: 'KernelNetlinkError', driver: 'routes', code: 'ENETUNREACH', object: 'table 101: route 203.0.113.0/24' });
    expect(a.error!.message).toContain('[ip route replace 203.0.113.0/24 via 10.99.0.1 dev d0 table 101]');
    const b = await call('routesReconcile', { family: 4, want: { rules: [], tables: { 101: [{ dst: '203.0.113.0/24', via: '10.9.0.22', dev: 'nosuch0' }] } } });
    expect(b.error).toMatchObject({ name: 'KernelNetlinkError', code: 'ENODEV' });
    expect(b.error!.message).toMatch(/interface nosuch0 does not exist/);
  });
});

describe('rtnetlink addresses driver (real kernel)', () => {
  it('adds IPv4 and IPv6 (nodad) addresses, fixes a wrong prefix, removes absent ones', async () => {
    ip('addr', 'add', '10.9.0.32/24', 'dev', 'd0');
    const r = await ok<{ commands: string[] }>('addressesReconcile', {
      want: { present: [{ dev: 'd0', address: '10.9.0.31/32' }, { dev: 'd0', address: '10.9.0.32/32' }, { dev: 'd0', address: '2001:db8:9:0::31/128', nodad: true }], absent: [{ dev: 'd0', address: '10.9.0.1/24' }] },
    });
    expect(r.commands).toEqual([
      'ip addr add 10.9.0.31/32 dev d0',
      'ip addr add 10.9.0.32/32 dev d0',
      'ip addr add 2001:db8:9:0::31/128 dev d0 nodad',
      'ip addr del 10.9.0.32/24 dev d0',
      'ip addr del 10.9.0.1/24 dev d0',
    ]);
    const now = parseAddresses(ip('-j', 'addr', 'show', 'dev', 'd0'), 'd0', 'x').filter((a) => !a.local.startsWith('fe80'));
    expect(now.map((a) => `${a.local}/${a.prefixlen}`).sort()).toEqual(['10.9.0.31/32', '10.9.0.32/32', '2001:db8:9::1/64', '2001:db8:9::31/128']);
    expect(ip('-6', 'addr', 'show', 'dev', 'd0')).toMatch(/2001:db8:9::31\/128 scope global nodad/);
    ip('addr', 'add', '10.9.0.1/24', 'dev', 'd0');
    const gone = await call('addressesReconcile', { want: { present: [{ dev: 'nosuch0', address: '10.9.0.40/32' }], absent: [] } });
    expect(gone.error).toMatchObject({ name: 'KernelUnavailableError', message: 'addresses: interface nosuch0 does not exist' });
  });
});

describe('kernel change notifications', () => {
  it('reports a hand-made change to a managed object, not our own changes nor unmanaged objects', async () => {
    await ok('watch', { tables4: [101], tables6: [101], rulePriorities: [500], devs: ['d0'], addresses: ['10.9.0.31'] });
    changes.length = 0;
    // Our own change (same socket port as the requests): not reported.
    await ok('routesReconcile', { family: 4, want: want4('10.9.0.21') });
    // Unmanaged table and priority.
    ip('route', 'add', '192.0.2.0/24', 'via', '10.9.0.23', 'table', '999');
    ip('rule', 'add', 'priority', '600', 'lookup', '999');
    await new Promise((r) => setTimeout(r, 300));
    expect(changes).toEqual([]);
    ip('route', 'del', '203.0.113.0/24', 'table', '101');
    await waitFor('route deletion reported', () => changes.length > 0, 3000);
    expect(changes[0]!.what).toBe('route deleted in table 101 (IPv4)');
    changes.length = 0;
    ip('addr', 'del', '10.9.0.31/32', 'dev', 'd0');
    await waitFor('address deletion reported', () => changes.length > 0, 3000);
    expect(changes[0]!.what).toBe('address 10.9.0.31 deleted');
    changes.length = 0;
    ip('-6', 'rule', 'del', 'priority', '500');
    await waitFor('rule deletion reported', () => changes.length > 0, 3000);
    expect(changes[0]!.what).toBe('rule deleted at priority 500 (IPv6)');
  });
});
