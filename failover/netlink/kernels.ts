// The rtnetlink implementations of the drivers' kernel seams, over the process's shared socket.
import type { AddressesKernel } from '../addresses';
import type { RoutesKernel } from '../routes';
import { NetlinkAddressesKernel } from './rtnl-addresses';
import { NetlinkRoutesKernel } from './rtnl-routes';
import { sharedRtnl, type Rtnl } from './rtnl-socket';

export interface NetlinkKernels {
  readonly rtnl: Rtnl;
  readonly routes: RoutesKernel;
  readonly addresses: AddressesKernel;
}

/** The netlink kernels, or why not (then the drivers use `ip` commands). `timeoutMs`: deadline per request. */
export function netlinkKernels(timeoutMs: number): NetlinkKernels | { error: string } {
  const s = sharedRtnl(timeoutMs);
  if ('error' in s) return s;
  return { rtnl: s.rtnl, routes: new NetlinkRoutesKernel(s.rtnl), addresses: new NetlinkAddressesKernel(s.rtnl) };
}
