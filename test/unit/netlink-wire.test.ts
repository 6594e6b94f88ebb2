// The netlink wire pieces rtnetlink and generic netlink share: attributes, the ack's errno, errno names, the
// request queue, IP address bytes. Messages are built here byte by byte where the encoder is under test.
import { attr, attrMap, cstr, getU32, need, nestAttr, parseAttrs, readAsciiName, readString, stringAttr, u16Attr, u32, u32Attr, u8Attr } from '../../failover/netlink/attrs';
import { NetlinkDecodeError } from '../../failover/netlink/decode-error';
import { errnoText } from '../../failover/netlink/errno';
import { addrBytes, AF_INET, AF_INET6, readAddr } from '../../failover/netlink/ip-address';
import { parseErrno } from '../../failover/netlink/message';
import { SerialQueue } from '../../failover/netlink/serial-queue';

describe('attributes', () => {
  it('round-trips attributes with padding and strips the nested flag', () => {
    const buf = Buffer.concat([attr(1, Buffer.from([1, 2, 3])), attr(0x8000 | 7, u32(42)), attr(3, cstr('eth0'))]);
    expect(buf.length).toBe(8 + 8 + 12);
    const a = parseAttrs(buf);
    expect(a.map((x) => x.type)).toEqual([1, 7, 3]);
    expect([...a[0]!.value]).toEqual([1, 2, 3]);
    expect(a[1]!.value.readUInt32LE(0)).toBe(42);
  });
  it('rejects a length running past the message, with the attribute type and offset', () => {
    const bad = attr(5, u32(1));
    bad.writeUInt16LE(40, 0);
    expect(() => parseAttrs(bad)).toThrow(new NetlinkDecodeError('attribute type 5 at byte 0 has length 40 (message has 8 left)'));
    expect(() => parseAttrs(Buffer.from([8, 0]))).toThrow(/attribute header truncated at byte 0/);
  });
  it('addresses: text ↔ bytes, IPv6 compressed like iproute2', () => {
    for (const ip of ['10.1.0.5', '2001:db8::1', '::', '::1', 'fe80::1:0:0:2', '2001:db8:0:1:1:1:1:1', '2001:0:0:1::1']) {
      expect(readAddr({ type: 1, value: addrBytes(ip) }, ip.includes(':') ? AF_INET6 : AF_INET, 'x')).toBe(ip);
    }
    expect(readAddr({ type: 1, value: addrBytes('2001:DB8:0:0:0::0:1'.toLowerCase()) }, AF_INET6, 'x')).toBe('2001:db8::1');
    expect(() => readAddr({ type: 1, value: Buffer.alloc(5) }, AF_INET, 'RTA_DST')).toThrow('RTA_DST has 5 bytes, want 4 for family 2');
  });
});

describe('attribute helpers', () => {
  it('encodes typed attributes as struct nlattr with padding', () => {
    expect(u8Attr(7, 0xab).toString('hex')).toBe('05000700' + 'ab000000');
    expect(u16Attr(1, 0x0a02).toString('hex')).toBe('06000100' + '020a0000');
    expect(u32Attr(5, 0x01020304).toString('hex')).toBe('08000500' + '04030201');
    expect(stringAttr(6, 'sh').toString('hex')).toBe('07000600' + '73680000');
    expect(nestAttr(1, [u16Attr(1, 2)]).toString('hex')).toBe('0c000100' + '06000100' + '02000000');
    expect(() => attr(1, Buffer.alloc(0xffff))).toThrow(RangeError);
  });
  it('the map view keeps the first value of a repeated type and prefixes errors with what was read', () => {
    const m = attrMap(Buffer.concat([u32Attr(2, 1), u32Attr(2, 9), attr(0x8000 | 3, Buffer.from([1]))]), 'x');
    expect([...m.keys()]).toEqual([2, 3]);
    expect(getU32(m.get(2)!, 'x')).toBe(1);
    expect(() => need(m, 4, 'IPVS thing: ATTR_4')).toThrow(new NetlinkDecodeError('IPVS thing: ATTR_4: missing'));
    expect(() => getU32(m.get(3)!, 'x: ATTR_3')).toThrow(new NetlinkDecodeError('x: ATTR_3: expected 4 bytes, got 1'));
    expect(() => attrMap(Buffer.from([8, 0, 1, 0]), 'IPVS service')).toThrow(new NetlinkDecodeError('IPVS service: attribute type 1 at byte 0 has length 8 (message has 4 left)'));
    expect(() => attrMap(Buffer.concat([u32Attr(1, 1), Buffer.from([0, 0])]), 'y')).toThrow(new NetlinkDecodeError('y: attribute header truncated at byte 8'));
  });
  it('reads strings: interface names leniently (UTF-8, NUL optional), ASCII names strictly', () => {
    expect(readString(cstr('eth0'))).toBe('eth0');
    expect(readString(Buffer.from('wg-ü'))).toBe('wg-ü');
    expect(readAsciiName(cstr('mh'), 'SCHED')).toBe('mh');
    expect(() => readAsciiName(Buffer.from('mh'), 'SCHED')).toThrow('SCHED: string without its terminating NUL');
    expect(() => readAsciiName(Buffer.from('m\x01\0'), 'SCHED')).toThrow(/SCHED: string "m\\u0001" has unprintable characters/);
  });
});

describe('acks and errnos', () => {
  it('reads the errno of an NLMSG_ERROR payload; 0 is an ack', () => {
    const nlmsgerr = (e: number) => Buffer.concat([Buffer.from(Int32Array.of(e).buffer), Buffer.alloc(16)]);
    expect(parseErrno(nlmsgerr(-17), 'ack')).toBe(17);
    expect(parseErrno(nlmsgerr(0), 'ack') === 0).toBe(true); // -0: callers compare with ===
    expect(() => parseErrno(Buffer.alloc(2), 'IPVS_CMD_NEW_DEST error')).toThrow(new NetlinkDecodeError('IPVS_CMD_NEW_DEST error: error message of 2 bytes'));
  });
  it('names errnos as Node does, and an unknown one by number', () => {
    expect(errnoText(17)).toEqual({ code: 'EEXIST', text: 'file already exists' });
    expect(errnoText(2).code).toBe('ENOENT');
    expect(errnoText(12345)).toEqual({ code: 'Unknown system error -12345', text: 'Unknown system error -12345' });
    expect(errnoText(0)).toEqual({ code: 'errno 0', text: 'errno 0' });
  });
});

describe('SerialQueue', () => {
  it('runs one task at a time, in order, and goes on after a failure', async () => {
    const q = new SerialQueue();
    const log: string[] = [];
    const task = (name: string, fail = false) => async () => {
      log.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, 5));
      log.push(`end ${name}`);
      if (fail) throw new Error(name);
      return name;
    };
    const results = await Promise.allSettled([q.run(task('a')), q.run(task('b', true)), q.run(task('c'))]);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual(['a', 'b', 'c']);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  });
});

describe('IP address bytes', () => {
  it('IPv4 text to 4 bytes, an embedded IPv4 tail in IPv6, and a non-address refused', () => {
    expect([...addrBytes('10.1.0.5')]).toEqual([10, 1, 0, 5]);
    expect(addrBytes('::ffff:192.0.2.1').toString('hex')).toBe('00000000000000000000ffffc0000201');
    expect(() => addrBytes('10.1.0')).toThrow(new NetlinkDecodeError('"10.1.0" is not an IP address'));
    expect(readAddr({ type: 1, value: addrBytes('1:0:0:2:0:0:0:3') }, AF_INET6, 'x')).toBe('1:0:0:2::3');
  });
});
