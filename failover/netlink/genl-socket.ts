// A generic netlink socket of the `netlink` addon, as the IPVS kernel uses it: one request, its raw reply.
import { createAddonSocket, NETLINK_GENERIC } from './addon';
import { NLM_F } from './message';

/** A netlink message as the socket delivers it: header fields and payload. */
export interface GenlMessage {
  readonly type: number;
  readonly flags: number;
  readonly data: Buffer;
}

/** One request on a generic netlink socket. */
export interface GenlTransport {
  /** Resolves with the reply: a dump's messages (DONE left out), a reply message, or the NLMSG_ERROR ack. */
  request(type: number, flags: number, payload: Buffer): Promise<GenlMessage[]>;
  close(): void;
}

/** A generic netlink socket of the `netlink` addon; rejects when the addon cannot load here. */
export async function openGenlTransport(timeoutMs: number): Promise<GenlTransport> {
  // Where the addon is missing the CLI still starts and IPVS falls back to ipvsadm. Default options, as the
  // package's createGenericNetlink() opens it.
  const socket = createAddonSocket(NETLINK_GENERIC);
  // An 'error' event without a listener would end the process; the pending request times out instead.
  socket.on('error', () => undefined);
  return {
    async request(type, flags, payload) {
      // The addon adds NLM_F_REQUEST | NLM_F_ACK; checkError false hands us the NLMSG_ERROR to decode.
      const [msgs] = await socket.request(type, [payload], { flags: flags & ~(NLM_F.REQUEST | NLM_F.ACK), checkError: false, timeout: timeoutMs });
      return msgs.map((m) => ({ type: m.type, flags: m.flags, data: m.data }));
    },
    close: () => socket.close(),
  };
}
