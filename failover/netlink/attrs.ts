// Netlink attributes (struct nlattr: u16 length, u16 type, payload, padding to 4 bytes): encoding and decoding.
// Host byte order (little-endian on every target we run on) except where a reader says. Decoding is defensive:
// a length that does not fit throws NetlinkDecodeError naming what was read.
import { NetlinkDecodeError } from './decode-error';

export interface Attr {
  readonly type: number;
  readonly value: Buffer;
}

const NLA_HDRLEN = 4;
/** Attribute type bits that are flags (NLA_F_NESTED, NLA_F_NET_BYTEORDER), not the type. */
const NLA_TYPE_MASK = 0x3fff;
const align4 = (n: number) => (n + 3) & ~3;

// --- encoding ---

/** One attribute: length, type, payload, padding to 4 bytes. */
export function attr(type: number, payload: Buffer): Buffer {
  const len = NLA_HDRLEN + payload.length;
  if (len > 0xffff) throw new RangeError(`netlink attribute ${type} too long (${len} bytes)`);
  const b = Buffer.alloc(align4(len));
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, NLA_HDRLEN);
  return b;
}

/** A u32 payload. */
export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}
/** A NUL-terminated string payload (NLA_NUL_STRING). */
export const cstr = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');

export const u8Attr = (type: number, v: number) => attr(type, Buffer.from([v]));
export function u16Attr(type: number, v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return attr(type, b);
}
export const u32Attr = (type: number, v: number) => attr(type, u32(v));
export const stringAttr = (type: number, s: string) => attr(type, cstr(s));
/** A nested attribute. Without NLA_F_NESTED, like ipvsadm (libnl nla_nest_start) and the kernel's own replies. */
export const nestAttr = (type: number, children: readonly Buffer[]) => attr(type, Buffer.concat(children));

// --- decoding ---

/**
 * The attributes from `from` to the end of `buf`, in order; the flag bits are stripped from the type. `what`, when
 * given, prefixes the error message.
 */
export function parseAttrs(buf: Buffer, from = 0, what?: string): Attr[] {
  const fail = (reason: string): never => {
    throw new NetlinkDecodeError(what === undefined ? reason : `${what}: ${reason}`);
  };
  const out: Attr[] = [];
  let off = from;
  while (off < buf.length) {
    if (buf.length - off < NLA_HDRLEN) fail(`attribute header truncated at byte ${off}`);
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < NLA_HDRLEN || off + len > buf.length) fail(`attribute type ${type} at byte ${off} has length ${len} (message has ${buf.length - off} left)`);
    out.push({ type, value: buf.subarray(off + NLA_HDRLEN, off + len) });
    off += align4(len);
  }
  return out;
}

/**
 * parseAttrs as a map by type. A type seen twice keeps its first value, as nla_parse does not promise either;
 * the caller decides which types it knows and ignores the others.
 */
export function attrMap(buf: Buffer, what: string): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (const a of parseAttrs(buf, 0, what)) if (!out.has(a.type)) out.set(a.type, a.value);
  return out;
}

/** An attribute the caller needs: present, or NetlinkDecodeError. */
export function need(attrs: Map<number, Buffer>, type: number, what: string): Buffer {
  const v = attrs.get(type);
  if (v === undefined) throw new NetlinkDecodeError(`${what}: missing`);
  return v;
}

function sized(b: Buffer, n: number, what: string): Buffer {
  if (b.length !== n) throw new NetlinkDecodeError(`${what}: expected ${n} bytes, got ${b.length}`);
  return b;
}
export const getU16 = (b: Buffer, what: string) => sized(b, 2, what).readUInt16LE(0);
export const getU32 = (b: Buffer, what: string) => sized(b, 4, what).readUInt32LE(0);
/** A port or other __be16. */
export const getU16be = (b: Buffer, what: string) => sized(b, 2, what).readUInt16BE(0);

/** A string attribute as UTF-8, up to its NUL (the whole payload when there is none): interface names. */
export function readString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8');
}

/** A NUL-terminated ASCII name (scheduler, persistence engine): it must be terminated and printable. */
export function readAsciiName(b: Buffer, what: string): string {
  const nul = b.indexOf(0);
  if (nul < 0) throw new NetlinkDecodeError(`${what}: string without its terminating NUL`);
  const s = b.subarray(0, nul).toString('latin1');
  if (!/^[\x20-\x7e]*$/.test(s)) throw new NetlinkDecodeError(`${what}: string ${JSON.stringify(s)} has unprintable characters`);
  return s;
}
