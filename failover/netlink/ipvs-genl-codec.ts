// The IPVS generic netlink family (linux/ip_vs.h, "IPVS" version 1): requests for typed changes and dumps,
// and the kernel's service / destination replies decoded into the shapes `ipvsadm -Sn` gives the driver.
import { fwmarkKey, type IpvsRealServer, type IpvsService } from '../ipvs';
import type { IpvsOp } from '../ipvs-ops';
import { attr, attrMap, getU16, getU16be, getU32, need, nestAttr, readAsciiName, stringAttr, u16Attr, u32Attr } from './attrs';
import { NetlinkDecodeError } from './decode-error';
import { genlHeader, parseGenl } from './genl-codec';
import { addrBytes, AF_INET, AF_INET6, readAddr } from './ip-address';

export const IPVS_GENL_NAME = 'IPVS';
export const IPVS_GENL_VERSION = 1;

export const IPVS_CMD = { NEW_SERVICE: 1, SET_SERVICE: 2, DEL_SERVICE: 3, GET_SERVICE: 4, NEW_DEST: 5, SET_DEST: 6, DEL_DEST: 7, GET_DEST: 8, GET_INFO: 15 } as const;
const CMD_ATTR_SERVICE = 1;
const CMD_ATTR_DEST = 2;
const SVC = { AF: 1, PROTOCOL: 2, ADDR: 3, PORT: 4, FWMARK: 5, SCHED_NAME: 6, FLAGS: 7, TIMEOUT: 8, NETMASK: 9, PE_NAME: 11 } as const;
const DEST = { ADDR: 1, PORT: 2, FWD_METHOD: 3, WEIGHT: 4, U_THRESH: 5, L_THRESH: 6, ADDR_FAMILY: 11 } as const;

const IP_VS_SVC_F_PERSISTENT = 0x1;
const IP_VS_SVC_F_ONEPACKET = 0x4;
const SCHED1 = 0x8;
const SCHED2 = 0x10;
const SCHED3 = 0x20;
const IP_VS_CONN_F_FWD_MASK = 0x7;
const IP_VS_CONN_F_DROUTE = 3;
/** IP_VS_SCHEDNAME_MAXLEN, with the NUL. */
const SCHEDNAME_MAXLEN = 16;
/** The kernel's default persistence netmask: all ones (IPv4), a prefix length of 128 (IPv6). */
const netmaskOf = (ipv6: boolean) => (ipv6 ? 128 : 0xffffffff);

/** ipvsadm's names of the scheduler flags (parse_sched_flags / print_sched_flags in ipvsadm.c): sh and mh name 1 and 2. */
function flagNames(scheduler: string): [string, number][] {
  const named = scheduler === 'sh' || scheduler === 'mh' ? [[`${scheduler}-fallback`, SCHED1], [`${scheduler}-port`, SCHED2]] as [string, number][] : [];
  return [...named, ['flag-1', SCHED1], ['flag-2', SCHED2], ['flag-3', SCHED3]];
}

/** Scheduler flag names → bits, or the name that is not a flag of this scheduler. */
export function schedFlagBits(scheduler: string, flags: readonly string[]): number | { unknown: string } {
  const names = new Map(flagNames(scheduler));
  let bits = 0;
  for (const f of flags) {
    const b = names.get(f);
    if (b === undefined) return { unknown: f };
    bits |= b;
  }
  return bits;
}

/** Bits → names as `ipvsadm -Sn` prints them (sh-fallback, sh-port for sh; flag-N otherwise). */
export function schedFlagNames(scheduler: string, bits: number): string[] {
  const out: string[] = [];
  let left = bits & (SCHED1 | SCHED2 | SCHED3);
  for (const [name, b] of flagNames(scheduler)) {
    if (left & b) {
      out.push(name);
      left &= ~b;
    }
  }
  return out;
}

/** 16 bytes (union nf_inet_addr) for an IPv4 or IPv6 address. */
function nfInetAddr(address: string): Buffer {
  const b = Buffer.alloc(16);
  addrBytes(address).copy(b);
  return b;
}

function addrText(b: Buffer, af: number, what: string): string {
  if (af === AF_INET) {
    if (b.length !== 4 && b.length !== 16) throw new NetlinkDecodeError(`${what}: IPv4 address of ${b.length} bytes`);
    return readAddr({ type: 0, value: b.subarray(0, 4) }, AF_INET, what);
  }
  if (b.length !== 16) throw new NetlinkDecodeError(`${what}: IPv6 address of ${b.length} bytes`);
  return readAddr({ type: 0, value: b }, AF_INET6, what);
}

function familyOf(af: number, what: string): boolean {
  if (af === AF_INET) return false;
  if (af === AF_INET6) return true;
  throw new NetlinkDecodeError(`${what}: address family ${af} is neither AF_INET nor AF_INET6`);
}

// --- requests ---

/** The identifying attributes of a fwmark service (enough for GET_DEST, DEL_*). */
function fwmarkService(fwmark: number, ipv6: boolean): Buffer[] {
  return [u16Attr(SVC.AF, ipv6 ? AF_INET6 : AF_INET), u32Attr(SVC.FWMARK, fwmark)];
}

/** A request's payload (generic netlink header + attributes) and its command. */
export interface IpvsRequest {
  readonly cmd: number;
  readonly payload: Buffer;
}

const request = (cmd: number, attrs: readonly Buffer[]): IpvsRequest => ({ cmd, payload: Buffer.concat([genlHeader(cmd, IPVS_GENL_VERSION), ...attrs]) });

/**
 * The request for one change, as ipvsadm (libipvs) sends it: a full service (scheduler, flags with mask ~0,
 * timeout 0, the default netmask) or a full destination (direct routing, port 0, no thresholds).
 * Throws for a change that cannot be encoded (checked before anything is sent).
 */
export function encodeOp(op: IpvsOp): IpvsRequest {
  const svc = fwmarkService(op.fwmark, op.ipv6);
  switch (op.kind) {
    case 'add-service':
    case 'edit-service': {
      if (!/^[a-z0-9_]+$/.test(op.scheduler) || op.scheduler.length >= SCHEDNAME_MAXLEN) throw new RangeError(`scheduler "${op.scheduler}" is not a scheduler name`);
      const bits = schedFlagBits(op.scheduler, op.flags);
      if (typeof bits !== 'number') throw new RangeError(`"${bits.unknown}" is not a flag of scheduler ${op.scheduler}`);
      const flags = Buffer.alloc(8);
      flags.writeUInt32LE(bits, 0);
      flags.writeUInt32LE(0xffffffff, 4);
      const full = [...svc, stringAttr(SVC.SCHED_NAME, op.scheduler), attr(SVC.FLAGS, flags), u32Attr(SVC.TIMEOUT, 0), u32Attr(SVC.NETMASK, netmaskOf(op.ipv6))];
      return request(op.kind === 'add-service' ? IPVS_CMD.NEW_SERVICE : IPVS_CMD.SET_SERVICE, [nestAttr(CMD_ATTR_SERVICE, full)]);
    }
    case 'add-dest':
    case 'edit-dest':
    case 'del-dest': {
      if (op.address.includes(':') !== op.ipv6) throw new RangeError(`real server ${op.address} is not an ${op.ipv6 ? 'IPv6' : 'IPv4'} address`);
      const id = [u16Attr(DEST.ADDR_FAMILY, op.ipv6 ? AF_INET6 : AF_INET), attr(DEST.ADDR, nfInetAddr(op.address)), u16Attr(DEST.PORT, 0)];
      if (op.kind === 'del-dest') return request(IPVS_CMD.DEL_DEST, [nestAttr(CMD_ATTR_SERVICE, svc), nestAttr(CMD_ATTR_DEST, id)]);
      const dest = [...id, u32Attr(DEST.FWD_METHOD, IP_VS_CONN_F_DROUTE), u32Attr(DEST.WEIGHT, op.weight), u32Attr(DEST.U_THRESH, 0), u32Attr(DEST.L_THRESH, 0)];
      return request(op.kind === 'add-dest' ? IPVS_CMD.NEW_DEST : IPVS_CMD.SET_DEST, [nestAttr(CMD_ATTR_SERVICE, svc), nestAttr(CMD_ATTR_DEST, dest)]);
    }
  }
}

/** GET_SERVICE as a dump: every service of the namespace. */
export const dumpServicesRequest = (): IpvsRequest => request(IPVS_CMD.GET_SERVICE, []);

/** GET_DEST as a dump of one service, named by the identifying attributes its dump reply carried. */
export const dumpDestsRequest = (svc: DecodedService): IpvsRequest => request(IPVS_CMD.GET_DEST, [nestAttr(CMD_ATTR_SERVICE, svc.identity)]);

// --- replies ---

const PROTOCOLS: Record<number, IpvsService['protocol']> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };

export interface DecodedService {
  readonly service: IpvsService;
  /** Identifying attributes (AF + FWMARK, or AF + PROTOCOL + ADDR + PORT) as they came, for GET_DEST. */
  readonly identity: Buffer[];
}

/** One message of the GET_SERVICE dump (IPVS_CMD_NEW_SERVICE with a nested IPVS_CMD_ATTR_SERVICE). */
export function decodeService(data: Buffer): DecodedService {
  const what = 'IPVS service';
  const { attrs } = parseGenl(data, what);
  const a = attrMap(need(attrMap(attrs, what), CMD_ATTR_SERVICE, `${what}: IPVS_CMD_ATTR_SERVICE`), what);
  const afBuf = need(a, SVC.AF, `${what}: IPVS_SVC_ATTR_AF`);
  const ipv6 = familyOf(getU16(afBuf, `${what}: IPVS_SVC_ATTR_AF`), `${what}: IPVS_SVC_ATTR_AF`);
  const markBuf = a.get(SVC.FWMARK);
  let key: string;
  let protocol: IpvsService['protocol'];
  let fwmark: number | null = null;
  let identity: Buffer[];
  if (markBuf !== undefined) {
    fwmark = getU32(markBuf, `${what}: IPVS_SVC_ATTR_FWMARK`);
    protocol = 'fwmark';
    key = fwmarkKey(fwmark, ipv6);
    identity = [attr(SVC.AF, afBuf), attr(SVC.FWMARK, markBuf)];
  } else {
    const protoBuf = need(a, SVC.PROTOCOL, `${what}: IPVS_SVC_ATTR_PROTOCOL (neither a fwmark nor a protocol)`);
    const proto = getU16(protoBuf, `${what}: IPVS_SVC_ATTR_PROTOCOL`);
    const p = PROTOCOLS[proto] ?? failService(`protocol ${proto} is none of TCP, UDP, SCTP`);
    const addrBuf = need(a, SVC.ADDR, `${what}: IPVS_SVC_ATTR_ADDR`);
    const portBuf = need(a, SVC.PORT, `${what}: IPVS_SVC_ATTR_PORT`);
    const addr = addrText(addrBuf, ipv6 ? AF_INET6 : AF_INET, `${what}: IPVS_SVC_ATTR_ADDR`);
    const port = getU16be(portBuf, `${what}: IPVS_SVC_ATTR_PORT`);
    protocol = p;
    // As parseIpvsSave keys them: "-t 192.0.2.10:80", "-u [2001:db8::10]:53", "-s …" for SCTP.
    key = `-${p[0]} ${ipv6 ? `[${addr}]` : addr}:${port}`;
    identity = [attr(SVC.AF, afBuf), attr(SVC.PROTOCOL, protoBuf), attr(SVC.ADDR, addrBuf), attr(SVC.PORT, portBuf)];
  }
  const scheduler = readAsciiName(need(a, SVC.SCHED_NAME, `${what} ${key}: IPVS_SVC_ATTR_SCHED_NAME`), `${what} ${key}: IPVS_SVC_ATTR_SCHED_NAME`);
  const flagsBuf = need(a, SVC.FLAGS, `${what} ${key}: IPVS_SVC_ATTR_FLAGS`);
  if (flagsBuf.length !== 8) throw new NetlinkDecodeError(`${what} ${key}: IPVS_SVC_ATTR_FLAGS: expected struct ip_vs_flags (8 bytes), got ${flagsBuf.length}`);
  const bits = flagsBuf.readUInt32LE(0);
  // What `ipvsadm -Sn` prints besides -s and -b, so that the planner sees the same options.
  const extra: string[] = [];
  if (bits & IP_VS_SVC_F_PERSISTENT) {
    const timeout = a.get(SVC.TIMEOUT);
    extra.push('-p', String(timeout ? getU32(timeout, `${what} ${key}: IPVS_SVC_ATTR_TIMEOUT`) : 0));
    const mask = a.get(SVC.NETMASK);
    const m = mask ? getU32(mask, `${what} ${key}: IPVS_SVC_ATTR_NETMASK`) : netmaskOf(ipv6);
    if (m !== netmaskOf(ipv6)) extra.push('-M', ipv6 ? String(m) : [0, 1, 2, 3].map((i) => (m >>> (8 * i)) & 0xff).join('.'));
  }
  const pe = a.get(SVC.PE_NAME);
  if (pe) extra.push('--pe', readAsciiName(pe, `${what} ${key}: IPVS_SVC_ATTR_PE_NAME`));
  if (bits & IP_VS_SVC_F_ONEPACKET) extra.push('-o');
  const service: IpvsService = { key, protocol, fwmark, ipv6, scheduler, flags: schedFlagNames(scheduler, bits), extra, realServers: [] };
  return { service, identity };

  function failService(reason: string): never {
    throw new NetlinkDecodeError(`${what}: ${reason}`);
  }
}

/** A destination as the GET_DEST dump gives it, with its address for the order. */
export interface DecodedDest {
  readonly address: string;
  readonly port: number;
  readonly realServer: IpvsRealServer;
}

const FORWARDING: Record<number, string> = { 0: 'm', 1: 'g', 2: 'i', 3: 'g' }; // local node prints as -g in ipvsadm (fwd_switch)

/** One message of the GET_DEST dump (IPVS_CMD_NEW_DEST with a nested IPVS_CMD_ATTR_DEST) of a service of family ipv6. */
export function decodeDest(data: Buffer, serviceIpv6: boolean, serviceKey: string): DecodedDest {
  const what = `IPVS real server of ${serviceKey}`;
  const { attrs } = parseGenl(data, what);
  const a = attrMap(need(attrMap(attrs, what), CMD_ATTR_DEST, `${what}: IPVS_CMD_ATTR_DEST`), what);
  const afBuf = a.get(DEST.ADDR_FAMILY); // absent before Linux 4.3: the service's family
  const ipv6 = afBuf ? familyOf(getU16(afBuf, `${what}: IPVS_DEST_ATTR_ADDR_FAMILY`), `${what}: IPVS_DEST_ATTR_ADDR_FAMILY`) : serviceIpv6;
  const address = addrText(need(a, DEST.ADDR, `${what}: IPVS_DEST_ATTR_ADDR`), ipv6 ? AF_INET6 : AF_INET, `${what}: IPVS_DEST_ATTR_ADDR`);
  const port = getU16be(need(a, DEST.PORT, `${what}: IPVS_DEST_ATTR_PORT`), `${what}: IPVS_DEST_ATTR_PORT`);
  const fwd = getU32(need(a, DEST.FWD_METHOD, `${what} ${address}: IPVS_DEST_ATTR_FWD_METHOD`), `${what} ${address}: IPVS_DEST_ATTR_FWD_METHOD`) & IP_VS_CONN_F_FWD_MASK;
  const forwarding = FORWARDING[fwd] ?? failDest(`${address}: forwarding method ${fwd} is none of masquerading, direct routing, tunnel`);
  const weight = getU32(need(a, DEST.WEIGHT, `${what} ${address}: IPVS_DEST_ATTR_WEIGHT`), `${what} ${address}: IPVS_DEST_ATTR_WEIGHT`) | 0;
  // ipvsadm -Sn does not print thresholds; they are options we do not manage, so the planner resets them.
  const extra: string[] = [];
  const u = a.get(DEST.U_THRESH);
  const l = a.get(DEST.L_THRESH);
  const uThresh = u ? getU32(u, `${what} ${address}: IPVS_DEST_ATTR_U_THRESH`) : 0;
  const lThresh = l ? getU32(l, `${what} ${address}: IPVS_DEST_ATTR_L_THRESH`) : 0;
  if (uThresh) extra.push('-x', String(uThresh));
  if (lThresh) extra.push('-y', String(lThresh));
  const target = `${ipv6 ? `[${address}]` : address}:${port}`;
  return { address, port, realServer: { target, forwarding, weight, extra } };

  function failDest(reason: string): never {
    throw new NetlinkDecodeError(`${what}: ${reason}`);
  }
}
