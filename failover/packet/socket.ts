// The packet-socket addon (packet.c, built by `npm run build:packet` from scripts/setup): a send-only
// AF_PACKET socket opened in this process's network namespace.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

interface Addon {
  open(): number;
  link(fd: number, ifname: string): { index: number; mac: Buffer; arptype: number };
  send(fd: number, ifindex: number, frame: Buffer): number;
  close(fd: number): void;
}

/** ARPHRD_ETHER: the only link type whose frames failover/garp.ts builds. */
export const ARPHRD_ETHER = 1;

export interface PacketLink {
  readonly index: number;
  /** The interface's hardware address (6 bytes). */
  readonly mac: Buffer;
  /** ARPHRD_* link type. */
  readonly arptype: number;
}

/** Where the built addon is, from the sources (failover/packet) or from dist/failover/packet. */
export function addonPath(dir = __dirname): string | null {
  const candidates = [join(dir, 'build/Release/packet.node'), join(dir, '../../../failover/packet/build/Release/packet.node')];
  return candidates.find((p) => existsSync(p)) ?? null;
}

function loadAddon(): Addon {
  const file = addonPath();
  if (!file) throw new Error('the packet-socket addon is not built (failover/packet/build/Release/packet.node; scripts/setup builds it)');
  const m = { exports: {} as Addon };
  process.dlopen(m, file);
  return m.exports;
}

export class PacketSocket {
  private fd: number | null;

  private constructor(private readonly addon: Addon) {
    this.fd = addon.open();
  }

  /** Loads the addon and opens a socket; throws (addon missing or not loadable, no CAP_NET_RAW). */
  static open(): PacketSocket {
    return new PacketSocket(loadAddon());
  }

  private get handle(): number {
    if (this.fd === null) throw new Error('packet socket closed');
    return this.fd;
  }

  /** Index, MAC and link type of an interface, read now. */
  link(ifname: string): PacketLink {
    return this.addon.link(this.handle, ifname);
  }

  /** Sends one complete Ethernet frame on the interface now (does not wait for buffer space). */
  send(ifindex: number, frame: Buffer): void {
    this.addon.send(this.handle, ifindex, frame);
  }

  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    this.addon.close(fd);
  }
}
