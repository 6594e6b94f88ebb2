import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PacketAnnouncer } from '../../failover/announcer';
import { addonPath } from '../../failover/packet/socket';
import { gratuitousArp, icmpv6Checksum, ipv4Bytes, ipv6Bytes, unsolicitedNa } from '../../failover/garp';

const MAC = Buffer.from([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
const hex = (s: string) => s.replace(/[^0-9a-f]/g, '');

describe('address bytes', () => {
  it('IPv4', () => {
    expect(ipv4Bytes('192.0.2.254').toString('hex')).toBe('c00002fe');
    expect(() => ipv4Bytes('192.0.2.256')).toThrow('not an IPv4 address: "192.0.2.256"');
  });

  it('IPv6: full, compressed at either end or inside, with a dotted-quad tail', () => {
    expect(ipv6Bytes('2001:db8:0:1:0:0:0:254').toString('hex')).toBe('20010db8000000010000000000000254');
    expect(ipv6Bytes('2001:db8:0:1::254').toString('hex')).toBe('20010db8000000010000000000000254');
    expect(ipv6Bytes('::').toString('hex')).toBe('0'.repeat(32));
    expect(ipv6Bytes('::1').toString('hex')).toBe(`${'0'.repeat(31)}1`);
    expect(ipv6Bytes('fe80::').toString('hex')).toBe(`fe80${'0'.repeat(28)}`);
    expect(ipv6Bytes('::ffff:192.0.2.1').toString('hex')).toBe('00000000000000000000ffffc0000201');
    expect(ipv6Bytes('64:ff9b::192.0.2.1').toString('hex')).toBe('0064ff9b0000000000000000c0000201');
    expect(() => ipv6Bytes('2001:db8::1::2')).toThrow('not an IPv6 address');
  });
});

describe('gratuitous ARP frame', () => {
  it('is a broadcast ARP request with sender = target = the VIP and a zero target MAC (hand-checked layout)', () => {
    expect(gratuitousArp(MAC, '192.0.2.254').toString('hex')).toBe(hex(`
      ff ff ff ff ff ff  02 00 00 00 00 01  08 06
      00 01  08 00  06  04  00 01
      02 00 00 00 00 01  c0 00 02 fe
      00 00 00 00 00 00  c0 00 02 fe`));
  });

  it('refuses a MAC that is not 6 bytes and an address that is not IPv4', () => {
    expect(() => gratuitousArp(Buffer.alloc(8), '192.0.2.1')).toThrow('not an Ethernet address: 8 bytes');
    expect(() => gratuitousArp(MAC, '2001:db8::1')).toThrow('not an IPv4 address');
  });
});

describe('unsolicited neighbour advertisement frame', () => {
  // Checksum by hand: pseudo-header 2dba (src) + ff03 (dst) + 0020 (length) + 003a (next header),
  // message 8800 + 2000 (flags) + 2dba (target) + 0201 + 0200 + 0001 (option) = 0x206d3 → 0x06d5 → ~ = f92a.
  const expected = hex(`
    33 33 00 00 00 01  02 00 00 00 00 01  86 dd
    60 00 00 00  00 20  3a  ff
    20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01
    ff 02 00 00 00 00 00 00 00 00 00 00 00 00 00 01
    88 00 f9 2a  20 00 00 00
    20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01
    02 01 02 00 00 00 00 01`);

  it('from the VIP to ff02::1 (33:33:00:00:00:01), hop limit 255, override flag, target link-layer option (hand-checked layout)', () => {
    expect(unsolicitedNa(MAC, '2001:db8::1', false).toString('hex')).toBe(expected);
  });

  it('router flag set when asked; the checksum follows', () => {
    const f = unsolicitedNa(MAC, '2001:db8::1', true);
    expect(f[58]).toBe(0xa0);
    // 0x206d3 + 0x8000 = 0x286d3 → 0x86d5 → ~ = 792a
    expect(f.readUInt16BE(56)).toBe(0x792a);
  });

  it('checksum: the message with its checksum sums to 0xffff over the pseudo-header', () => {
    const f = unsolicitedNa(Buffer.from('0a1b2c3d4e5f', 'hex'), 'fe80::1ff:fe23:4567:890a', false);
    const src = f.subarray(22, 38);
    const dst = f.subarray(38, 54);
    const msg = Buffer.from(f.subarray(54));
    expect(icmpv6Checksum(src, dst, msg)).toBe(0);
  });
});

describe('PacketAnnouncer', () => {
  const link = { index: 7, mac: MAC, arptype: 1 };
  it('prepares the frame for the address family from the interface read now, and sends it on that interface', () => {
    const sent: [number, string][] = [];
    const a = new PacketAnnouncer({ link: () => link, send: (i, f) => void sent.push([i, f.toString('hex')]), close: () => undefined }, (dev) => dev === 'eth1');
    const v4 = a.prepare('eth0', '192.0.2.254');
    expect(v4).toMatchObject({ dev: 'eth0', ip: '192.0.2.254', ifindex: 7 });
    expect(v4.bytes.equals(gratuitousArp(MAC, '192.0.2.254'))).toBe(true);
    expect(a.prepare('eth1', '2001:db8::1').bytes.equals(unsolicitedNa(MAC, '2001:db8::1', true))).toBe(true);
    a.send(v4);
    expect(sent).toEqual([[7, v4.bytes.toString('hex')]]);
  });

  it('names the interface and address in its errors; refuses a non-Ethernet link', () => {
    const nodev = Object.assign(new Error('eth9: No such device'), { code: 'ENODEV' });
    const a = new PacketAnnouncer({ link: () => { throw nodev; }, send: () => undefined, close: () => undefined });
    expect(() => a.prepare('eth9', '192.0.2.1')).toThrow('interface eth9: eth9: No such device');
    const lo = new PacketAnnouncer({ link: () => ({ ...link, arptype: 772 }), send: () => { throw new Error('sendto: Network is down'); }, close: () => undefined });
    expect(() => lo.prepare('lo', '192.0.2.1')).toThrow('interface lo is not Ethernet (link type 772): cannot announce 192.0.2.1');
    const down = new PacketAnnouncer({ link: () => link, send: () => { throw new Error('sendto: Network is down'); }, close: () => undefined });
    expect(() => down.send(down.prepare('eth0', '192.0.2.1'))).toThrow('sending the announcement of 192.0.2.1 on eth0: sendto: Network is down');
  });
});

describe('addonPath', () => {
  it('finds the built addon from the sources, from dist/ and from the bundle, and says when it is not built', () => {
    const root = mkdtempSync(join(tmpdir(), 'sandwich-addon-'));
    try {
      const src = join(root, 'failover/packet');
      const dist = join(root, 'dist/failover/packet');
      mkdirSync(dist, { recursive: true });
      mkdirSync(join(src, 'build/Release'), { recursive: true });
      expect(addonPath(src)).toBeNull();
      expect(addonPath(dist)).toBeNull();
      writeFileSync(join(src, 'build/Release/packet.node'), '');
      expect(addonPath(src)).toBe(join(src, 'build/Release/packet.node'));
      expect(addonPath(dist)).toBe(join(src, 'build/Release/packet.node'));
      // The bundle (dist/sandwich) finds it too.
      expect(addonPath(join(root, 'dist/sandwich'))).toBe(join(src, 'build/Release/packet.node'));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
