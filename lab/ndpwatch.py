"""Who answers neighbour solicitations for the IPv6 gateway VIP, as the upstream router sees it:
lab/arpwatch.py's twin for IPv6 (same output format, so lab/analyze.py --arp reads it). Runs in the
`ir` namespace (one process, no exec per sample) and asks on ir's LB-facing interface every --every s.

An LB holding the VIP answers a solicitation with a neighbour advertisement sent from the VIP, which
its IPv6 fence (failover/fence.ts: table ip6 sandwich_fence6, `icmpv6 type nd-neighbor-advert ip6
saddr <VIP> drop` unless the timed element lives) lets out only while its leadership is provable.
Two LBs answering the same solicitation is a dual VIP as the network sees it.

How: each solicitation goes to the VIP's solicited-node multicast group from one of 32 made-up
link-local addresses (fe80::5b:<slot>) and made-up, locally administered MACs (02:5b:00:00:00:<slot>,
carried in the source link-layer address option, so the LB answers straight to it; the bridge learns
the MAC on ir's port). The answers are unicast to that MAC: ir's kernel drops them (PACKET_OTHERHOST),
so its neighbour table is not touched, and the answer's destination MAC says which solicitation it
answers. A solicitation is closed --settle seconds after it was sent. Each LB keeps a neighbour entry
per made-up address for a while (harmless; it probes them and gives up).

Writes JSON lines to --out: {"t": <send time>, "answered": [names]} at start and whenever the set of
LBs that answered changes; {"k": "garp", "t", "node", "mac", "op": "na"} for every unsolicited
neighbour advertisement for the VIP (to ff02::1: what the kernel sends when the VIP is added with
ndisc_notify=1 and accept_dad=0, failover/vip.ts); {"end": true, "t"} at the end. --state holds the
last answered set ("lb1", "lb1 lb2" or "-"), replaced atomically. Stops when --stop-file exists.
Run inside `ir` with /usr/bin/python3.
"""
import socket
import struct

import answerwatch

a = answerwatch.parser(__doc__, "2001:db8:0:1::254").parse_args()
ETH_P_IPV6 = 0x86DD
vip = socket.inet_pton(socket.AF_INET6, a.vip)
all_nodes = socket.inet_pton(socket.AF_INET6, "ff02::1")
snm = socket.inet_pton(socket.AF_INET6, "ff02::1:ff00:0")[:13] + vip[13:]   # solicited-node multicast
snm_mac = b"\x33\x33" + snm[12:]
fake_mac = answerwatch.fake_macs(0x5B)
fake_ip = [socket.inet_pton(socket.AF_INET6, "fe80::5b:%x" % i) for i in range(answerwatch.SLOTS)]


def checksum(src: bytes, dst: bytes, icmp: bytes) -> int:
    data = src + dst + struct.pack("!I3xB", len(icmp), 58) + icmp
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def solicitation(slot: int) -> bytes:
    src = fake_ip[slot]
    icmp = struct.pack("!BBH4x", 135, 0, 0) + vip + struct.pack("!BB", 1, 1) + fake_mac[slot]
    icmp = icmp[:2] + struct.pack("!H", checksum(src, snm, icmp)) + icmp[4:]
    ip6 = struct.pack("!IHBB", 6 << 28, len(icmp), 58, 255) + src + snm
    return snm_mac + fake_mac[slot] + struct.pack("!H", ETH_P_IPV6) + ip6 + icmp


def classify(frame: bytes):
    # Ethernet 14 + IPv6 40 + NA 24: next header ICMPv6, type 136, target = VIP.
    if len(frame) < 78 or frame[20] != 58 or frame[54] != 136 or frame[62:78] != vip:
        return None
    dst_mac, src_mac, dst_ip = frame[0:6], frame[6:12], frame[38:54]
    if dst_mac in fake_mac:
        return ("answer", fake_mac.index(dst_mac), src_mac)
    if dst_ip == all_nodes:   # unsolicited: the kernel's announcement of the VIP
        return ("announce", src_mac, "na")
    return None


answerwatch.run(a, ETH_P_IPV6, solicitation, classify)
