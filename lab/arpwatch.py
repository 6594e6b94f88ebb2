"""Who answers ARP for the gateway VIP, as the upstream router sees it. Runs in the `ir` namespace
(one process, no exec per sample) and asks on ir's LB-facing interface every --every seconds.

Why: an LB can keep the VIP *address* while its kernel is forbidden to announce it (the ARP fence,
failover/fence.ts: nftables table `sandwich_fence`, whose timed element expires when the controller
can no longer prove its leadership, e.g. after kill -9 or SIGSTOP). Counting addresses reports such
a silent node as a second holder; what matters to the network is who *answers*. Two LBs answering
the same request is a real dual VIP, whatever the addresses say.

How: each request is an ARP probe (RFC 5227: sender IP 0.0.0.0, so no LB learns a neighbour entry
from it) sent from one of 32 made-up, locally administered MACs (cycled; the bridge learns them on
ir's port). An LB holding the VIP answers with a unicast reply to that MAC, through its nftables
`arp` output hook (so a fenced LB stays silent). ir's own ARP code ignores the replies (they are not
addressed to its MAC: PACKET_OTHERHOST), so the sampler does not touch ir's neighbour table; the
reply's target MAC tells which request it answers, so a late reply is not mixed up with a later one.
A request is closed --settle seconds after it was sent.

Writes JSON lines to --out: {"t": <send time, unix s>, "answered": [names]} at start and whenever
the set of LBs that answered a request changes (a MAC not in --macs is reported as itself);
{"k": "garp", "t", "node", "mac", "op"} for every gratuitous ARP for the VIP seen on the wire
(sender IP = target IP = VIP, e.g. `arping -U`: sent through a packet socket, it bypasses the
fence, so the controller must not send one without proven leadership); {"end": true, "t"} at the
end. --state holds the last answered set ("lb1", "lb1 lb2" or "-"), replaced atomically.
Stops when --stop-file exists. Run inside `ir` with /usr/bin/python3.
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
p.add_argument("--vip", default="192.0.2.254")
p.add_argument("--macs", required=True, help="name=mac,... (the LBs' interfaces on the VIP's subnet)")
p.add_argument("--out", required=True)
p.add_argument("--state", required=True)
p.add_argument("--every", type=float, default=0.2)
p.add_argument("--settle", type=float, default=2.0)
p.add_argument("--max", type=float, default=7200)
p.add_argument("--stop-file")
a = p.parse_args()

ETH_P_ARP = 0x0806
SLOTS = 32
names = {}
for item in a.macs.split(","):
    n, m = item.split("=", 1)
    names[bytes.fromhex(m.replace(":", ""))] = n
vip = socket.inet_aton(a.vip)
fake = [bytes([0x02, 0x5A, 0x00, 0x00, 0x00, i]) for i in range(SLOTS)]


def mac_str(b: bytes) -> str:
    return ":".join("%02x" % x for x in b)


def name_of(mac: bytes) -> str:
    return names.get(mac, mac_str(mac))


s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
s.bind((a.iface, ETH_P_ARP))
try:   # PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC: replies to the made-up MACs (a veth delivers them anyway)
    ifindex = socket.if_nametoindex(a.iface)
    s.setsockopt(263, 1, struct.pack("iHH8s", ifindex, 1, 0, b""))
except OSError:
    pass
s.setblocking(False)


def probe(slot: int) -> bytes:
    src = fake[slot]
    eth = b"\xff" * 6 + src + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + src + b"\0\0\0\0" + b"\0" * 6 + vip
    return eth + arp


pending = {}   # slot -> [send time, set of names]
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
            if slot in pending:   # never reuse a slot still open (only when --settle > SLOTS x --every)
                close_old(now, everything=True)
            try:
                s.send(probe(slot))
                pending[slot] = [time.time(), now, set()]
            except OSError:
                pass
            seq += 1
            next_send = max(now, next_send + a.every)
        # Answers first, then close what is due: after a stall the answers wait in the socket.
        r, _, _ = select.select([s], [], [], max(0.0, min(next_send - time.monotonic(), 0.2)))
        if r:
            while True:
                try:
                    frame, addr = s.recvfrom(128)
                except BlockingIOError:
                    break
                if addr[2] == socket.PACKET_OUTGOING or len(frame) < 42:
                    continue
                op, = struct.unpack("!H", frame[20:22])
                sha, spa, tha, tpa = frame[22:28], frame[28:32], frame[32:38], frame[38:42]
                if spa != vip:
                    continue
                if tpa == vip:   # gratuitous: announces the VIP (arping -U sends requests)
                    out.write(json.dumps({"k": "garp", "t": round(time.time(), 3), "node": name_of(sha), "mac": mac_str(sha), "op": op}) + "\n")
                    continue
                if op == 2 and tha in fake:
                    slot = fake.index(tha)
                    if slot in pending:
                        pending[slot][2].add(name_of(sha))
        close_old(time.monotonic())
    close_old(time.monotonic() + a.settle, everything=True)
    out.write(json.dumps({"t": round(time.time(), 3), "end": True}) + "\n")
