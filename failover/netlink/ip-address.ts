// IP addresses on the wire: address families, text ↔ bytes (IPv6 text compressed, lower-case, like iproute2).
import { isIPv4, isIPv6 } from 'node:net';
import type { Attr } from './attrs';
import { NetlinkDecodeError } from './decode-error';

export const AF_INET = 2;
export const AF_INET6 = 10;

/** An address attribute of the given family as text (IPv6 compressed, lower-case, like iproute2). */
export function readAddr(a: Attr, family: number, what: string): string {
  const want = family === AF_INET ? 4 : family === AF_INET6 ? 16 : -1;
  if (a.value.length !== want) throw new NetlinkDecodeError(`${what} has ${a.value.length} bytes, want ${want < 0 ? '4 or 16' : want} for family ${family}`);
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
  if (!isIPv6(ip)) throw new NetlinkDecodeError(`"${ip}" is not an IP address`);
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
