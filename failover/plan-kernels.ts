// `sandwich plan` over a kernel seam: reads go to the real kernel, changes are recorded as the command lines they equal.
import { addressArgs, type AddressesKernel, type AddressOp, type KernelAddress } from './addresses';
import { opCommand, type Family, type RoutesKernel, type RoutesKernelState, type RoutesOp } from './routes';
import { formatCommand } from './runner';

export class PlanRoutesKernel implements RoutesKernel {
  constructor(private readonly reader: RoutesKernel, private readonly record: (line: string) => void) {}
  read(family: Family, tables: readonly number[]): Promise<RoutesKernelState> {
    return this.reader.read(family, tables);
  }
  async apply(family: Family, ops: readonly RoutesOp[]): Promise<void> {
    for (const op of ops) this.record(opCommand(op, family));
  }
}

export class PlanAddressesKernel implements AddressesKernel {
  constructor(private readonly reader: AddressesKernel, private readonly record: (line: string) => void) {}
  read(dev: string): Promise<KernelAddress[]> {
    return this.reader.read(dev);
  }
  async apply(op: AddressOp): Promise<'done'> {
    this.record(formatCommand('ip', addressArgs(op)));
    return 'done';
  }
}
