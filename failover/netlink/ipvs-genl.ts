// The IPVS table through the IPVS generic netlink family: one socket, no process per read or change.
//
// Order of real servers: IPVS_CMD_GET_DEST dumps a service's destinations in the kernel's list order, the
// order sh/mh walk — ip_vs_genl_dump_dests() in net/netfilter/ipvs/ip_vs_ctl.c:
//   list_for_each_entry_rcu(dest, &svc->destinations, n_list) { … ip_vs_genl_dump_dest(skb, dest, cb) … }
// and __ip_vs_update_dest() adds with list_add_rcu(&dest->n_list, &svc->destinations) (at the head). So the
// dump is newest first, like /proc/net/ip_vs, and its reverse is the insertion order the driver speaks of:
// no second source is needed.
import type { IpvsKernelState, IpvsService } from '../ipvs';
import { describeIpvsOp, formatIpvsOp, type IpvsApplied, type IpvsKernel, type IpvsOp } from '../ipvs-ops';
import { formatCommand } from '../runner';
import { DriverInputError, KernelCommandError, KernelParseError, KernelRejectedError, KernelUnavailableError } from '../types';
import { NetlinkDecodeError } from './decode-error';
import { errnoText } from './errno';
import { GENL_ID_CTRL, getFamilyRequest, parseFamilyId } from './genl-codec';
import { openGenlTransport, type GenlMessage, type GenlTransport } from './genl-socket';
import { IPVS_CMD, IPVS_GENL_NAME, decodeDest, decodeService, dumpDestsRequest, dumpServicesRequest, encodeOp, type DecodedDest, type IpvsRequest } from './ipvs-genl-codec';
import { NLM_F, NLMSG, parseErrno } from './message';
import { SerialQueue } from './serial-queue';

const DRIVER = 'ipvs';
const ENOENT = 2;

/** Like ipvsadm's ipvs_strerror(): what an errno means for each kind of change. */
function hintFor(kind: IpvsOp['kind'] | 'read', code: string): string {
  const svc = kind === 'add-service' || kind === 'edit-service';
  switch (code) {
    case 'EEXIST': return kind === 'add-service' ? 'Service already exists' : kind === 'add-dest' ? 'Destination already exists' : '';
    case 'ESRCH': return svc ? 'No such service' : 'Service not defined';
    case 'ENOENT': return svc ? 'Scheduler or persistence engine not found' : kind === 'read' ? '' : 'No such destination';
    case 'EPERM': return 'Permission denied: needs CAP_NET_ADMIN';
    case 'EINVAL': return 'Invalid operation: wrong module version, address not unicast, or mixed address families';
    case 'EAFNOSUPPORT': return 'Operation not supported with this address family';
    default: return '';
  }
}

const CMD_NAME: Record<number, string> = Object.fromEntries(Object.entries(IPVS_CMD).map(([k, v]) => [v, `IPVS_CMD_${k}`]));

/** ipvsadm's sort of -Sn output (ipvs_cmp_dests): family, address bytes, port. */
function byAddress(a: DecodedDest, b: DecodedDest): number {
  const key = (d: DecodedDest) => (d.address.includes(':') ? `6 ${d.address.split(':').map((g) => g.padStart(4, '0')).join(':')}` : `4 ${d.address.split('.').map((o) => o.padStart(3, '0')).join('.')}`);
  const ka = key(a);
  const kb = key(b);
  return ka < kb ? -1 : ka > kb ? 1 : a.port - b.port;
}

export interface IpvsGenlOptions {
  /** Opens the socket on first use (default: the `netlink` addon's generic netlink socket). */
  open?: () => Promise<GenlTransport>;
  /** Deadline of one request (ms). Default 5000. */
  timeoutMs?: number;
}

/** IpvsKernel over generic netlink. Requests go one at a time (a dump's parts are matched by order). */
export class IpvsGenlKernel implements IpvsKernel {
  private transport: Promise<GenlTransport> | null = null;
  private family: number | null = null;
  private readonly queue = new SerialQueue();

  constructor(private readonly opts: IpvsGenlOptions = {}) {}

  read(): Promise<IpvsKernelState> {
    return this.queue.run(async () => {
      const family = await this.familyId();
      const services: IpvsService[] = [];
      const order = new Map<string, string[]>();
      const listed = await this.call(family, dumpServicesRequest(), NLM_F.DUMP, 'IPVS services', 'list', 'read');
      for (const m of listed) {
        const d = this.decode('IPVS_CMD_GET_SERVICE', m, () => decodeService(this.payloadOf(m, family, IPVS_CMD.NEW_SERVICE)));
        const label = `service ${d.service.key}`;
        const destMsgs = await this.call(family, dumpDestsRequest(d), NLM_F.DUMP, label, 'list real servers', 'read');
        // The dump is the kernel's list order (newest first): see the top of this file.
        const dests = destMsgs.map((dm) => this.decode(`IPVS_CMD_GET_DEST ${d.service.key}`, dm, () => decodeDest(this.payloadOf(dm, family, IPVS_CMD.NEW_DEST), d.service.ipv6, d.service.key)));
        services.push({ ...d.service, realServers: [...dests].sort(byAddress).map((x) => x.realServer) });
        if (d.service.protocol === 'fwmark') order.set(d.service.key, dests.map((x) => x.address).reverse());
      }
      return { services, order };
    });
  }

  apply(ops: readonly IpvsOp[]): Promise<IpvsApplied> {
    return this.queue.run(async () => {
      // Encode every change first: one that cannot be sent stops the batch before the kernel sees any.
      const requests = ops.map((op) => {
        try {
          return { op, req: encodeOp(op) };
        } catch (e) {
          const { object, action } = describeIpvsOp(op);
          throw new DriverInputError(DRIVER, `${object}: ${action}: ${(e as Error).message}`);
        }
      });
      const commands = ops.map((op) => formatCommand('ipvsadm', formatIpvsOp(op).split(' ')));
      const family = await this.familyId();
      for (const [i, { op, req }] of requests.entries()) {
        const { object, action } = describeIpvsOp(op);
        const replies = await this.call(family, req, 0, object, action, op.kind, i > 0 ? `${i} of ${ops.length} changes applied before` : '');
        if (replies.length !== 0) throw new KernelParseError(DRIVER, CMD_NAME[req.cmd] ?? `IPVS command ${req.cmd}`, '', `expected an ack, got ${replies.length} message(s)`);
      }
      return { commands, note: '' };
    });
  }

  close(): void {
    void this.transport?.then((t) => t.close(), () => undefined);
    this.transport = null;
  }

  private socket(): Promise<GenlTransport> {
    if (!this.transport) {
      const open = this.opts.open ?? (() => openGenlTransport(this.opts.timeoutMs ?? 5000));
      this.transport = open().catch((e: unknown) => {
        this.transport = null;
        throw new KernelUnavailableError(DRIVER, `generic netlink unavailable: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      });
    }
    return this.transport;
  }

  /** The IPVS family's id from the controller (cached; asked again after any failed request). */
  private async familyId(): Promise<number> {
    if (this.family !== null) return this.family;
    const t = await this.socket();
    let replies: GenlMessage[];
    try {
      replies = await t.request(GENL_ID_CTRL, NLM_F.REQUEST | NLM_F.ACK, getFamilyRequest(IPVS_GENL_NAME));
    } catch (e) {
      throw new KernelCommandError(DRIVER, 'CTRL_CMD_GETFAMILY IPVS', `generic netlink controller: ${(e as Error).message}`, e);
    }
    const first = replies[0];
    if (first && first.type === NLMSG.ERROR) {
      const errno = this.decode('CTRL_CMD_GETFAMILY IPVS', first, () => parseErrno(first.data, 'controller error'));
      if (errno === ENOENT) throw new KernelUnavailableError(DRIVER, 'IPVS not available in this kernel: modprobe ip_vs (generic netlink family "IPVS" not found)');
      throw new KernelRejectedError(DRIVER, 'generic netlink family IPVS', 'resolve', errno, errnoText(errno).code);
    }
    if (!first || first.type !== GENL_ID_CTRL) throw new KernelParseError(DRIVER, 'CTRL_CMD_GETFAMILY IPVS', '', `expected the controller's reply, got ${first ? `message type ${first.type}` : 'nothing'}`);
    this.family = this.decode('CTRL_CMD_GETFAMILY IPVS', first, () => parseFamilyId(first.data));
    return this.family;
  }

  /** One request; an NLMSG_ERROR with an errno becomes KernelRejectedError naming object and action. */
  private async call(family: number, req: IpvsRequest, flags: number, object: string, action: string, kind: IpvsOp['kind'] | 'read', progress = ''): Promise<GenlMessage[]> {
    const t = await this.socket();
    const cmd = CMD_NAME[req.cmd] ?? `IPVS command ${req.cmd}`;
    let replies: GenlMessage[];
    try {
      replies = await t.request(family, NLM_F.REQUEST | NLM_F.ACK | flags, req.payload);
    } catch (e) {
      this.family = null;
      throw new KernelCommandError(DRIVER, cmd, `${object}: ${action}: ${(e as Error).message}${progress ? ` (${progress})` : ''}`, e);
    }
    const err = replies.find((m) => m.type === NLMSG.ERROR);
    if (!err) return replies;
    const errno = this.decode(cmd, err, () => parseErrno(err.data, `${cmd} error`));
    if (errno === 0) return replies.filter((m) => m !== err);
    this.family = null; // a module reload gives the family a new id
    const hint = [hintFor(kind, errnoText(errno).code), progress].filter((x) => x).join('; ');
    throw new KernelRejectedError(DRIVER, object, action, errno, errnoText(errno).code, hint);
  }

  private payloadOf(m: GenlMessage, family: number, cmd: number): Buffer {
    if (m.type !== family) throw new NetlinkDecodeError(`IPVS reply: message type ${m.type}, expected the IPVS family ${family}`);
    if (m.data[0] !== cmd) throw new NetlinkDecodeError(`IPVS reply: command ${m.data[0]}, expected ${CMD_NAME[cmd]}`);
    return m.data;
  }

  /** Runs a decoder; NetlinkDecodeError becomes KernelParseError naming the request and the message's bytes. */
  private decode<T>(command: string, m: GenlMessage, f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (e instanceof NetlinkDecodeError) throw new KernelParseError(DRIVER, command, m.data.subarray(0, 96).toString('hex'), e.message);
      throw e;
    }
  }
}

/** The netlink kernel with its socket open now; rejects (KernelUnavailableError) where the addon cannot load. */
export async function openIpvsGenl(timeoutMs: number): Promise<IpvsGenlKernel> {
  const transport = openGenlTransport(timeoutMs);
  await transport.catch((e: unknown) => {
    throw new KernelUnavailableError(DRIVER, `generic netlink unavailable: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  });
  return new IpvsGenlKernel({ open: () => transport, timeoutMs });
}
