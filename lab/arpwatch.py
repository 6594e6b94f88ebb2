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
import socket
import struct

import answerwatch

a = answerwatch.parser(__doc__, "192.0.2.254").parse_args()
ETH_P_ARP = 0x0806
vip = socket.inet_aton(a.vip)
fake = answerwatch.fake_macs(0x5A)


def probe(slot: int) -> bytes:
    src = fake[slot]
    eth = b"\xff" * 6 + src + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + src + b"\0\0\0\0" + b"\0" * 6 + vip
    return eth + arp


def classify(frame: bytes):
    if len(frame) < 42:
        return None
    op, = struct.unpack("!H", frame[20:22])
    sha, spa, tha, tpa = frame[22:28], frame[28:32], frame[32:38], frame[38:42]
    if spa != vip:
        return None
    if tpa == vip:   # gratuitous: announces the VIP (arping -U sends requests)
        return ("announce", sha, op)
    if op == 2 and tha in fake:
        return ("answer", fake.index(tha), sha)
    return None


answerwatch.run(a, ETH_P_ARP, probe, classify, recv_size=128)
