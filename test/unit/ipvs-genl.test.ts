import { Actuator } from '../../failover/actuator';
import { IpvsDriver, planIpvs, type IpvsKernelState, type IpvsWant } from '../../failover/ipvs';
import { formatIpvsOp, type IpvsApplied, type IpvsKernel, type IpvsOp } from '../../failover/ipvs-ops';
import { attrMap } from '../../failover/netlink/attrs';
import { NetlinkDecodeError } from '../../failover/netlink/decode-error';
import type { GenlMessage, GenlTransport } from '../../failover/netlink/genl-socket';
import { IpvsGenlKernel } from '../../failover/netlink/ipvs-genl';
import { decodeDest, decodeService, encodeOp, schedFlagBits, schedFlagNames } from '../../failover/netlink/ipvs-genl-codec';
import { FakeRunner } from '../../failover/runner';
import { ManualTimers } from '../../failover/timers';
import { FakeKernel } from './fixtures/kernel/fake-kernel';
import { exampleConfig } from './fixtures/snapshot';
import { DriverInputError, KernelParseError, KernelRejectedError, KernelUnavailableError, KernelVerifyError } from '../../failover/types';

// Replies are built here from the header layouts (struct nlattr: u16 len, u16 type, payload, pad to 4;
// struct genlmsghdr: u8 cmd, u8 version, u16 reserved), independently of the codec under test.
function tlv(type: number, payload: Buffer | number[]): Buffer {
  const p = Buffer.from(payload);
  const b = Buffer.alloc(Math.ceil((4 + p.length) / 4) * 4);
  b.writeUInt16LE(4 + p.length, 0);
  b.writeUInt16LE(type, 2);
  p.copy(b, 4);
  return b;
}
const le16 = (v: number) => [v & 0xff, v >> 8];
const le32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
const be16 = (v: number) => [v >> 8, v & 0xff];
const genl = (cmd: number, ...attrs: Buffer[]) => Buffer.concat([Buffer.from([cmd, 1, 0, 0]), ...attrs]);
const v4 = (a: string) => [...a.split('.').map(Number), ...Array(12).fill(0)];
const v6 = (hex: string) => [...Buffer.from(hex, 'hex')];

/** IPVS_CMD_NEW_SERVICE as the kernel dumps a fwmark service (AF, FWMARK, SCHED_NAME, FLAGS, TIMEOUT, NETMASK, STATS). */
function fwmarkServiceReply(mark: number, af: number, sched: string, flags: number): Buffer {
  return genl(1, tlv(1, Buffer.concat([
    tlv(1, le16(af)), tlv(5, le32(mark)), tlv(6, Buffer.from(`${sched}\0`)), tlv(7, [...le32(flags), ...le32(0xffffffff)]),
    tlv(8, le32(0)), tlv(9, le32(af === 2 ? 0xffffffff : 128)), tlv(10, tlv(1, le32(7))), tlv(12, tlv(1, [0, 0, 0, 0, 0, 0, 0, 0])),
  ])));
}
/** IPVS_CMD_NEW_DEST as the kernel dumps a destination, with the newer attributes we do not read (TUN_*, stats). */
function destReply(addr: number[], af: number, weight: number, fwd = 3, port = 0): Buffer {
  return genl(5, tlv(2, Buffer.concat([
    tlv(1, addr), tlv(2, be16(port)), tlv(3, le32(fwd)), tlv(4, le32(weight)), tlv(5, le32(0)), tlv(6, le32(0)),
    tlv(7, le32(3)), tlv(8, le32(1)), tlv(9, le32(0)), tlv(10, tlv(1, le32(9))), tlv(11, le16(af)), tlv(13, [0]), tlv(14, le16(0)),
  ])));
}

describe('IPVS generic netlink codec', () => {
  it('encodes a change as libipvs does: nested service (AF, FWMARK) and full destination', () => {
    const req = encodeOp({ kind: 'add-dest', fwmark: 1, ipv6: false, address: '10.1.0.11', weight: 100 });
    expect(req.cmd).toBe(5);
    const expected = genl(5,
      tlv(1, Buffer.concat([tlv(1, le16(2)), tlv(5, le32(1))])),
      tlv(2, Buffer.concat([tlv(11, le16(2)), tlv(1, v4('10.1.0.11')), tlv(2, be16(0)), tlv(3, le32(3)), tlv(4, le32(100)), tlv(5, le32(0)), tlv(6, le32(0))])));
    expect(req.payload.toString('hex')).toBe(expected.toString('hex'));
    // The first bytes spelled out: genl header, then IPVS_CMD_ATTR_SERVICE of 20 bytes holding AF=AF_INET.
    expect(req.payload.subarray(0, 16).toString('hex')).toBe('05010000' + '14000100' + '06000100' + '02000000');
  });

  it('encodes a service with its scheduler flags, mask ~0, timeout 0 and the family\'s default netmask', () => {
    const req = encodeOp({ kind: 'edit-service', fwmark: 6, ipv6: true, scheduler: 'mh', flags: ['mh-port', 'mh-fallback'] });
    expect(req.cmd).toBe(2);
    const svc = attrMap(attrMap(req.payload.subarray(4), 'req').get(1)!, 'svc');
    expect([...svc.keys()]).toEqual([1, 5, 6, 7, 8, 9]);
    expect(svc.get(1)!.readUInt16LE(0)).toBe(10);
    expect(svc.get(6)!.toString()).toBe('mh\0');
    expect([svc.get(7)!.readUInt32LE(0), svc.get(7)!.readUInt32LE(4)]).toEqual([0x18, 0xffffffff]);
    expect(svc.get(9)!.readUInt32LE(0)).toBe(128);
    expect(() => encodeOp({ kind: 'add-service', fwmark: 1, ipv6: false, scheduler: 'sh', flags: ['mh-port'] })).toThrow(/"mh-port" is not a flag of scheduler sh/);
    expect(() => encodeOp({ kind: 'add-dest', fwmark: 1, ipv6: true, address: '10.1.0.11', weight: 1 })).toThrow(/not an IPv6 address/);
  });

  it('maps scheduler flags like ipvsadm: sh/mh name SCHED1 and SCHED2, other schedulers flag-N', () => {
    expect(schedFlagBits('sh', ['sh-fallback', 'sh-port'])).toBe(0x18);
    expect(schedFlagBits('rr', ['flag-3'])).toBe(0x20);
    expect(schedFlagBits('rr', ['sh-port'])).toEqual({ unknown: 'sh-port' });
    expect(schedFlagNames('sh', 0x2 | 0x8)).toEqual(['sh-fallback']); // HASHED (0x2) is not a scheduler flag
    expect(schedFlagNames('mh', 0x18)).toEqual(['mh-fallback', 'mh-port']);
    expect(schedFlagNames('wrr', 0x28)).toEqual(['flag-1', 'flag-3']);
  });

  it('decodes services as ipvsadm -Sn shows them, persistence and all', () => {
    expect(decodeService(fwmarkServiceReply(1, 2, 'sh', 0x2 | 0x8)).service).toEqual({ key: '-f 1', protocol: 'fwmark', fwmark: 1, ipv6: false, scheduler: 'sh', flags: ['sh-fallback'], extra: [], realServers: [] });
    expect(decodeService(fwmarkServiceReply(0xffffffff, 10, 'mh', 0x2)).service).toMatchObject({ key: '-f 4294967295 -6', ipv6: true, flags: [] });
    const tcp = genl(1, tlv(1, Buffer.concat([
      tlv(1, le16(2)), tlv(2, le16(6)), tlv(3, v4('192.0.2.10')), tlv(4, be16(80)), tlv(6, Buffer.from('wrr\0')),
      tlv(7, [...le32(0x1 | 0x2), ...le32(0xffffffff)]), tlv(8, le32(300)), tlv(9, le32(0x00ffffff)),
    ])));
    const d = decodeService(tcp);
    expect(d.service).toMatchObject({ key: '-t 192.0.2.10:80', protocol: 'tcp', fwmark: null, extra: ['-p', '300', '-M', '255.255.255.0'] });
    expect(d.identity.map((b) => b.readUInt16LE(2))).toEqual([1, 2, 3, 4]);
  });

  it('decodes destinations, ignoring attributes it does not know', () => {
    expect(decodeDest(destReply(v4('10.1.0.11'), 2, 100), false, '-f 1')).toEqual({ address: '10.1.0.11', port: 0, realServer: { target: '10.1.0.11:0', forwarding: 'g', weight: 100, extra: [] } });
    const six = decodeDest(destReply(v6('20010db8000100000000000000000011'), 10, 0, 0, 443), true, '-f 6 -6');
    expect(six).toEqual({ address: '2001:db8:1::11', port: 443, realServer: { target: '[2001:db8:1::11]:443', forwarding: 'm', weight: 0, extra: [] } });
  });

  it('rejects malformed replies with an error naming the attribute', () => {
    const noWeight = genl(5, tlv(2, Buffer.concat([tlv(1, v4('10.1.0.11')), tlv(2, be16(0)), tlv(3, le32(3))])));
    expect(() => decodeDest(noWeight, false, '-f 1')).toThrow(NetlinkDecodeError);
    expect(() => decodeDest(noWeight, false, '-f 1')).toThrow('IPVS real server of -f 1 10.1.0.11: IPVS_DEST_ATTR_WEIGHT: missing');
    const shortMark = genl(1, tlv(1, Buffer.concat([tlv(1, le16(2)), tlv(5, le16(1))])));
    expect(() => decodeService(shortMark)).toThrow('IPVS service: IPVS_SVC_ATTR_FWMARK: expected 4 bytes, got 2');
    const truncated = fwmarkServiceReply(1, 2, 'sh', 8).subarray(0, 30);
    expect(() => decodeService(truncated)).toThrow(/^IPVS service: attribute type 1 at byte 0 has length \d+ \(message has 26 left\)$/);
    const badAf = genl(1, tlv(1, Buffer.concat([tlv(1, le16(7)), tlv(5, le32(1))])));
    expect(() => decodeService(badAf)).toThrow(/address family 7 is neither AF_INET nor AF_INET6/);
    const unterminated = genl(1, tlv(1, Buffer.concat([tlv(1, le16(2)), tlv(5, le32(1)), tlv(6, Buffer.from('sh'))])));
    expect(() => decodeService(unterminated)).toThrow(/SCHED_NAME: string without its terminating NUL/);
  });
});

describe('IPVS changes as ipvsadm lines', () => {
  it('formats every kind of change as the ipvsadm line it equals', () => {
    const ops: IpvsOp[] = [
      { kind: 'add-service', fwmark: 1, ipv6: false, scheduler: 'sh', flags: ['sh-fallback'] },
      { kind: 'edit-service', fwmark: 6, ipv6: true, scheduler: 'mh', flags: [] },
      { kind: 'add-dest', fwmark: 1, ipv6: false, address: '10.1.0.11', weight: 100 },
      { kind: 'edit-dest', fwmark: 6, ipv6: true, address: '2001:db8::11', weight: 0 },
      { kind: 'del-dest', fwmark: 1, ipv6: false, address: '10.1.0.12' },
    ];
    expect(ops.map(formatIpvsOp)).toEqual([
      '-A -f 1 -s sh -b sh-fallback',
      '-E -f 6 -6 -s mh',
      '-a -f 1 -r 10.1.0.11:0 -g -w 100',
      '-e -f 6 -6 -r [2001:db8::11]:0 -g -w 0',
      '-d -f 1 -r 10.1.0.12:0',
    ]);
  });

  it('planIpvs returns typed changes that format as its batch', () => {
    const p = planIpvs({ services: [], order: new Map() }, seed(100, 100));
    expect(p.ops.map((o) => o.kind)).toEqual(['add-service', 'add-dest', 'add-dest']);
    expect(p.ops.map(formatIpvsOp)).toEqual(p.batch);
  });
});

const seed = (w1: number, w2: number): IpvsWant => ({
  downAction: 'quiesce',
  services: [{ fwmark: 1, scheduler: 'sh', flags: ['sh-fallback'], realServers: [{ name: 'fw1', address: '10.1.0.11', weight: w1 }, { name: 'fw2', address: '10.1.0.12', weight: w2 }] }],
});

/** An IpvsKernel in memory: applies typed changes, lists one command per change. */
class FakeIpvsKernel implements IpvsKernel {
  state: IpvsKernelState = { services: [], order: new Map() };
  applied: IpvsOp[] = [];
  ignore = false;
  async read(): Promise<IpvsKernelState> {
    return structuredClone(this.state);
  }
  async apply(ops: readonly IpvsOp[]): Promise<IpvsApplied> {
    for (const op of ops) {
      this.applied.push(op);
      if (this.ignore) continue;
      const key = `-f ${op.fwmark}`;
      if (op.kind === 'add-service') {
        this.state.services.push({ key, protocol: 'fwmark', fwmark: op.fwmark, ipv6: false, scheduler: op.scheduler, flags: [...op.flags], extra: [], realServers: [] });
        this.state.order.set(key, []);
        continue;
      }
      const svc = this.state.services.find((s) => s.key === key)!;
      if (op.kind === 'add-dest') {
        svc.realServers.push({ target: `${op.address}:0`, forwarding: 'g', weight: op.weight, extra: [] });
        this.state.order.get(key)!.push(op.address);
      } else if (op.kind === 'edit-dest') {
        const i = svc.realServers.findIndex((r) => r.target === `${op.address}:0`);
        svc.realServers[i] = { ...svc.realServers[i]!, weight: op.weight };
      }
    }
    return { commands: ops.map((o) => `ipvsadm ${formatIpvsOp(o)}`), note: '' };
  }
}

describe('IpvsDriver with an IpvsKernel', () => {
  it('applies typed changes and lists them as ipvsadm commands, without running a process', async () => {
    const k = new FakeIpvsKernel();
    const r = new FakeRunner(() => {
      throw new Error('no process expected');
    });
    const d = new IpvsDriver(r, { kernel: k });
    const first = await d.reconcile(seed(100, 100));
    expect(first.commands).toEqual(['ipvsadm -A -f 1 -s sh -b sh-fallback', 'ipvsadm -a -f 1 -r 10.1.0.11:0 -g -w 100', 'ipvsadm -a -f 1 -r 10.1.0.12:0 -g -w 100']);
    const quiesce = await d.reconcile(seed(0, 100));
    expect(quiesce.commands).toEqual(['ipvsadm -e -f 1 -r 10.1.0.11:0 -g -w 0']);
    expect(await d.reconcile(seed(0, 100))).toMatchObject({ differences: [], commands: [] });
    expect(r.calls).toEqual([]);
  });

  it('verifies by reading back: a change the kernel did not keep is a KernelVerifyError', async () => {
    const k = new FakeIpvsKernel();
    k.ignore = true;
    const err = await new IpvsDriver(new FakeRunner(() => ''), { kernel: k }).reconcile(seed(100, 100)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelVerifyError);
    expect((err as Error).message).toMatch(/^ipvs: still differs after applying 3 command\(s\): fwmark 1: service missing/);
  });
});

describe('Actuator with a kernel option', () => {
  it('reconciles IPVS through the given IpvsKernel: no ipvsadm, no /proc read, one command line per change', async () => {
    const k = new FakeKernel(['eth0', 'eth1', 'lo']);
    const r = new FakeRunner(k.handle);
    const ipvs = new FakeIpvsKernel();
    const act = new Actuator(exampleConfig(), 'lb1', r, { timers: new ManualTimers(), kernel: { ipvs } });
    const res = await act.reconcile(null, { holdsVips: false });
    act.close();
    expect(res.errors).toEqual([]);
    expect(res.results.find((x) => x.driver === 'ipvs')!.commands).toEqual(['ipvsadm -A -f 1 -s sh -b sh-fallback', 'ipvsadm -a -f 1 -r 10.1.0.11:0 -g -w 100', 'ipvsadm -a -f 1 -r 10.1.0.12:0 -g -w 100']);
    expect(r.calls.filter((c) => c.file === 'ipvsadm' || (c.file === 'cat' && c.args[0] === '/proc/net/ip_vs'))).toEqual([]);
    expect(ipvs.applied).toHaveLength(3);
  });
});

/** A generic netlink socket answering like the kernel, from messages built by hand. */
class FakeGenl implements GenlTransport {
  readonly sent: { type: number; flags: number; cmd: number }[] = [];
  constructor(private readonly answer: (type: number, cmd: number, payload: Buffer) => GenlMessage[]) {}
  async request(type: number, flags: number, payload: Buffer): Promise<GenlMessage[]> {
    this.sent.push({ type, flags, cmd: payload[0]! });
    return this.answer(type, payload[0]!, payload);
  }
  close(): void {}
}
const FAMILY = 37;
const msg = (data: Buffer, type = FAMILY): GenlMessage => ({ type, flags: 2, data });
const errMsg = (errno: number): GenlMessage => ({ type: 2, flags: 0, data: Buffer.from([...le32(-errno >>> 0), ...Array(16).fill(0)]) });
const familyReply = () => [msg(genl(1, tlv(2, Buffer.from('IPVS\0')), tlv(1, le16(FAMILY)), tlv(3, le32(1))), 16)];

describe('IpvsGenlKernel', () => {
  it('reads every service and its destinations; the dump order (newest first) reversed is the insertion order', async () => {
    const t = new FakeGenl((type, cmd, payload) => {
      if (type === 16) return familyReply();
      if (cmd === 4) return [msg(fwmarkServiceReply(1, 2, 'sh', 0xa)), msg(fwmarkServiceReply(6, 10, 'mh', 0x2))];
      const mark = attrMap(attrMap(payload.subarray(4), 'req').get(1)!, 'svc').get(5)!.readUInt32LE(0);
      // Added .12, .11, .13: the kernel list (and the dump) is .13, .11, .12.
      return mark === 1 ? [msg(destReply(v4('10.1.0.13'), 2, 100)), msg(destReply(v4('10.1.0.11'), 2, 0)), msg(destReply(v4('10.1.0.12'), 2, 100))] : [];
    });
    const k = new IpvsGenlKernel({ open: async () => t });
    const st = await k.read();
    expect(st.order.get('-f 1')).toEqual(['10.1.0.12', '10.1.0.11', '10.1.0.13']);
    expect(st.order.get('-f 6 -6')).toEqual([]);
    // Sorted by address, as ipvsadm -Sn prints them.
    expect(st.services[0]!.realServers.map((r) => `${r.target} ${r.weight}`)).toEqual(['10.1.0.11:0 0', '10.1.0.12:0 100', '10.1.0.13:0 100']);
    expect(t.sent.map((s) => [s.type, s.cmd, s.flags])).toEqual([[16, 3, 5], [FAMILY, 4, 0x305], [FAMILY, 8, 0x305], [FAMILY, 8, 0x305]]);
    await k.read();
    expect(t.sent.filter((s) => s.type === 16)).toHaveLength(1); // family id cached
  });

  it('names the object and the errno when the kernel refuses a change; stops there', async () => {
    const t = new FakeGenl((type, cmd) => (type === 16 ? familyReply() : cmd === 5 ? [errMsg(17)] : [errMsg(0)]));
    const k = new IpvsGenlKernel({ open: async () => t });
    const ops: IpvsOp[] = [
      { kind: 'edit-dest', fwmark: 1, ipv6: false, address: '10.1.0.12', weight: 5 },
      { kind: 'add-dest', fwmark: 1, ipv6: false, address: '10.1.0.11', weight: 100 },
      { kind: 'del-dest', fwmark: 1, ipv6: false, address: '10.1.0.13' },
    ];
    const err = await k.apply(ops).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelRejectedError);
    expect((err as Error).message).toBe('fwmark 1: add real server 10.1.0.11: EEXIST (Destination already exists; 1 of 3 changes applied before)');
    expect(t.sent.filter((s) => s.type === FAMILY).map((s) => s.cmd)).toEqual([6, 5]);
    expect(await k.apply([ops[0]!])).toEqual({ commands: ['ipvsadm -e -f 1 -r 10.1.0.12:0 -g -w 5'], note: '' });
  });

  it('checks every change before sending any', async () => {
    const t = new FakeGenl(() => [errMsg(0)]);
    const k = new IpvsGenlKernel({ open: async () => t });
    const err = await k.apply([{ kind: 'del-dest', fwmark: 1, ipv6: false, address: '10.1.0.13' }, { kind: 'add-service', fwmark: 2, ipv6: false, scheduler: 'sh', flags: ['sh-nope'] }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriverInputError);
    expect((err as Error).message).toBe('fwmark 2: add service (sh): "sh-nope" is not a flag of scheduler sh');
    expect(t.sent).toEqual([]);
  });

  it('reports a kernel without the IPVS family, and a socket that cannot open, as KernelUnavailableError', async () => {
    const none = new IpvsGenlKernel({ open: async () => new FakeGenl(() => [errMsg(2)]) });
    const err = await none.read().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelUnavailableError);
    expect((err as Error).message).toBe('IPVS not available in this kernel: modprobe ip_vs (generic netlink family "IPVS" not found)');
    const noAddon = new IpvsGenlKernel({ open: () => Promise.reject(new Error('No native build was found')) });
    await expect(noAddon.read()).rejects.toThrow(/generic netlink unavailable: No native build was found/);
  });

  it('turns a malformed reply into KernelParseError naming the request and applies nothing', async () => {
    const t = new FakeGenl((type, cmd) => (type === 16 ? familyReply() : cmd === 4 ? [msg(genl(1, tlv(1, tlv(1, le16(2)))))] : []));
    const err = await new IpvsGenlKernel({ open: async () => t }).read().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelParseError);
    expect((err as Error).message).toMatch(/^ipvs: cannot parse output of "IPVS_CMD_GET_SERVICE": IPVS service: IPVS_SVC_ATTR_PROTOCOL \(neither a fwmark nor a protocol\): missing/);
  });
});
