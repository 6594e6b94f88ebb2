// Sends the frames that announce a VIP (failover/garp.ts) through the packet socket. Preparing a frame
// (interface index, MAC, IPv6 forwarding flag) and sending it are separate so that the caller can ask
// whether it may still announce between the two, in the same synchronous turn as the send: packet
// sockets bypass the ARP fence's nftables hooks (failover/fence.ts).
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { gratuitousArp, unsolicitedNa } from './garp';
import { ARPHRD_ETHER, PacketSocket } from './packet/socket';

export interface PreparedFrame {
  readonly dev: string;
  readonly ip: string;
  readonly ifindex: number;
  readonly bytes: Buffer;
}

export interface Announcer {
  /** The frame announcing `ip` on `dev`, from the interface as it is now; throws naming both. */
  prepare(dev: string, ip: string): PreparedFrame;
  /** Puts the frame on the wire now; throws naming its address and interface. */
  send(frame: PreparedFrame): void;
  close(): void;
}

/** The IPv6 forwarding setting of an interface (the NA's router flag), false when unreadable. */
export function readForwarding6(dev: string): boolean {
  try {
    return readFileSync(`/proc/sys/net/ipv6/conf/${dev}/forwarding`, 'utf8').trim() === '1';
  } catch {
    return false;
  }
}

export class PacketAnnouncer implements Announcer {
  constructor(private readonly socket: Pick<PacketSocket, 'link' | 'send' | 'close'>, private readonly forwarding6: (dev: string) => boolean = readForwarding6) {}

  prepare(dev: string, ip: string): PreparedFrame {
    let link;
    try {
      link = this.socket.link(dev);
    } catch (e) {
      throw new Error(`interface ${dev}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    if (link.arptype !== ARPHRD_ETHER) throw new Error(`interface ${dev} is not Ethernet (link type ${link.arptype}): cannot announce ${ip}`);
    if (isIPv4(ip)) return { dev, ip, ifindex: link.index, bytes: gratuitousArp(link.mac, ip) };
    if (isIPv6(ip)) return { dev, ip, ifindex: link.index, bytes: unsolicitedNa(link.mac, ip, this.forwarding6(dev)) };
    throw new Error(`not an IP address: "${ip}"`);
  }

  send(frame: PreparedFrame): void {
    try {
      this.socket.send(frame.ifindex, frame.bytes);
    } catch (e) {
      throw new Error(`sending the announcement of ${frame.ip} on ${frame.dev}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
  }

  close(): void {
    this.socket.close();
  }
}

/** The packet announcer, or why there is none (the caller falls back to arping and says so once). */
export function openAnnouncer(): { announcer: Announcer } | { error: string } {
  try {
    return { announcer: new PacketAnnouncer(PacketSocket.open()) };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}
