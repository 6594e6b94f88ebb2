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
import argparse
import json
import os
import select
import socket
import struct
import time

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--iface", default="eth1")
p.add_argument("--vip", default="2001:db8:0:1::254")
p.add_argument("--macs", required=True, help="name=mac,... (the LBs' interfaces on the VIP's subnet)")
p.add_argument("--out", required=True)
p.add_argument("--state", required=True)
p.add_argument("--every", type=float, default=0.2)
p.add_argument("--settle", type=float, default=2.0)
p.add_argument("--max", type=float, default=7200)
p.add_argument("--stop-file")
a = p.parse_args()

ETH_P_IPV6 = 0x86DD
SLOTS = 32
names = {}
for item in a.macs.split(","):
    n, m = item.split("=", 1)
    names[bytes.fromhex(m.replace(":", ""))] = n
vip = socket.inet_pton(socket.AF_INET6, a.vip)
all_nodes = socket.inet_pton(socket.AF_INET6, "ff02::1")
snm = socket.inet_pton(socket.AF_INET6, "ff02::1:ff00:0")[:13] + vip[13:]   # solicited-node multicast
snm_mac = b"\x33\x33" + snm[12:]
fake_mac = [bytes([0x02, 0x5B, 0x00, 0x00, 0x00, i]) for i in range(SLOTS)]
fake_ip = [socket.inet_pton(socket.AF_INET6, "fe80::5b:%x" % i) for i in range(SLOTS)]


def mac_str(b: bytes) -> str:
    return ":".join("%02x" % x for x in b)


def name_of(mac: bytes) -> str:
    return names.get(mac, mac_str(mac))


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


s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IPV6))
s.bind((a.iface, ETH_P_IPV6))
try:   # PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC: answers to the made-up MACs (a veth delivers them anyway)
    s.setsockopt(263, 1, struct.pack("iHH8s", socket.if_nametoindex(a.iface), 1, 0, b""))
except OSError:
    pass
s.setblocking(False)

pending = {}   # slot -> [send time, monotonic send time, set of names]
last = None
seq = 0
end = time.monotonic() + a.max
next_send = time.monotonic()


def write_state(answered):
    with open(a.state + ".tmp", "w") as f:
        f.write((" ".join(answered) or "-") + "\n")
    os.rename(a.state + ".tmp", a.state)


with open(a.out, "a", buffering=1) as out:
    def close_old(now_mono, everything=False):
        global last
        for slot, (t_wall, t_mono, got) in sorted(pending.items(), key=lambda kv: kv[1][1]):
            if not everything and now_mono - t_mono < a.settle:
                break
            del pending[slot]
            answered = sorted(got)
            if answered != last:
                out.write(json.dumps({"t": round(t_wall, 3), "answered": answered}) + "\n")
                write_state(answered)
                last = answered

    while time.monotonic() < end and not (a.stop_file and os.path.exists(a.stop_file)):
        now = time.monotonic()
        if now >= next_send:
            slot = seq % SLOTS
            if slot in pending:
                close_old(now, everything=True)
            try:
                s.send(solicitation(slot))
                pending[slot] = [time.time(), now, set()]
            except OSError:
                pass
            seq += 1
            next_send = max(now, next_send + a.every)
        # Read what arrived before closing old solicitations: after a stall of this process (a starved
        # VM) the answers wait in the socket and must not be counted as silence.
        r, _, _ = select.select([s], [], [], max(0.0, min(next_send - time.monotonic(), 0.2)))
        if not r:
            close_old(time.monotonic())
            continue
        while True:
            try:
                frame, addr = s.recvfrom(256)
            except BlockingIOError:
                break
            # Ethernet 14 + IPv6 40 + NA 24: next header ICMPv6, type 136, target = VIP.
            if addr[2] == socket.PACKET_OUTGOING or len(frame) < 78 or frame[20] != 58 or frame[54] != 136:
                continue
            if frame[62:78] != vip:
                continue
            dst_mac, src_mac, dst_ip = frame[0:6], frame[6:12], frame[38:54]
            if dst_mac in fake_mac:
                slot = fake_mac.index(dst_mac)
                if slot in pending:
                    pending[slot][2].add(name_of(src_mac))
            elif dst_ip == all_nodes:   # unsolicited: the kernel's announcement of the VIP
                out.write(json.dumps({"k": "garp", "t": round(time.time(), 3), "node": name_of(src_mac), "mac": mac_str(src_mac), "op": "na"}) + "\n")
        close_old(time.monotonic())
    close_old(time.monotonic() + a.settle, everything=True)
    out.write(json.dumps({"t": round(time.time(), 3), "end": True}) + "\n")
