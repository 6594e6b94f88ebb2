/** A netlink message or attribute that does not have the layout it should; the message names what was read. */
export class NetlinkDecodeError extends Error {
  override name = 'NetlinkDecodeError';
}
