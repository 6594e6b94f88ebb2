// rtnetlink wire format: attributes (TLV) and the fixed headers of route, rule, address and link messages.
// Pure functions over Buffers; a malformed message throws RtnlDecodeError (callers name the object).
import { isIPv4, isIPv6 } from 'node:net';

export const AF_INET = 2;
export const AF_INET6 = 10;

/** Message types (linux/rtnetlink.h). */
export const RTM = {
  NEWLINK: 16, DELLINK: 17, GETLINK: 18,
  NEWADDR: 20, DELADDR: 21, GETADDR: 22,
  NEWROUTE: 24, DELROUTE: 25, GETROUTE: 26,
  NEWRULE: 32, DELRULE: 33, GETRULE: 34,
} as const;

/** nlmsg_flags of requests. */
export const NLM_F = { REQUEST: 0x1, ACK: 0x4, DUMP: 0x300, REPLACE: 0x100, EXCL: 0x200, CREATE: 0x400 } as const;

/** Multicast groups (enum rtnetlink_groups). */
export const RTNLGRP = { LINK: 1, IPV4_IFADDR: 5, IPV4_ROUTE: 7, IPV4_RULE: 8, IPV6_IFADDR: 9, IPV6_ROUTE: 11, IPV6_RULE: 19 } as const;

export const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, MULTIPATH: 9, TABLE: 15, VIA: 18 } as const;
export const FRA = { DST: 1, SRC: 2, IIFNAME: 3, PRIORITY: 6, FWMARK: 10, SUPPRESS_IFGROUP: 13, SUPPRESS_PREFIXLEN: 14, TABLE: 15, FWMASK: 16, OIFNAME: 17, PAD: 18, PROTOCOL: 21 } as const;
export const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, FLAGS: 8 } as const;
export const IFLA_IFNAME = 3;
export const IFA_F_NODAD = 0x02;
export const FIB_RULE_INVERT = 0x2;
export const FR_ACT_TO_TBL = 1;
export const RTN = { UNICAST: 1, LOCAL: 2 } as const;
export const RT_SCOPE = { UNIVERSE: 0, LINK: 253, HOST: 254, NOWHERE: 255 } as const;
export const RTPROT_BOOT = 3;

/** Route types by number, as iproute2 names them. */
export const ROUTE_TYPES = ['unspec', 'unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'nat', 'xresolve'];
/** Rule actions other than "lookup TABLE", as iproute2 names them. */
export const RULE_ACTIONS: Record<number, string> = { 2: 'goto', 3: 'nop', 6: 'blackhole', 7: 'unreachable', 8: 'prohibit' };

export class RtnlDecodeError extends Error {
  override name = 'RtnlDecodeError';
}

export interface Attr {
  readonly type: number;
  readonly value: Buffer;
}

const align4 = (n: number) => (n + 3) & ~3;

/** Attributes from `from` to the end of `buf`; the nested flag (0x8000) and byte-order flag are stripped from the type. */
export function parseAttrs(buf: Buffer, from = 0): Attr[] {
  const out: Attr[] = [];
  let off = from;
  while (off < buf.length) {
    if (buf.length - off < 4) throw new RtnlDecodeError(`attribute header truncated at byte ${off}`);
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & 0x3fff;
    if (len < 4 || off + len > buf.length) throw new RtnlDecodeError(`attribute type ${type} at byte ${off} has length ${len} (message has ${buf.length - off} left)`);
    out.push({ type, value: buf.subarray(off + 4, off + len) });
    off += align4(len);
  }
  return out;
}

export function attr(type: number, value: Buffer): Buffer {
  const len = 4 + value.length;
  const b = Buffer.alloc(align4(len));
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  value.copy(b, 4);
  return b;
}

export const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
};
export const cstr = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');

export function readU32(a: Attr, what: string): number {
  if (a.value.length !== 4) throw new RtnlDecodeError(`${what} has ${a.value.length} bytes, want 4`);
  return a.value.readUInt32LE(0);
}

export function readString(a: Attr): string {
  const nul = a.value.indexOf(0);
  return a.value.subarray(0, nul < 0 ? a.value.length : nul).toString('utf8');
}

/** An address attribute of the given family as text (IPv6 compressed, lower-case, like iproute2). */
export function readAddr(a: Attr, family: number, what: string): string {
  const want = family === AF_INET ? 4 : family === AF_INET6 ? 16 : -1;
  if (a.value.length !== want) throw new RtnlDecodeError(`${what} has ${a.value.length} bytes, want ${want < 0 ? '4 or 16' : want} for family ${family}`);
  if (want === 4) return [...a.value].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(a.value.readUInt16BE(i).toString(16));
  // The longest run of two or more zero groups becomes "::" (RFC 5952).
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Text address → wire bytes; the caller has validated it. */
export function addrBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) throw new RtnlDecodeError(`"${ip}" is not an IP address`);
  const [head = '', tail] = ip.split('::');
  const part = (s: string) => (s === '' ? [] : s.split(':'));
  const h = part(head), t = tail === undefined ? [] : part(tail);
  // An embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups.
  const expand = (g: string[]) => g.flatMap((x) => (x.includes('.') ? (() => { const b = addrBytes(x); return [b.readUInt16BE(0).toString(16), b.readUInt16BE(2).toString(16)]; })() : [x]));
  const hh = expand(h), tt = expand(t);
  const groups = [...hh, ...Array(8 - hh.length - tt.length).fill('0'), ...tt];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

export function familyOf(ip: string): number {
  return isIPv4(ip) ? AF_INET : AF_INET6;
}

// --- fixed headers ---

/** struct rtmsg (12 bytes). */
export interface RtMsg {
  family: number; dstLen: number; srcLen: number; tos: number; table: number; protocol: number; scope: number; type: number; flags: number;
}
export function encodeRtMsg(m: RtMsg): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(m.family, 0); b.writeUInt8(m.dstLen, 1); b.writeUInt8(m.srcLen, 2); b.writeUInt8(m.tos, 3);
  b.writeUInt8(m.table, 4); b.writeUInt8(m.protocol, 5); b.writeUInt8(m.scope, 6); b.writeUInt8(m.type, 7);
  b.writeUInt32LE(m.flags, 8);
  return b;
}
export function decodeRtMsg(b: Buffer): RtMsg {
  if (b.length < 12) throw new RtnlDecodeError(`route message has ${b.length} bytes, shorter than struct rtmsg (12)`);
  return { family: b[0]!, dstLen: b[1]!, srcLen: b[2]!, tos: b[3]!, table: b[4]!, protocol: b[5]!, scope: b[6]!, type: b[7]!, flags: b.readUInt32LE(8) };
}

/** struct fib_rule_hdr (12 bytes). */
export interface RuleHdr {
  family: number; dstLen: number; srcLen: number; tos: number; table: number; action: number; flags: number;
}
export function encodeRuleHdr(m: RuleHdr): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(m.family, 0); b.writeUInt8(m.dstLen, 1); b.writeUInt8(m.srcLen, 2); b.writeUInt8(m.tos, 3);
  b.writeUInt8(m.table, 4); b.writeUInt8(m.action, 7); b.writeUInt32LE(m.flags, 8);
  return b;
}
export function decodeRuleHdr(b: Buffer): RuleHdr {
  if (b.length < 12) throw new RtnlDecodeError(`rule message has ${b.length} bytes, shorter than struct fib_rule_hdr (12)`);
  return { family: b[0]!, dstLen: b[1]!, srcLen: b[2]!, tos: b[3]!, table: b[4]!, action: b[7]!, flags: b.readUInt32LE(8) };
}

/** struct ifaddrmsg (8 bytes). */
export interface IfAddrMsg {
  family: number; prefixlen: number; flags: number; scope: number; index: number;
}
export function encodeIfAddrMsg(m: IfAddrMsg): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(m.family, 0); b.writeUInt8(m.prefixlen, 1); b.writeUInt8(m.flags, 2); b.writeUInt8(m.scope, 3); b.writeUInt32LE(m.index, 4);
  return b;
}
export function decodeIfAddrMsg(b: Buffer): IfAddrMsg {
  if (b.length < 8) throw new RtnlDecodeError(`address message has ${b.length} bytes, shorter than struct ifaddrmsg (8)`);
  return { family: b[0]!, prefixlen: b[1]!, flags: b[2]!, scope: b[3]!, index: b.readUInt32LE(4) };
}

/** struct ifinfomsg (16 bytes): family, type, index, flags, change. */
export function encodeIfInfoMsg(index = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32LE(index, 4);
  return b;
}
export function decodeIfInfoIndex(b: Buffer): number {
  if (b.length < 16) throw new RtnlDecodeError(`link message has ${b.length} bytes, shorter than struct ifinfomsg (16)`);
  return b.readInt32LE(4);
}
export const IFINFOMSG_LEN = 16;
