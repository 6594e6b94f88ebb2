// rtnetlink wire format: messages built here byte by byte (as the kernel sends them), decoded by failover/netlink;
// encoders checked field by field; planner operations and the ip command lines they equal.
import { addressArgs } from '../../failover/addresses';
import { attr, cstr, parseAttrs, u32 } from '../../failover/netlink/attrs';
import { addrBytes, AF_INET, AF_INET6 } from '../../failover/netlink/ip-address';
import { NLM_F } from '../../failover/netlink/message';
import { decodeRuleHdr, decodeRtMsg, encodeIfAddrMsg, encodeRtMsg, encodeRuleHdr, FRA, IFA, RTA, RTM } from '../../failover/netlink/rtnl-codec';
import { describeNotification, KernelWatch, WATCH_GROUPS, type KernelInterest } from '../../failover/netlink/kernel-watch';
import { decodeAddress, encodeAddressOp, NetlinkAddressesKernel } from '../../failover/netlink/rtnl-addresses';
import { decodeRoute, decodeRule, encodeRouteOp, encodeRule, NetlinkRoutesKernel } from '../../failover/netlink/rtnl-routes';
import { RtnlRequestError, type Rtnl, type RtnlMessage } from '../../failover/netlink/rtnl-socket';
import { PlanRoutesKernel } from '../../failover/plan-kernels';
import { opCommand, planRoutes, RoutesDriver, type RoutesOp } from '../../failover/routes';
import { KernelNetlinkError, KernelParseError, KernelUnavailableError } from '../../failover/types';

const rtmsg = (o: Partial<Parameters<typeof encodeRtMsg>[0]>) => encodeRtMsg({ family: AF_INET, dstLen: 0, srcLen: 0, tos: 0, table: 254, protocol: 3, scope: 0, type: 1, flags: 0, ...o });
const rulehdr = (o: Partial<Parameters<typeof encodeRuleHdr>[0]>) => encodeRuleHdr({ family: AF_INET, dstLen: 0, srcLen: 0, tos: 0, table: 0, action: 1, flags: 0, ...o });
const names = new Map([[3, 'eth0'], [1, 'lo']]);

describe('route messages', () => {
  const route = (hdr: Buffer, ...attrs: Buffer[]) => Buffer.concat([hdr, ...attrs]);
  it('decodes a kernel route (table in RTA_TABLE, gateway, oif, metric) as the ip -j parser would', () => {
    const m = route(rtmsg({ dstLen: 24, table: 0 }), attr(RTA.TABLE, u32(1001)), attr(RTA.DST, addrBytes('203.0.113.0')), attr(RTA.GATEWAY, addrBytes('10.2.0.11')), attr(RTA.OIF, u32(3)), attr(RTA.PRIORITY, u32(10)));
    expect(decodeRoute(m, 4, names)).toEqual({ table: 1001, route: { type: 'unicast', dst: '203.0.113.0/24', dstText: '203.0.113.0/24', gateway: '10.2.0.11', dev: 'eth0', metric: 10, multipath: false } });
  });
  it('default, host routes, local type, multipath, unknown interface index', () => {
    expect(decodeRoute(route(rtmsg({ type: 2, table: 150 }), attr(RTA.OIF, u32(1))), 4, names).route).toMatchObject({ type: 'local', dst: '0.0.0.0/0', dstText: 'default', dev: 'lo' });
    expect(decodeRoute(route(rtmsg({ family: AF_INET6, dstLen: 128 }), attr(RTA.DST, addrBytes('2001:db8::5')), attr(RTA.OIF, u32(9))), 6, names).route).toMatchObject({ dst: '2001:db8::5/128', dstText: '2001:db8::5', dev: 'if9' });
    expect(decodeRoute(route(rtmsg({ type: 6 }), attr(RTA.MULTIPATH, Buffer.alloc(8))), 4, names).route).toMatchObject({ type: 'blackhole', multipath: true });
  });
  it('a malformed attribute is a decode error naming the route', () => {
    const m = route(rtmsg({ dstLen: 24, table: 101 }), attr(RTA.DST, addrBytes('203.0.113.0')), attr(RTA.GATEWAY, Buffer.from([10, 2, 0])));
    expect(() => decodeRoute(m, 4, names)).toThrow('table 101: route 203.0.113.0/24: RTA_GATEWAY has 3 bytes, want 4 for family 2');
    expect(() => decodeRoute(Buffer.alloc(6), 4, names)).toThrow(/shorter than struct rtmsg/);
    expect(() => decodeRoute(route(rtmsg({ dstLen: 40 })), 4, names)).toThrow('table 254: prefix length 40 > 32');
  });
  it('encodes replace and delete like ip route (table > 255 in RTA_TABLE, scope, protocol, type)', () => {
    const rep = encodeRouteOp({ op: 'route-replace', table: 1001, dst: '203.0.113.0/24', via: '10.2.0.11', dev: 'eth0' }, 4, 3);
    expect(decodeRtMsg(rep)).toMatchObject({ family: AF_INET, dstLen: 24, table: 0, protocol: 3, scope: 0, type: 1 });
    expect(decodeRoute(rep, 4, names)).toEqual({ table: 1001, route: { type: 'unicast', dst: '203.0.113.0/24', dstText: '203.0.113.0/24', gateway: '10.2.0.11', dev: 'eth0', metric: 0, multipath: false } });
    const local = encodeRouteOp({ op: 'route-replace', table: 150, dst: '::/0', type: 'local', dev: 'lo' }, 6, 1);
    expect(decodeRtMsg(local)).toMatchObject({ family: AF_INET6, dstLen: 0, table: 150, scope: 254, type: 2 });
    expect(parseAttrs(local, 12).map((a) => a.type)).toEqual([RTA.TABLE, RTA.OIF]);
    const del = encodeRouteOp({ op: 'route-del', table: 102, dst: '198.18.0.0/16', type: 'blackhole', metric: 10 }, 4, undefined);
    expect(decodeRtMsg(del)).toMatchObject({ dstLen: 16, table: 102, protocol: 0, scope: 255, type: 6 });
    expect(decodeRoute(del, 4, names).route).toMatchObject({ dst: '198.18.0.0/16', metric: 10 });
    expect(decodeRtMsg(encodeRouteOp({ op: 'route-del', table: 102, dst: '198.18.0.0/16', type: 'unicast', metric: 0 }, 4, undefined)).type).toBe(0);
  });
});

describe('rule messages (struct fib_rule_hdr + FRA_*)', () => {
  it('decodes a rule as the ip -j parser would; unset suppressors are not "other"', () => {
    const m = Buffer.concat([rulehdr({ srcLen: 32, table: 200 }), attr(FRA.PRIORITY, u32(1000)), attr(FRA.SRC, addrBytes('10.1.0.21')), attr(FRA.TABLE, u32(200)), attr(FRA.SUPPRESS_PREFIXLEN, u32(0xffffffff)), attr(FRA.PROTOCOL, Buffer.from([0]))]);
    expect(decodeRule(m, 4)).toEqual({ priority: 1000, from: '10.1.0.21', to: undefined, fwmark: undefined, fwmask: undefined, iif: undefined, oif: undefined, table: 200, action: undefined, not: false, other: [] });
  });
  it('keeps what makes a rule not ours: not, action, unknown selectors, tos', () => {
    const m = Buffer.concat([rulehdr({ action: 7, flags: 2, tos: 16 }), attr(FRA.PRIORITY, u32(500)), attr(FRA.FWMARK, u32(1)), attr(FRA.FWMASK, u32(0xff)), attr(FRA.IIFNAME, cstr('eth1')), attr(FRA.SUPPRESS_PREFIXLEN, u32(0)), attr(22, Buffer.from([6]))]);
    expect(decodeRule(m, 4)).toMatchObject({ priority: 500, fwmark: 1, fwmask: 0xff, iif: 'eth1', table: undefined, action: 'unreachable', not: true, other: ['suppress_prefixlength', 'ipproto', 'tos'] });
  });
  it('a malformed attribute names the rule', () => {
    const m = Buffer.concat([rulehdr({}), attr(FRA.PRIORITY, u32(500)), attr(FRA.FWMARK, Buffer.from([1, 0]))]);
    expect(() => decodeRule(m, 4)).toThrow('rule at priority 500: FRA_FWMARK: expected 4 bytes, got 2');
    expect(() => decodeRule(Buffer.concat([rulehdr({ family: AF_INET6 })]), 4)).toThrow('family 10, want 2');
  });
  it('encodes add/del selectors (prefix lengths in the header, names, invert, table > 255)', () => {
    const add = encodeRule({ priority: 500, from: '2001:db8::/64', fwmark: 1, iif: 'eth1', table: 1001, not: true }, 6);
    expect(decodeRuleHdr(add)).toMatchObject({ family: AF_INET6, srcLen: 64, dstLen: 0, table: 0, action: 1, flags: 2 });
    expect(decodeRule(add, 6)).toMatchObject({ priority: 500, from: '2001:db8::/64', fwmark: 1, iif: 'eth1', table: 1001, not: true, other: [] });
    const del = encodeRule({ priority: 501, fwmark: 16, fwmask: 255, action: 'blackhole' }, 4);
    expect(decodeRuleHdr(del)).toMatchObject({ action: 6, table: 0 });
    expect(decodeRule(del, 4)).toMatchObject({ fwmark: 16, fwmask: 255, action: 'blackhole' });
    expect(() => encodeRule({ priority: 1, table: 'custom' }, 4)).toThrow('rule table "custom" is a name, not a number');
  });
});

describe('address messages', () => {
  it('decodes IFA_LOCAL (IPv4) or IFA_ADDRESS (IPv6) and encodes add with nodad', () => {
    const v4 = Buffer.concat([encodeIfAddrMsg({ family: AF_INET, prefixlen: 32, flags: 0, scope: 0, index: 3 }), attr(IFA.ADDRESS, addrBytes('10.9.9.9')), attr(IFA.LOCAL, addrBytes('10.1.0.21'))]);
    expect(decodeAddress(v4)).toEqual({ index: 3, address: { family: 'inet', local: '10.1.0.21', prefixlen: 32 } });
    const add = encodeAddressOp({ op: 'add', dev: 'eth0', address: '2001:db8::31/128', nodad: true }, 3);
    expect([...add.subarray(0, 8)]).toEqual([AF_INET6, 128, 0x02, 0, 3, 0, 0, 0]);
    expect(decodeAddress(add)).toEqual({ index: 3, address: { family: 'inet6', local: '2001:db8::31', prefixlen: 128 } });
    expect(encodeAddressOp({ op: 'del', dev: 'eth0', address: '10.1.0.21/24' }, 3)[2]).toBe(0);
    expect(() => decodeAddress(encodeIfAddrMsg({ family: AF_INET, prefixlen: 24, flags: 0, scope: 0, index: 4 }))).toThrow('interface index 4: address message without IFA_LOCAL or IFA_ADDRESS');
  });
});

/** A kernel double answering requests from a handler (type, flags, payload) and recording them. */
class FakeRtnl implements Rtnl {
  readonly port = 77;
  readonly sent: { type: number; flags: number; payload: Buffer }[] = [];
  constructor(private readonly answer: (type: number, payload: Buffer) => RtnlMessage[] | Error) {}
  async request(type: number, flags: number, payload: Buffer): Promise<RtnlMessage[]> {
    this.sent.push({ type, flags, payload });
    const a = this.answer(type, payload);
    if (a instanceof Error) throw a;
    return a;
  }
  subscribe(): () => void {
    return () => undefined;
  }
  close(): void {}
}
const link = (index: number, name: string): RtnlMessage => {
  const b = Buffer.alloc(16);
  b.writeInt32LE(index, 4);
  return { type: RTM.NEWLINK, port: 0, data: Buffer.concat([b, attr(3, cstr(name))]) };
};

describe('NetlinkRoutesKernel / NetlinkAddressesKernel with a kernel double', () => {
  it('reads only managed tables in full: garbage in another table is ignored, in a managed one it is a typed parse error', async () => {
    const good = Buffer.concat([rtmsg({ dstLen: 24, table: 101 }), attr(RTA.DST, addrBytes('203.0.113.0')), attr(RTA.GATEWAY, addrBytes('10.2.0.11')), attr(RTA.OIF, u32(3))]);
    const junk = (t: number) => Buffer.concat([rtmsg({ dstLen: 24, table: t }), attr(RTA.DST, Buffer.from([1]))]);
    const kernel = (t: number) => new FakeRtnl((type) => (type === RTM.GETLINK ? [link(3, 'eth0')] : type === RTM.GETRULE ? [] : [{ type: RTM.NEWROUTE, port: 0, data: good }, { type: RTM.NEWROUTE, port: 0, data: junk(t) }]));
    const s = await new NetlinkRoutesKernel(kernel(200)).read(4, [101]);
    expect(s.tables.get(101)).toEqual([{ type: 'unicast', dst: '203.0.113.0/24', dstText: '203.0.113.0/24', gateway: '10.2.0.11', dev: 'eth0', metric: 0, multipath: false }]);
    const e = await new NetlinkRoutesKernel(kernel(101)).read(4, [101]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(KernelParseError);
    expect((e as Error).message).toMatch(/^routes: cannot parse output of "rtnetlink route dump \(RTM_GETROUTE\)" line 2: table 101: RTA_DST has 1 bytes, want 4 for family 2: "[0-9a-f]+"$/);
  });
  it('applies ops in order with create/replace/excl flags, and stops at the first refusal with a typed error', async () => {
    const k = new FakeRtnl((type) => (type === RTM.GETLINK ? [link(3, 'eth0')] : type === RTM.NEWRULE ? new RtnlRequestError('EEXIST', 17, 'file exists') : []));
    const ops: RoutesOp[] = [
      { op: 'route-replace', table: 101, dst: '203.0.113.0/24', via: '10.2.0.11', dev: 'eth0' },
      { op: 'rule-add', rule: { priority: 500, fwmark: 1, table: 101 } },
      { op: 'route-del', table: 101, dst: '198.51.100.0/24', type: 'unicast', metric: 0 },
    ];
    const e = await new NetlinkRoutesKernel(k).apply(4, ops).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(KernelNetlinkError);
    expect(e).toMatchObject({ driver: 'routes', object: 'rule at priority 500', code: 'EEXIST', message: 'routes: rule at priority 500: EEXIST (file exists) [ip rule add priority 500 fwmark 1 lookup 101]' });
    expect(k.sent.map((s) => [s.type, s.flags])).toEqual([[RTM.GETLINK, 0], [RTM.NEWROUTE, NLM_F.CREATE | NLM_F.REPLACE], [RTM.NEWRULE, NLM_F.CREATE | NLM_F.EXCL]]);
  });
  it('addresses: a missing interface is KernelUnavailableError; EEXIST on add is "exists" (the verify decides)', async () => {
    const none = new FakeRtnl(() => new RtnlRequestError('ENODEV', 19, 'no such device'));
    await expect(new NetlinkAddressesKernel(none).read('nosuch')).rejects.toThrow(new KernelUnavailableError('addresses', 'addresses: interface nosuch does not exist'));
    const k = new FakeRtnl((type) => (type === RTM.GETLINK ? [link(3, 'eth0')] : new RtnlRequestError('EEXIST', 17, 'file exists')));
    await expect(new NetlinkAddressesKernel(k).apply({ op: 'add', dev: 'eth0', address: '10.1.0.21/32' }, 'vip:x')).resolves.toBe('exists');
    await expect(new NetlinkAddressesKernel(k).apply({ op: 'del', dev: 'eth0', address: '10.1.0.21/32' }, 'vip:x')).rejects.toMatchObject({ name: 'KernelNetlinkError', driver: 'vip:x', object: 'address 10.1.0.21/32 on eth0' });
  });
});

describe('planner → operations → command lines', () => {
  it('every op formats as the ip command line it equals', () => {
    const state = { rules: [{ priority: 501, fwmark: 16, fwmask: 255, table: 103, not: false, other: [] }], tables: new Map([[102, [{ type: 'blackhole', dst: '198.18.0.0/16', dstText: '198.18.0.0/16', metric: 0, multipath: false }]]]) };
    const p = planRoutes(state, { rules: [{ priority: 500, fwmark: 1, iif: 'v1', table: 101 }], tables: { 101: [{ dst: 'default', type: 'local', dev: 'lo' }], 102: [] }, managedPriorities: [501] }, 4);
    expect(p.ops.map((o) => opCommand(o, 4))).toEqual([
      'ip route replace local 0.0.0.0/0 dev lo table 101',
      'ip rule add priority 500 fwmark 1 iif v1 lookup 101',
      'ip rule del priority 501 fwmark 0x10/0xff lookup 103',
      'ip route del blackhole 198.18.0.0/16 table 102',
    ]);
    expect(opCommand({ op: 'route-del', table: 7, dst: '::/0', type: 'unicast', metric: 1024 }, 6)).toBe('ip -6 route del ::/0 metric 1024 table 7');
    expect(addressArgs({ op: 'add', dev: 'eth0', address: '2001:db8::1/128', nodad: true }).join(' ')).toBe('addr add 2001:db8::1/128 dev eth0 nodad');
  });
  it('plan through a kernel seam: reads real state, records the command lines, changes nothing', async () => {
    const lines: string[] = [];
    const reader = { read: async () => ({ rules: [], tables: new Map([[101, []]]) }), apply: async () => { throw new Error('must not apply'); } };
    const r = await new RoutesDriver(new PlanRoutesKernel(reader, (l) => lines.push(l)), { verify: false, family: 6 }).reconcile({ rules: [], tables: { 101: [{ dst: '2001:db8::/32', via: 'fe80::1', dev: 'eth0' }] } });
    expect(lines).toEqual(['ip -6 route replace 2001:db8::/32 via fe80::1 dev eth0 table 101']);
    expect(r.commands).toEqual(lines);
  });
});

describe('notification filter', () => {
  const interest: KernelInterest = { tables4: new Set([101]), tables6: new Set([201]), rulePriorities: new Set([500]), devs: new Set(['eth0']), addresses: new Set(['10.1.0.21', '2001:db8::31']) };
  const msg = (type: number, data: Buffer): RtnlMessage => ({ type, port: 0, data });
  it('names managed objects and ignores the rest', () => {
    expect(describeNotification(msg(RTM.DELROUTE, Buffer.concat([rtmsg({ table: 101 })])), interest)).toBe('route deleted in table 101 (IPv4)');
    expect(describeNotification(msg(RTM.NEWROUTE, Buffer.concat([rtmsg({ table: 101, family: AF_INET6 })])), interest)).toBeNull();
    expect(describeNotification(msg(RTM.NEWROUTE, Buffer.concat([rtmsg({ family: AF_INET6, table: 0 }), attr(RTA.TABLE, u32(201))])), interest)).toBe('route added or changed in table 201 (IPv6)');
    expect(describeNotification(msg(RTM.NEWRULE, Buffer.concat([rulehdr({}), attr(FRA.PRIORITY, u32(500))])), interest)).toBe('rule added or changed at priority 500 (IPv4)');
    expect(describeNotification(msg(RTM.NEWRULE, Buffer.concat([rulehdr({}), attr(FRA.PRIORITY, u32(32766))])), interest)).toBeNull();
    expect(describeNotification(msg(RTM.DELADDR, encodeAddressOp({ op: 'del', dev: 'eth0', address: '2001:db8::31/128' }, 3)), interest)).toBe('address 2001:db8::31 deleted');
    expect(describeNotification(msg(RTM.NEWADDR, encodeAddressOp({ op: 'add', dev: 'eth0', address: '10.9.9.9/32' }, 3)), interest)).toBeNull();
    expect(describeNotification(link(3, 'eth0'), interest)).toBe('interface eth0 changed');
    expect(describeNotification(link(4, 'eth9'), interest)).toBeNull();
  });
  it('an undecodable notification counts as a possible change (reconcile rather than guess)', () => {
    expect(describeNotification(msg(RTM.NEWRULE, Buffer.alloc(3)), interest)).toMatch(/^undecodable notification \(type 32: rule message has 3 bytes/);
  });
});

describe('KernelWatch', () => {
  it('subscribes to link, address, route and rule groups of both families; coalesces a burst; ignores its own changes; reports lost notifications', async () => {
    let deliver: (m: RtnlMessage) => void = () => undefined;
    let lost: (why: string) => void = () => undefined;
    let groups: readonly number[] = [];
    const rtnl: Rtnl = {
      port: 77,
      request: async () => [],
      subscribe: (g, fn, onLost) => { groups = g; deliver = fn; lost = onLost; return () => { groups = []; }; },
      close: () => undefined,
    };
    const interest: KernelInterest = { tables4: new Set([101]), tables6: new Set(), rulePriorities: new Set(), devs: new Set(), addresses: new Set() };
    const seen: { what: string; count: number }[] = [];
    const w = new KernelWatch(rtnl, () => interest, (c) => seen.push(c), 10);
    w.start();
    expect([...groups].sort((a, b) => a - b)).toEqual([1, 5, 7, 8, 9, 11, 19]);
    expect(WATCH_GROUPS).toHaveLength(7);
    const del = Buffer.concat([rtmsg({ table: 101 })]);
    deliver({ type: RTM.DELROUTE, port: 77, data: del }); // caused by our own request
    await new Promise((r) => setTimeout(r, 30));
    expect(seen).toEqual([]);
    deliver({ type: RTM.DELROUTE, port: 0, data: del });
    deliver({ type: RTM.NEWROUTE, port: 4242, data: del });
    deliver({ type: RTM.NEWROUTE, port: 0, data: Buffer.concat([rtmsg({ table: 7 })]) }); // unmanaged
    await new Promise((r) => setTimeout(r, 30));
    expect(seen).toEqual([{ what: 'route deleted in table 101 (IPv4)', count: 2 }]);
    lost('No buffer space available');
    await new Promise((r) => setTimeout(r, 30));
    expect(seen[1]).toEqual({ what: 'notifications lost (No buffer space available)', count: 1 });
    w.close();
    expect(groups).toEqual([]);
  });
});
