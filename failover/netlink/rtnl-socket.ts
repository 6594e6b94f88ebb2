// rtnetlink for the whole process (the `netlink` N-API addon): one socket for requests, each with a deadline, and one
// for notifications.
import type { NetlinkSocket } from 'netlink/dist/netlink';
import { createAddonSocket, NETLINK_ROUTE } from './addon';
import { errnoText } from './errno';
import { NLMSG, parseErrno } from './message';
import { SerialQueue } from './serial-queue';

/** One message of a reply or a notification: nlmsg_type, the sender's port, the payload after the header. */
export interface RtnlMessage {
  readonly type: number;
  readonly port: number;
  readonly data: Buffer;
}

/** The kernel answered with an error (errno name, e.g. EEXIST), or nothing came back in time (ETIMEDOUT). */
export class RtnlRequestError extends Error {
  override name = 'RtnlRequestError';
  constructor(readonly code: string, readonly errno: number, message: string) {
    super(message);
  }
}

export interface Rtnl {
  /** Sends one request (REQUEST|ACK added); resolves with the reply messages (none for a plain ACK). */
  request(type: number, flags: number, payload: Buffer): Promise<RtnlMessage[]>;
  /** Joins the multicast groups (on the notification socket) and calls `fn` per notification; `onLost` when the kernel dropped some (ENOBUFS). Returns the unsubscribe. */
  subscribe(groups: readonly number[], fn: (m: RtnlMessage) => void, onLost: (why: string) => void): () => void;
  /** The request socket's port id: notifications caused by its requests carry it. */
  readonly port: number;
  close(): void;
}

type Open = () => NetlinkSocket;

/**
 * Requests go one at a time over one socket (the addon groups multipart replies per socket, not per request);
 * notifications come on a second socket, so that none lands in the middle of a dump.
 */
class AddonRtnl implements Rtnl {
  private closed = false;
  private readonly queue = new SerialQueue();
  private readonly sock: NetlinkSocket;
  private notify: NetlinkSocket | null = null;

  constructor(private readonly open: Open, private readonly timeoutMs: number) {
    this.sock = open();
    // Errors of the socket itself must not become uncaught exceptions; requests see theirs.
    this.sock.on('error', () => undefined);
  }

  get port(): number {
    return this.sock.address().port;
  }

  request(type: number, flags: number, payload: Buffer): Promise<RtnlMessage[]> {
    return this.queue.run(() => this.send(type, flags, payload));
  }

  private async send(type: number, flags: number, payload: Buffer): Promise<RtnlMessage[]> {
    if (this.closed) throw new RtnlRequestError('ECLOSED', 0, 'rtnetlink socket closed');
    let msgs;
    try {
      [msgs] = await this.sock.request(type, [payload], { flags, timeout: this.timeoutMs, checkError: false });
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (/Timeout/.test(msg)) throw new RtnlRequestError('ETIMEDOUT', 110, `no answer within ${this.timeoutMs} ms`);
      const errno = (e as { errno?: number }).errno;
      throw new RtnlRequestError((e as { code?: string }).code ?? 'EIO', typeof errno === 'number' ? Math.abs(errno) : 5, msg);
    }
    const out: RtnlMessage[] = [];
    for (const m of msgs) {
      if (m.type === NLMSG.DONE) continue;
      if (m.type === NLMSG.ERROR) {
        let errno: number;
        try {
          errno = parseErrno(m.data, 'rtnetlink error');
        } catch {
          throw new RtnlRequestError('EBADMSG', 74, 'truncated netlink error message');
        }
        if (errno === 0) continue;
        const { code, text } = errnoText(errno);
        throw new RtnlRequestError(code, errno, text);
      }
      out.push({ type: m.type, port: m.port, data: m.data });
    }
    return out;
  }

  subscribe(groups: readonly number[], fn: (m: RtnlMessage) => void, onLost: (why: string) => void): () => void {
    const n = (this.notify ??= this.open());
    // Referenced: a process that listens for changes stays alive for them.
    n.ref(true);
    for (const g of groups) n.addMembership(g);
    const onMessage = (msgs: { type: number; port: number; data: Buffer }[]) => {
      for (const m of msgs) fn({ type: m.type, port: m.port, data: m.data });
    };
    // ENOBUFS: the kernel dropped notifications (receive buffer full).
    const onError = (e: Error) => onLost(e.message);
    n.on('message', onMessage);
    n.on('error', onError);
    return () => {
      n.off('message', onMessage);
      n.off('error', onError);
      if (this.notify === n) {
        this.notify = null;
        n.close();
      }
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
    this.notify?.close();
    this.notify = null;
  }
}

/** A new rtnetlink socket, or why there is none (the addon did not load, no netlink in this sandbox). */
export function openRtnl(timeoutMs: number): { rtnl: Rtnl } | { error: string } {
  try {
    // Not referenced: an idle socket does not keep a CLI process alive. 1 MiB for notification bursts; send: default (0).
    return { rtnl: new AddonRtnl(() => createAddonSocket(NETLINK_ROUTE, { ref: false, recvBufferSize: 1 << 20, sendBufferSize: 0 }), timeoutMs) };
  } catch (e) {
    return { error: `rtnetlink unavailable: ${e instanceof Error ? e.message : String(e)}` };
  }
}

let shared: { rtnl: Rtnl } | { error: string } | null = null;

/** The process's shared socket (opened once); requests are independent, so drivers may share it. */
export function sharedRtnl(timeoutMs: number): { rtnl: Rtnl } | { error: string } {
  shared ??= openRtnl(timeoutMs);
  return shared;
}
