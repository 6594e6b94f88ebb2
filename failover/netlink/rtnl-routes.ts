// RoutesKernel over rtnetlink: rules and routes read by dump, each operation one request.
import { attr, getU32, parseAttrs, readString, stringAttr, u32Attr, type Attr } from './attrs';
import { NetlinkDecodeError } from './decode-error';
import { addrBytes, AF_INET, AF_INET6, readAddr } from './ip-address';
import { NLM_F } from './message';
import {
  decodeRtMsg, decodeRuleHdr, encodeRtMsg, encodeRuleHdr, FIB_RULE_INVERT, FR_ACT_TO_TBL, FRA, ROUTE_TYPES, RT_SCOPE, RTA, RTM, RTN, RTPROT_BOOT, RULE_ACTIONS,
} from './rtnl-codec';
import { linkIndex, readLinkNames } from './rtnl-links';
import { RtnlRequestError, type Rtnl } from './rtnl-socket';
import { hostOrPrefix, normPrefix, FAMILIES, opCommand, type Family, type KernelRoute, type KernelRule, type RoutesKernel, type RoutesKernelState, type RoutesOp, type RuleSpec } from '../routes';
import { KernelNetlinkError, KernelParseError } from '../types';

const afOf = (family: Family) => (family === 4 ? AF_INET : AF_INET6);

/** Rule attributes this driver understands; any other makes a rule "not ours" (KernelRule.other). */
const KNOWN_FRA = new Set<number>([FRA.DST, FRA.SRC, FRA.IIFNAME, FRA.PRIORITY, FRA.FWMARK, FRA.TABLE, FRA.FWMASK, FRA.OIFNAME, FRA.PAD, FRA.PROTOCOL]);

/** FRA_SUPPRESS_IFGROUP / FRA_SUPPRESS_PREFIXLEN at -1 (unset): kernels send them on every rule. */
function isUnsetSuppressor(a: Attr): boolean {
  return (a.type === FRA.SUPPRESS_IFGROUP || a.type === FRA.SUPPRESS_PREFIXLEN) && a.value.length === 4 && a.value.readInt32LE(0) === -1;
}

/** iproute2's words for selectors we do not manage. */
const FRA_NAMES: Record<number, string> = { 4: 'goto', 11: 'realms', 12: 'tun_id', 13: 'suppress_ifgroup', 14: 'suppress_prefixlength', 19: 'l3mdev', 20: 'uidrange', 22: 'ipproto', 23: 'sport', 24: 'dport', 25: 'dscp' };

function prefixText(addr: string, len: number, family: Family): string {
  return len === 0 ? 'default' : len === FAMILIES[family].hostLen ? addr : `${addr}/${len}`;
}

/** The table of a route message: RTA_TABLE, else the header's 8-bit table. */
export function routeTableOf(data: Buffer): number {
  const h = decodeRtMsg(data);
  const a = parseAttrs(data, 12).find((x) => x.type === RTA.TABLE);
  return a ? getU32(a.value, 'RTA_TABLE') : h.table;
}

/** A route message (RTM_NEWROUTE) of `family`: its table and the route as the `ip -j` parser would give it. */
export function decodeRoute(data: Buffer, family: Family, names: ReadonlyMap<number, string>): { table: number; route: KernelRoute } {
  const h = decodeRtMsg(data);
  if (h.family !== afOf(family)) throw new NetlinkDecodeError(`family ${h.family}, want ${afOf(family)}`);
  const attrs = parseAttrs(data, 12);
  const one = (t: number) => attrs.find((a) => a.type === t);
  const tableAttr = one(RTA.TABLE);
  const table = tableAttr ? getU32(tableAttr.value, 'RTA_TABLE') : h.table;
  const dstAttr = one(RTA.DST);
  const maxLen = FAMILIES[family].hostLen;
  if (h.dstLen > maxLen) throw new NetlinkDecodeError(`table ${table}: prefix length ${h.dstLen} > ${maxLen}`);
  const dstAddr = dstAttr ? readAddr(dstAttr, h.family, `table ${table}: RTA_DST`) : family === 4 ? '0.0.0.0' : '::';
  const what = `table ${table}: route ${prefixText(dstAddr, h.dstLen, family)}`;
  const gw = one(RTA.GATEWAY);
  const via = one(RTA.VIA);
  let gateway = gw ? readAddr(gw, h.family, `${what}: RTA_GATEWAY`) : undefined;
  if (!gateway && via) {
    if (via.value.length < 2) throw new NetlinkDecodeError(`${what}: RTA_VIA has ${via.value.length} bytes`);
    const viaFamily = via.value.readUInt16LE(0);
    gateway = `${viaFamily === AF_INET6 ? 'inet6' : 'inet'} ${readAddr({ type: RTA.VIA, value: via.value.subarray(2) }, viaFamily, `${what}: RTA_VIA`)}`;
  }
  const oif = one(RTA.OIF);
  const index = oif ? getU32(oif.value, `${what}: RTA_OIF`) : undefined;
  const prio = one(RTA.PRIORITY);
  return {
    table,
    route: {
      type: ROUTE_TYPES[h.type] ?? `type ${h.type}`,
      dst: `${dstAddr}/${h.dstLen}`,
      dstText: prefixText(dstAddr, h.dstLen, family),
      gateway,
      dev: index === undefined ? undefined : names.get(index) ?? `if${index}`,
      metric: prio ? getU32(prio.value, `${what}: RTA_PRIORITY`) : 0,
      multipath: one(RTA.MULTIPATH) !== undefined,
    },
  };
}

/** A rule message (RTM_NEWRULE) of `family`, as the `ip -j rule show` parser would give it. */
export function decodeRule(data: Buffer, family: Family): KernelRule {
  const h = decodeRuleHdr(data);
  if (h.family !== afOf(family)) throw new NetlinkDecodeError(`family ${h.family}, want ${afOf(family)}`);
  const attrs = parseAttrs(data, 12);
  const one = (t: number): Attr | undefined => attrs.find((a) => a.type === t);
  const p = one(FRA.PRIORITY);
  const priority = p ? getU32(p.value, 'FRA_PRIORITY') : 0;
  const what = `rule at priority ${priority}`;
  const num = (t: number, name: string) => {
    const a = one(t);
    return a ? getU32(a.value, `${what}: ${name}`) : undefined;
  };
  const prefix = (t: number, len: number, name: string) => {
    const a = one(t);
    if (!a) return undefined;
    if (len > FAMILIES[family].hostLen) throw new NetlinkDecodeError(`${what}: ${name} prefix length ${len}`);
    return hostOrPrefix(`${readAddr(a, h.family, `${what}: ${name}`)}/${len}`, FAMILIES[family]);
  };
  const str = (t: number) => {
    const a = one(t);
    return a ? readString(a.value) : undefined;
  };
  const other = attrs.filter((a) => !KNOWN_FRA.has(a.type) && !isUnsetSuppressor(a)).map((a) => FRA_NAMES[a.type] ?? `attribute ${a.type}`);
  if (h.tos) other.push('tos');
  const toTable = h.action === FR_ACT_TO_TBL;
  return {
    priority,
    from: prefix(FRA.SRC, h.srcLen, 'FRA_SRC'),
    to: prefix(FRA.DST, h.dstLen, 'FRA_DST'),
    fwmark: num(FRA.FWMARK, 'FRA_FWMARK'),
    fwmask: num(FRA.FWMASK, 'FRA_FWMASK'),
    iif: str(FRA.IIFNAME),
    oif: str(FRA.OIFNAME),
    table: toTable ? num(FRA.TABLE, 'FRA_TABLE') ?? h.table : undefined,
    action: toTable ? undefined : RULE_ACTIONS[h.action] ?? `action ${h.action}`,
    not: (h.flags & FIB_RULE_INVERT) !== 0,
    other,
  };
}

/** RTM_NEWRULE / RTM_DELRULE payload for `rule`. */
export function encodeRule(rule: RuleSpec, family: Family): Buffer {
  const f = FAMILIES[family];
  const parts: Buffer[] = [u32Attr(FRA.PRIORITY, rule.priority)];
  const prefix = (p: string | undefined, type: number): number => {
    if (p === undefined) return 0;
    const [ip = '', len] = normPrefix(p, f).split('/');
    parts.push(attr(type, addrBytes(ip)));
    return Number(len);
  };
  const srcLen = prefix(rule.from, FRA.SRC);
  const dstLen = prefix(rule.to, FRA.DST);
  if (rule.fwmark !== undefined) parts.push(u32Attr(FRA.FWMARK, rule.fwmark));
  if (rule.fwmask !== undefined) parts.push(u32Attr(FRA.FWMASK, rule.fwmask));
  if (rule.iif !== undefined) parts.push(stringAttr(FRA.IIFNAME, rule.iif));
  if (rule.oif !== undefined) parts.push(stringAttr(FRA.OIFNAME, rule.oif));
  let action = 0;
  let table = 0;
  if (rule.action !== undefined) {
    const n = Object.entries(RULE_ACTIONS).find(([, name]) => name === rule.action)?.[0];
    if (n === undefined) throw new NetlinkDecodeError(`rule action "${rule.action}" has no rtnetlink encoding`);
    action = Number(n);
  } else if (rule.table !== undefined) {
    if (typeof rule.table !== 'number') throw new NetlinkDecodeError(`rule table "${rule.table}" is a name, not a number`);
    action = FR_ACT_TO_TBL;
    table = rule.table;
    parts.push(u32Attr(FRA.TABLE, table));
  }
  const hdr = encodeRuleHdr({ family: afOf(family), dstLen, srcLen, tos: 0, table: table < 256 ? table : 0, action, flags: rule.not ? FIB_RULE_INVERT : 0 });
  return Buffer.concat([hdr, ...parts]);
}

/** RTM_NEWROUTE (replace) / RTM_DELROUTE payload for a route op; `oif` is the index of op.dev. */
export function encodeRouteOp(op: Extract<RoutesOp, { op: 'route-replace' | 'route-del' }>, family: Family, oif: number | undefined): Buffer {
  const [ip = '', len = '0'] = normPrefix(op.dst, FAMILIES[family]).split('/');
  const dstLen = Number(len);
  const parts: Buffer[] = [u32Attr(RTA.TABLE, op.table)];
  if (dstLen > 0) parts.push(attr(RTA.DST, addrBytes(ip)));
  let hdr: Buffer;
  if (op.op === 'route-replace') {
    if (op.via) parts.push(attr(RTA.GATEWAY, addrBytes(op.via)));
    if (oif !== undefined) parts.push(u32Attr(RTA.OIF, oif));
    const local = op.type === 'local';
    const scope = local ? RT_SCOPE.HOST : op.via ? RT_SCOPE.UNIVERSE : RT_SCOPE.LINK;
    hdr = encodeRtMsg({ family: afOf(family), dstLen, srcLen: 0, tos: 0, table: op.table < 256 ? op.table : 0, protocol: RTPROT_BOOT, scope, type: local ? RTN.LOCAL : RTN.UNICAST, flags: 0 });
  } else {
    if (op.metric) parts.push(u32Attr(RTA.PRIORITY, op.metric));
    // Like `ip route del`: type only when not unicast, any protocol, scope "nowhere" (matches every scope).
    const type = op.type === 'unicast' ? 0 : ROUTE_TYPES.indexOf(op.type);
    if (type < 0) throw new NetlinkDecodeError(`route type "${op.type}" has no rtnetlink encoding`);
    hdr = encodeRtMsg({ family: afOf(family), dstLen, srcLen: 0, tos: 0, table: op.table < 256 ? op.table : 0, protocol: 0, scope: RT_SCOPE.NOWHERE, type, flags: 0 });
  }
  return Buffer.concat([hdr, ...parts]);
}

function describeOp(op: RoutesOp): string {
  return op.op === 'route-replace' || op.op === 'route-del' ? `table ${op.table}: route ${op.dst}` : `rule at priority ${op.rule.priority}`;
}

export class NetlinkRoutesKernel implements RoutesKernel {
  constructor(private readonly rtnl: Rtnl) {}

  async read(family: Family, tables: readonly number[]): Promise<RoutesKernelState> {
    const driver = FAMILIES[family].driver;
    const names = await this.call(driver, 'links', 'ip -j link show', () => readLinkNames(this.rtnl));
    const ruleMsgs = await this.call(driver, 'rules', `ip ${family === 6 ? '-6 ' : ''}-j rule show`, () => this.rtnl.request(RTM.GETRULE, NLM_F.DUMP, encodeRuleHdr({ family: afOf(family), dstLen: 0, srcLen: 0, tos: 0, table: 0, action: 0, flags: 0 })));
    const routeMsgs = await this.call(driver, 'routes', `ip ${family === 6 ? '-6 ' : ''}-j route show table all`, () => this.rtnl.request(RTM.GETROUTE, NLM_F.DUMP, encodeRtMsg({ family: afOf(family), dstLen: 0, srcLen: 0, tos: 0, table: 0, protocol: 0, scope: 0, type: 0, flags: 0 })));
    const decode = <T>(command: string, i: number, data: Buffer, fn: () => T): T => {
      try {
        return fn();
      } catch (e) {
        if (!(e instanceof NetlinkDecodeError)) throw e;
        throw new KernelParseError(driver, command, data.toString('hex'), e.message, i + 1);
      }
    };
    const rules = ruleMsgs
      .filter((m) => m.type === RTM.NEWRULE)
      .map((m, i) => decode('rtnetlink rule dump (RTM_GETRULE)', i, m.data, () => decodeRule(m.data, family)));
    const wanted = new Set(tables);
    const routes = new Map<number, KernelRoute[]>(tables.map((t) => [t, []]));
    routeMsgs.filter((m) => m.type === RTM.NEWROUTE).forEach((m, i) => {
      const command = 'rtnetlink route dump (RTM_GETROUTE)';
      // Only managed tables are decoded in full: a route elsewhere that we cannot read is not our concern.
      if (!wanted.has(decode(command, i, m.data, () => routeTableOf(m.data)))) return;
      const { table, route } = decode(command, i, m.data, () => decodeRoute(m.data, family, names));
      routes.get(table)!.push(route);
    });
    return { rules, tables: routes };
  }

  async apply(family: Family, ops: readonly RoutesOp[]): Promise<void> {
    const driver = FAMILIES[family].driver;
    for (const op of ops) {
      const command = opCommand(op, family);
      await this.call(driver, describeOp(op), command, async () => {
        if ('rule' in op) {
          const add = op.op === 'rule-add';
          await this.rtnl.request(add ? RTM.NEWRULE : RTM.DELRULE, add ? NLM_F.CREATE | NLM_F.EXCL : 0, encodeRule(op.rule, family));
          return;
        }
        const replace = op.op === 'route-replace';
        const oif = replace && op.dev !== undefined ? await linkIndex(this.rtnl, op.dev).catch((e: unknown) => {
          throw e instanceof RtnlRequestError && e.code === 'ENODEV' ? new RtnlRequestError('ENODEV', e.errno, `interface ${op.dev} does not exist`) : e;
        }) : undefined;
        await this.rtnl.request(replace ? RTM.NEWROUTE : RTM.DELROUTE, replace ? NLM_F.CREATE | NLM_F.REPLACE : 0, encodeRouteOp(op, family, oif));
      });
    }
  }

  /** Runs one request; kernel refusals and decode failures become typed errors naming the object. */
  private async call<T>(driver: string, object: string, command: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof RtnlRequestError) throw new KernelNetlinkError(driver, object, e.code, command, e.message);
      if (e instanceof NetlinkDecodeError) throw new KernelParseError(driver, command, '', `${object}: ${e.message}`);
      throw e;
    }
  }
}
