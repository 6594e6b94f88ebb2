// The packet-socket addon (packet.c, built by `npm run build:packet` from scripts/setup): a send-only
// AF_PACKET socket opened in this process's network namespace.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

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

const BUILT = 'build/Release/packet.node';

/**
 * Where the built addon is: next to this file (the sources, failover/packet), or under failover/packet in
 * the nearest directory above it that has one (dist/failover/packet, the bundle in dist/sandwich, the lab
 * VM's copy of the app).
 */
export function addonPath(dir = __dirname): string | null {
  if (existsSync(join(dir, BUILT))) return join(dir, BUILT);
  for (let d = dir; ; d = dirname(d)) {
    const p = join(d, 'failover/packet', BUILT);
    if (existsSync(p)) return p;
    if (dirname(d) === d) return null;
  }
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
