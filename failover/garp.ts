// Announcement frames the controller sends itself through a packet socket (failover/packet):
//  - IPv4: a gratuitous ARP in the ARP Announcement form of RFC 5227 §2.3 (a broadcast request whose
//    sender and target protocol addresses are both the VIP, target hardware address zero). A request,
//    like keepalived's and `arping -U`: every Linux and router stack updates an existing entry from it;
//    a reply form adds nothing for them and some stacks drop unsolicited replies.
//  - IPv6: an unsolicited neighbour advertisement (RFC 4861 §7.2.6): from the VIP to ff02::1, hop
//    limit 255, override flag set, solicited flag clear, with the target link-layer address option.
import { isIPv4, isIPv6 } from 'node:net';

const BROADCAST = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
/** Ethernet multicast address of ff02::1 (33:33 + its last 32 bits). */
const ALL_NODES_MAC = Buffer.from([0x33, 0x33, 0x00, 0x00, 0x00, 0x01]);
const ALL_NODES = ipv6Bytes('ff02::1');
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
const ICMPV6 = 58;
const NEIGHBOR_ADVERT = 136;

/** The 4 bytes of a dotted-quad IPv4 address. */
export function ipv4Bytes(ip: string): Buffer {
  if (!isIPv4(ip)) throw new Error(`not an IPv4 address: "${ip}"`);
  return Buffer.from(ip.split('.').map(Number));
}

/** The 16 bytes of an IPv6 address (with "::" and a dotted-quad tail). */
export function ipv6Bytes(ip: string): Buffer {
  if (!isIPv6(ip)) throw new Error(`not an IPv6 address: "${ip}"`);
  let text = ip;
  const tail: number[] = [];
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = ipv4Bytes(dotted[2]!);
    tail.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    text = dotted[1]!.endsWith('::') ? dotted[1]! : dotted[1]!.slice(0, -1);
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const groups = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const left = groups(head);
  const right = [...groups(rest), ...tail];
  const words = rest === undefined ? [...left, ...tail] : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const b = Buffer.alloc(16);
  words.forEach((w, i) => b.writeUInt16BE(w, i * 2));
  return b;
}

function checkMac(mac: Buffer): void {
  if (mac.length !== 6) throw new Error(`not an Ethernet address: ${mac.length} bytes`);
}

function ethernet(dst: Buffer, src: Buffer, type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  dst.copy(h, 0);
  src.copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

/** Gratuitous ARP (42 bytes; the kernel pads short frames): broadcast request, sender = target = ip. */
export function gratuitousArp(mac: Buffer, ip: string): Buffer {
  checkMac(mac);
  const addr = ipv4Bytes(ip);
  const arp = Buffer.alloc(28);
  arp.writeUInt16BE(1, 0);        // hardware: Ethernet
  arp.writeUInt16BE(0x0800, 2);   // protocol: IPv4
  arp[4] = 6;
  arp[5] = 4;
  arp.writeUInt16BE(1, 6);        // request
  mac.copy(arp, 8);
  addr.copy(arp, 14);
  // target hardware address 18..23 stays zero (RFC 5227: ignored, SHOULD be zero)
  addr.copy(arp, 24);
  return ethernet(BROADCAST, mac, ETH_P_ARP, arp);
}

/** The ones' complement sum of 16-bit words used by IP checksums (not yet complemented). */
function sum16(b: Buffer, start = 0): number {
  let s = start;
  for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
  if (b.length % 2) s += b[b.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** ICMPv6 checksum over the IPv6 pseudo-header (RFC 8200 §8.1) and the message (its checksum field zero). */
export function icmpv6Checksum(src: Buffer, dst: Buffer, message: Buffer): number {
  const pseudo = Buffer.alloc(40);
  src.copy(pseudo, 0);
  dst.copy(pseudo, 16);
  pseudo.writeUInt32BE(message.length, 32);
  pseudo[39] = ICMPV6;
  const s = sum16(message, sum16(pseudo));
  return ~s & 0xffff;
}

/**
 * Unsolicited neighbour advertisement (86 bytes). `router`: the R flag; the kernel sets it when the
 * interface forwards IPv6, and a neighbour that sees it clear removes us from its default routers.
 */
export function unsolicitedNa(mac: Buffer, ip: string, router: boolean): Buffer {
  checkMac(mac);
  const target = ipv6Bytes(ip);
  const icmp = Buffer.alloc(32);
  icmp[0] = NEIGHBOR_ADVERT;
  icmp[4] = (router ? 0x80 : 0) | 0x20;   // R, S = 0, O = 1
  target.copy(icmp, 8);
  icmp[24] = 2;                          // option: target link-layer address
  icmp[25] = 1;                          // length in units of 8 bytes
  mac.copy(icmp, 26);
  icmp.writeUInt16BE(icmpv6Checksum(target, ALL_NODES, icmp), 2);
  const ip6 = Buffer.alloc(40);
  ip6.writeUInt32BE(0x60000000, 0);      // version 6, traffic class 0, flow label 0
  ip6.writeUInt16BE(icmp.length, 4);
  ip6[6] = ICMPV6;
  ip6[7] = 255;                          // hop limit: receivers drop NDP with any other
  target.copy(ip6, 8);
  ALL_NODES.copy(ip6, 24);
  return ethernet(ALL_NODES_MAC, mac, ETH_P_IPV6, Buffer.concat([ip6, icmp]));
}
