// Generic netlink (linux/genetlink.h): the genlmsghdr after the netlink header, and the controller's family lookup.
import { attrMap, getU16, need, stringAttr } from './attrs';
import { NetlinkDecodeError } from './decode-error';

export const GENL_HDRLEN = 4;

// The generic netlink controller (linux/genetlink.h).
export const GENL_ID_CTRL = 16;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
export const CTRL_VERSION = 1;

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
  if (data.length < GENL_HDRLEN) throw new NetlinkDecodeError(`${what}: ${data.length} bytes, shorter than the generic netlink header`);
  return { cmd: data[0]!, version: data[1]!, attrs: data.subarray(GENL_HDRLEN) };
}

/** CTRL_CMD_GETFAMILY for one family name: the request's payload. */
export function getFamilyRequest(name: string): Buffer {
  return Buffer.concat([genlHeader(CTRL_CMD_GETFAMILY, CTRL_VERSION), stringAttr(CTRL_ATTR_FAMILY_NAME, name)]);
}

/** The family id from the controller's reply to getFamilyRequest. */
export function parseFamilyId(data: Buffer): number {
  const what = 'generic netlink controller reply';
  const { attrs } = parseGenl(data, what);
  return getU16(need(attrMap(attrs, what), CTRL_ATTR_FAMILY_ID, `${what}: CTRL_ATTR_FAMILY_ID`), `${what}: CTRL_ATTR_FAMILY_ID`);
}
