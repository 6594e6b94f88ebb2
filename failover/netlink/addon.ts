// The `netlink` N-API addon's socket layer, loaded on first use: `sandwich --version` and the exec fallbacks never
// pay for it. Only the socket layer: the package index also loads every family's generated structs (≈ 4× the
// time, +7 MB RSS). require, not import(): the lab VM's loader runs the bundle in a vm.Script without import().
import type { NetlinkSocket, NetlinkSocketOptions } from 'netlink/dist/netlink';
import type { RawNetlinkSocketOptions } from 'netlink/dist/raw';

/** Netlink protocol numbers (linux/netlink.h). */
export const NETLINK_ROUTE = 0;
export const NETLINK_GENERIC = 16;

/** A new socket of `protocol`; throws where the addon cannot load (no prebuilt binary for this platform). */
export function createAddonSocket(protocol: number, options?: NetlinkSocketOptions & RawNetlinkSocketOptions): NetlinkSocket {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const nl = require('netlink/dist/netlink') as typeof import('netlink/dist/netlink');
  return nl.createNetlink(protocol, options);
}
