// AddressesKernel over rtnetlink: one address dump per read, one request per change.
import { isIPv6 } from 'node:net';
import { addressArgs, split, type AddressesKernel, type AddressOp, type KernelAddress } from '../addresses';
import { formatCommand } from '../runner';
import { KernelNetlinkError, KernelParseError, KernelUnavailableError } from '../types';
import { attr, parseAttrs } from './attrs';
import { NetlinkDecodeError } from './decode-error';
import { addrBytes, AF_INET, AF_INET6, familyOf, readAddr } from './ip-address';
import { NLM_F } from './message';
import { decodeIfAddrMsg, encodeIfAddrMsg, IFA, IFA_F_NODAD, RTM } from './rtnl-codec';
import { linkIndex } from './rtnl-links';
import { RtnlRequestError, type Rtnl } from './rtnl-socket';

const DRIVER = 'addresses';

/** An address message (RTM_NEWADDR): its interface index and the address as `ip -j addr show` gives it. */
export function decodeAddress(data: Buffer): { index: number; address: KernelAddress } {
  const h = decodeIfAddrMsg(data);
  if (h.family !== AF_INET && h.family !== AF_INET6) throw new NetlinkDecodeError(`interface index ${h.index}: address family ${h.family}`);
  const max = h.family === AF_INET ? 32 : 128;
  if (h.prefixlen > max) throw new NetlinkDecodeError(`interface index ${h.index}: prefix length ${h.prefixlen} > ${max}`);
  const attrs = parseAttrs(data, 8);
  // IFA_LOCAL is the interface's own address (differs from IFA_ADDRESS on point-to-point links); IPv6 has only IFA_ADDRESS.
  const a = attrs.find((x) => x.type === IFA.LOCAL) ?? attrs.find((x) => x.type === IFA.ADDRESS);
  if (!a) throw new NetlinkDecodeError(`interface index ${h.index}: address message without IFA_LOCAL or IFA_ADDRESS`);
  const local = readAddr(a, h.family, `interface index ${h.index}: address`);
  return { index: h.index, address: { family: h.family === AF_INET ? 'inet' : 'inet6', local, prefixlen: h.prefixlen } };
}

/** RTM_NEWADDR / RTM_DELADDR payload for `op` on interface `index`. */
export function encodeAddressOp(op: AddressOp, index: number): Buffer {
  const { ip, len } = split(op.address);
  const bytes = addrBytes(ip);
  const nodad = op.op === 'add' && op.nodad === true && isIPv6(ip);
  return Buffer.concat([
    encodeIfAddrMsg({ family: familyOf(ip), prefixlen: len, flags: nodad ? IFA_F_NODAD : 0, scope: 0, index }),
    attr(IFA.LOCAL, bytes),
    attr(IFA.ADDRESS, bytes),
  ]);
}

export class NetlinkAddressesKernel implements AddressesKernel {
  constructor(private readonly rtnl: Rtnl) {}

  private async index(dev: string, driver: string, command: string): Promise<number> {
    try {
      return await linkIndex(this.rtnl, dev);
    } catch (e) {
      if (e instanceof RtnlRequestError && e.code === 'ENODEV') throw new KernelUnavailableError(driver, `${driver}: interface ${dev} does not exist`);
      throw this.typed(e, driver, `interface ${dev}`, command);
    }
  }

  async read(dev: string): Promise<KernelAddress[]> {
    const command = formatCommand('ip', ['-j', 'addr', 'show', 'dev', dev]);
    const index = await this.index(dev, DRIVER, command);
    let msgs;
    try {
      msgs = await this.rtnl.request(RTM.GETADDR, NLM_F.DUMP, encodeIfAddrMsg({ family: 0, prefixlen: 0, flags: 0, scope: 0, index: 0 }));
    } catch (e) {
      throw this.typed(e, DRIVER, `addresses of ${dev}`, command);
    }
    const out: KernelAddress[] = [];
    msgs.filter((m) => m.type === RTM.NEWADDR).forEach((m, i) => {
      let d;
      try {
        // Only this interface's addresses are decoded in full.
        if (decodeIfAddrMsg(m.data).index !== index) return;
        d = decodeAddress(m.data);
      } catch (e) {
        if (!(e instanceof NetlinkDecodeError)) throw e;
        throw new KernelParseError(DRIVER, `rtnetlink address dump (RTM_GETADDR) for ${dev}`, m.data.toString('hex'), `${dev}: ${e.message}`, i + 1);
      }
      out.push(d.address);
    });
    return out;
  }

  async apply(op: AddressOp, driver: string): Promise<'done' | 'exists'> {
    const command = formatCommand('ip', addressArgs(op));
    const index = await this.index(op.dev, driver, command);
    try {
      await this.rtnl.request(op.op === 'add' ? RTM.NEWADDR : RTM.DELADDR, op.op === 'add' ? NLM_F.CREATE | NLM_F.EXCL : 0, encodeAddressOp(op, index));
      return 'done';
    } catch (e) {
      if (op.op === 'add' && e instanceof RtnlRequestError && e.code === 'EEXIST') return 'exists';
      throw this.typed(e, driver, `address ${op.address} on ${op.dev}`, command);
    }
  }

  private typed(e: unknown, driver: string, object: string, command: string): unknown {
    if (e instanceof RtnlRequestError) return new KernelNetlinkError(driver, object, e.code, command, e.message);
    if (e instanceof NetlinkDecodeError) return new KernelParseError(driver, command, '', `${object}: ${e.message}`);
    return e;
  }
}
