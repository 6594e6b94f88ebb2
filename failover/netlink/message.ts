// The netlink message header (linux/netlink.h): control message types, request flags, the error/ack payload.
import { NetlinkDecodeError } from './decode-error';

/** Control message types (nlmsg_type). */
export const NLMSG = { ERROR: 2, DONE: 3 } as const;

/** nlmsg_flags of requests. */
export const NLM_F = { REQUEST: 0x1, ACK: 0x4, DUMP: 0x300, REPLACE: 0x100, EXCL: 0x200, CREATE: 0x400 } as const;

/** The errno of an NLMSG_ERROR payload (struct nlmsgerr: int error, then the request's header): 0 is an ack. */
export function parseErrno(data: Buffer, what: string): number {
  if (data.length < 4) throw new NetlinkDecodeError(`${what}: error message of ${data.length} bytes`);
  return -data.readInt32LE(0);
}
