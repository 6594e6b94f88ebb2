// Drift from kernel notifications: rtnetlink multicast for routes, rules, addresses and links, filtered down to the
// objects this node manages, reported as "a managed object may have changed" (the caller requests a reconcile).
import { isIPv6 } from 'node:net';
import { getU32, parseAttrs } from './attrs';
import { NetlinkDecodeError } from './decode-error';
import { AF_INET6 } from './ip-address';
import { decodeRtMsg, decodeRuleHdr, FRA, RTM, RTNLGRP } from './rtnl-codec';
import { decodeAddress } from './rtnl-addresses';
import { decodeLink } from './rtnl-links';
import { routeTableOf } from './rtnl-routes';
import type { Rtnl, RtnlMessage } from './rtnl-socket';

/** What this node manages; read at each notification (it may follow the config). */
export interface KernelInterest {
  readonly tables4: ReadonlySet<number>;
  readonly tables6: ReadonlySet<number>;
  readonly rulePriorities: ReadonlySet<number>;
  /** Interfaces carrying managed addresses or routes (a link change there may remove them). */
  readonly devs: ReadonlySet<string>;
  /** Managed addresses without prefix length, IPv6 compressed lower-case. */
  readonly addresses: ReadonlySet<string>;
}

export interface KernelChange {
  /** e.g. "route deleted from table 101 (IPv4)". */
  readonly what: string;
  /** Notifications coalesced into this report. */
  readonly count: number;
}

export const WATCH_GROUPS = [RTNLGRP.LINK, RTNLGRP.IPV4_IFADDR, RTNLGRP.IPV4_ROUTE, RTNLGRP.IPV4_RULE, RTNLGRP.IPV6_IFADDR, RTNLGRP.IPV6_ROUTE, RTNLGRP.IPV6_RULE];

/** The managed object a notification is about, or null when it concerns nothing we manage. */
export function describeNotification(m: RtnlMessage, interest: KernelInterest): string | null {
  const verb = (n: number) => (n % 4 === 0 ? 'added or changed' : 'deleted');
  try {
    switch (m.type) {
      case RTM.NEWROUTE:
      case RTM.DELROUTE: {
        const v6 = decodeRtMsg(m.data).family === AF_INET6;
        const table = routeTableOf(m.data);
        return (v6 ? interest.tables6 : interest.tables4).has(table) ? `route ${verb(m.type)} in table ${table} (${v6 ? 'IPv6' : 'IPv4'})` : null;
      }
      case RTM.NEWRULE:
      case RTM.DELRULE: {
        const v6 = decodeRuleHdr(m.data).family === AF_INET6;
        const p = parseAttrs(m.data, 12).find((a) => a.type === FRA.PRIORITY);
        const prio = p ? getU32(p.value, 'FRA_PRIORITY') : 0;
        return interest.rulePriorities.has(prio) ? `rule ${verb(m.type)} at priority ${prio} (${v6 ? 'IPv6' : 'IPv4'})` : null;
      }
      case RTM.NEWADDR:
      case RTM.DELADDR: {
        const a = decodeAddress(m.data).address.local;
        return interest.addresses.has(a) ? `address ${a} ${verb(m.type)}` : null;
      }
      case RTM.NEWLINK:
      case RTM.DELLINK: {
        const name = decodeLink(m.data).name;
        return name !== undefined && interest.devs.has(name) ? `interface ${name} ${m.type === RTM.NEWLINK ? 'changed' : 'deleted'}` : null;
      }
      default:
        return null;
    }
  } catch (e) {
    // A notification we cannot read might be about one of ours: reconcile rather than guess.
    if (e instanceof NetlinkDecodeError) return `undecodable notification (type ${m.type}: ${e.message})`;
    throw e;
  }
}

/** The interest's form of an address ("2001:DB8::0:1" → "2001:db8::1"). */
export function interestAddress(ip: string): string {
  return isIPv6(ip) ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip;
}

export class KernelWatch {
  private unsubscribe: (() => void) | null = null;
  private pending: { what: string; count: number } | null = null;
  private timer: NodeJS.Timeout | null = null;

  /** `onChange` gets one report per burst (notifications within settleMs are coalesced). */
  constructor(
    private readonly rtnl: Rtnl,
    private readonly interest: () => KernelInterest,
    private readonly onChange: (c: KernelChange) => void,
    private readonly settleMs = 20,
  ) {}

  start(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.rtnl.subscribe(WATCH_GROUPS, (m) => this.onMessage(m), (why) => this.note(`notifications lost (${why})`));
  }

  close(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending = null;
  }

  private onMessage(m: RtnlMessage): void {
    // Our own changes come back carrying our socket's port: the reconcile that made them already verifies them.
    if (m.port !== 0 && m.port === this.rtnl.port) return;
    const what = describeNotification(m, this.interest());
    if (what) this.note(what);
  }

  private note(what: string): void {
    if (this.pending) {
      this.pending.count++;
      return;
    }
    this.pending = { what, count: 1 };
    this.timer = setTimeout(() => {
      const p = this.pending;
      this.pending = null;
      this.timer = null;
      if (p) this.onChange(p);
    }, this.settleMs);
    this.timer.unref();
  }
}
