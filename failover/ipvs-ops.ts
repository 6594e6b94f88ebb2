// Typed IPVS changes (what planIpvs decides) and the seam between the IPVS driver and the kernel.
// Every change reads as the `ipvsadm` line it equals: that is what operators see and can replay.
import type { IpvsKernelState } from './ipvs';

interface ServiceRef {
  readonly fwmark: number;
  readonly ipv6: boolean;
}

export type IpvsOp =
  /** -A / -E: a fwmark service with its scheduler and scheduler flags (no persistence, no other flags). */
  | (ServiceRef & { readonly kind: 'add-service' | 'edit-service'; readonly scheduler: string; readonly flags: readonly string[] })
  /** -a / -e: a real server, direct routing, port 0, no thresholds. */
  | (ServiceRef & { readonly kind: 'add-dest' | 'edit-dest'; readonly address: string; readonly weight: number })
  /** -d */
  | (ServiceRef & { readonly kind: 'del-dest'; readonly address: string });

const OPT: Record<IpvsOp['kind'], string> = { 'add-service': '-A', 'edit-service': '-E', 'add-dest': '-a', 'edit-dest': '-e', 'del-dest': '-d' };

/** "-f 1" or "-f 1 -6": how ipvsadm names a fwmark service. */
export function fwmarkArg(ref: ServiceRef): string {
  return `-f ${ref.fwmark}${ref.ipv6 ? ' -6' : ''}`;
}

/** A real server's -r argument for a fwmark service. */
function destArg(address: string): string {
  return address.includes(':') ? `[${address}]:0` : `${address}:0`;
}

/** The ipvsadm line (without "ipvsadm", as in an `ipvsadm -R` batch) that makes the same change. */
export function formatIpvsOp(op: IpvsOp): string {
  const head = `${OPT[op.kind]} ${fwmarkArg(op)}`;
  switch (op.kind) {
    case 'add-service':
    case 'edit-service':
      return `${head} -s ${op.scheduler}${op.flags.length ? ` -b ${op.flags.join(',')}` : ''}`;
    case 'add-dest':
    case 'edit-dest':
      return `${head} -r ${destArg(op.address)} -g -w ${op.weight}`;
    case 'del-dest':
      return `${head} -r ${destArg(op.address)}`;
  }
}

/** What an operator reads for the change: the object and the action, e.g. "fwmark 1" / "add real server 10.1.0.11". */
export function describeIpvsOp(op: IpvsOp): { object: string; action: string } {
  const object = `fwmark ${op.fwmark}${op.ipv6 ? ' (IPv6)' : ''}`;
  switch (op.kind) {
    case 'add-service': return { object, action: `add service (${op.scheduler})` };
    case 'edit-service': return { object, action: `edit service (${op.scheduler})` };
    case 'add-dest': return { object, action: `add real server ${op.address}` };
    case 'edit-dest': return { object, action: `set weight ${op.weight} of real server ${op.address}` };
    case 'del-dest': return { object, action: `delete real server ${op.address}` };
  }
}

export interface IpvsApplied {
  /** The changes as commands, for ReconcileResult.commands (formatCommand form). */
  readonly commands: string[];
  /** Extra words for a verify failure, e.g. what `ipvsadm -R` printed on stderr; '' when none. */
  readonly note: string;
}

/** How the IPVS driver reads and changes the kernel's table: generic netlink, or ipvsadm as the fallback. */
export interface IpvsKernel {
  /** Every service (managed or not) and the real-server order of the fwmark services. */
  read(): Promise<IpvsKernelState>;
  /** Applies the changes in order; throws a DriverError at the first one that fails (earlier ones stay applied). */
  apply(ops: readonly IpvsOp[]): Promise<IpvsApplied>;
}
