// Netlink attributes and generic netlink headers (linux/netlink.h, linux/genetlink.h): encoding requests,
// decoding replies. Host byte order (little-endian on every target we run on) except where a caller says.
// Decoding is defensive: a length that does not fit throws NetlinkDecodeError naming what was read.

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
/** Attribute type bits that are flags (NLA_F_NESTED, NLA_F_NET_BYTEORDER), not the type. */
const NLA_TYPE_MASK = 0x3fff;
const NLA_HDRLEN = 4;
export const GENL_HDRLEN = 4;

// The generic netlink controller (linux/genetlink.h).
export const GENL_ID_CTRL = 16;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
export const CTRL_VERSION = 1;

/** A reply that does not have the layout it should; `what` names the message or attribute. */
export class NetlinkDecodeError extends Error {
  override name = 'NetlinkDecodeError';
  constructor(readonly what: string, readonly reason: string) {
    super(`${what}: ${reason}`);
  }
}

const align4 = (n: number) => (n + 3) & ~3;

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

export const u8Attr = (type: number, v: number) => attr(type, Buffer.from([v]));
export function u16Attr(type: number, v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return attr(type, b);
}
export function u32Attr(type: number, v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return attr(type, b);
}
/** A NUL-terminated string (NLA_NUL_STRING). */
export const stringAttr = (type: number, s: string) => attr(type, Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)]));
/** A nested attribute. Without NLA_F_NESTED, like ipvsadm (libnl nla_nest_start) and the kernel's own replies. */
export const nestAttr = (type: number, children: readonly Buffer[]) => attr(type, Buffer.concat(children));

/** The generic netlink header: command, version, two reserved bytes. */
export function genlHeader(cmd: number, version: number): Buffer {
  return Buffer.from([cmd, version, 0, 0]);
}

export interface GenlPayload {
  readonly cmd: number;
  readonly version: number;
  /** The attributes after the header. */
  readonly attrs: Buffer;
}

/** Splits a generic netlink message's payload (after the nlmsghdr) into header and attributes. */
export function parseGenl(data: Buffer, what: string): GenlPayload {
  if (data.length < GENL_HDRLEN) throw new NetlinkDecodeError(what, `${data.length} bytes, shorter than the generic netlink header`);
  return { cmd: data[0]!, version: data[1]!, attrs: data.subarray(GENL_HDRLEN) };
}

/**
 * Attributes by type (flag bits masked off). A type seen twice keeps its first value, as nla_parse does not
 * promise either; the caller decides which types it knows and ignores the others.
 */
export function parseAttrs(buf: Buffer, what: string): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = 0;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < NLA_HDRLEN || off + len > buf.length) throw new NetlinkDecodeError(what, `attribute ${type} at byte ${off} has length ${len}, but ${buf.length - off} bytes are left`);
    if (!out.has(type)) out.set(type, buf.subarray(off + NLA_HDRLEN, off + len));
    off += align4(len);
  }
  if (off < buf.length) throw new NetlinkDecodeError(what, `${buf.length - off} trailing bytes after the last attribute`);
  return out;
}

function sized(b: Buffer, n: number, what: string): Buffer {
  if (b.length !== n) throw new NetlinkDecodeError(what, `expected ${n} bytes, got ${b.length}`);
  return b;
}
export const getU8 = (b: Buffer, what: string) => sized(b, 1, what).readUInt8(0);
export const getU16 = (b: Buffer, what: string) => sized(b, 2, what).readUInt16LE(0);
export const getU32 = (b: Buffer, what: string) => sized(b, 4, what).readUInt32LE(0);
/** A port or other __be16. */
export const getU16be = (b: Buffer, what: string) => sized(b, 2, what).readUInt16BE(0);

/** A NUL-terminated string; it must be terminated and printable. */
export function getString(b: Buffer, what: string): string {
  const nul = b.indexOf(0);
  if (nul < 0) throw new NetlinkDecodeError(what, 'string without its terminating NUL');
  const s = b.subarray(0, nul).toString('latin1');
  if (!/^[\x20-\x7e]*$/.test(s)) throw new NetlinkDecodeError(what, `string ${JSON.stringify(s)} has unprintable characters`);
  return s;
}

/** An attribute the caller needs: present, or NetlinkDecodeError. */
export function need(attrs: Map<number, Buffer>, type: number, what: string): Buffer {
  const v = attrs.get(type);
  if (v === undefined) throw new NetlinkDecodeError(what, 'missing');
  return v;
}

/** The errno of an NLMSG_ERROR payload (struct nlmsgerr: int error, then the request's header): 0 is an ack. */
export function parseErrno(data: Buffer, what: string): number {
  if (data.length < 4) throw new NetlinkDecodeError(what, `error message of ${data.length} bytes`);
  return -data.readInt32LE(0);
}

/** CTRL_CMD_GETFAMILY for one family name: the request's payload. */
export function getFamilyRequest(name: string): Buffer {
  return Buffer.concat([genlHeader(CTRL_CMD_GETFAMILY, CTRL_VERSION), stringAttr(CTRL_ATTR_FAMILY_NAME, name)]);
}

/** The family id from the controller's reply to getFamilyRequest. */
export function parseFamilyId(data: Buffer): number {
  const what = 'generic netlink controller reply';
  const { attrs } = parseGenl(data, what);
  return getU16(need(parseAttrs(attrs, what), CTRL_ATTR_FAMILY_ID, `${what}: CTRL_ATTR_FAMILY_ID`), `${what}: CTRL_ATTR_FAMILY_ID`);
}
