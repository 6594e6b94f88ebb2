// rtnetlink wire format: message types, attribute ids and the fixed headers of route, rule, address and link
// messages. Pure functions over Buffers; a malformed message throws NetlinkDecodeError (callers name the object).
import { NetlinkDecodeError } from './decode-error';

/** Message types (linux/rtnetlink.h). */
export const RTM = {
  NEWLINK: 16, DELLINK: 17, GETLINK: 18,
  NEWADDR: 20, DELADDR: 21, GETADDR: 22,
  NEWROUTE: 24, DELROUTE: 25, GETROUTE: 26,
  NEWRULE: 32, DELRULE: 33, GETRULE: 34,
} as const;

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
  if (b.length < 12) throw new NetlinkDecodeError(`route message has ${b.length} bytes, shorter than struct rtmsg (12)`);
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
  if (b.length < 12) throw new NetlinkDecodeError(`rule message has ${b.length} bytes, shorter than struct fib_rule_hdr (12)`);
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
  if (b.length < 8) throw new NetlinkDecodeError(`address message has ${b.length} bytes, shorter than struct ifaddrmsg (8)`);
  return { family: b[0]!, prefixlen: b[1]!, flags: b[2]!, scope: b[3]!, index: b.readUInt32LE(4) };
}

/** struct ifinfomsg (16 bytes): family, type, index, flags, change. */
export function encodeIfInfoMsg(index = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32LE(index, 4);
  return b;
}
export function decodeIfInfoIndex(b: Buffer): number {
  if (b.length < 16) throw new NetlinkDecodeError(`link message has ${b.length} bytes, shorter than struct ifinfomsg (16)`);
  return b.readInt32LE(4);
}
export const IFINFOMSG_LEN = 16;
