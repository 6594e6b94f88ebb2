"""Who answers ARP for a VIP, as the upstream router would see it: every --every seconds, a
broadcast "who-has <vip>" on each watched interface (a packet socket: no exec per probe, no
neighbour-table side effects on the observer), and the set of MAC addresses that answered it.
A node "holds the VIP by ARP" while its MAC answers; two MACs answering the same request is the
dual-VIP state that matters to a router (its neighbour entry follows whichever reply came last).

Each request goes out from the next of --sources sender addresses (never configured anywhere),
so a reply names the request it answers (its target address) even when it arrives late; a
request's set is closed --window requests later.

  arpwatch.py --watch eth0,192.0.2.254,192.0.2.90-97,OUT [--watch ...] --mac lb1=MAC --mac lb2=MAC
              [--every 0.2] [--window 4] [--max 3600] [--stop-file F]

OUT gets JSON lines in lab/watch.py's format, so lab/analyze.py --vip computes the overlap:
{"t": <unix s of the request>, "node": name, "vip": bool, "addr": <vip>} at start and at every
change, {"t", "node", "vip", "end": true} at the end; MACs not given with --mac are named by MAC.
Run with /usr/bin/python3 inside the observer's namespace (root: packet sockets).
"""
import argparse
import ipaddress
import json
import os
import select
import socket
import struct
import time

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--watch", action="append", required=True, help="IFACE,VIP,FIRST-LASTOCTET,OUT")
p.add_argument("--mac", action="append", default=[], help="NAME=MAC")
p.add_argument("--every", type=float, default=0.2)
p.add_argument("--window", type=int, default=4)
p.add_argument("--max", type=float, default=3600)
p.add_argument("--stop-file")
a = p.parse_args()
ETH_P_ARP = 0x0806
names = {}
for m in a.mac:
    n, mac = m.split("=", 1)
    names[mac.lower()] = n


def mac_bytes(s):
    return bytes(int(x, 16) for x in s.split(":"))


def mac_str(b):
    return ":".join("%02x" % x for x in b)


class Watch:
    def __init__(self, spec):
        iface, vip, rng, out = spec.split(",", 3)
        self.iface, self.vip, self.out_path = iface, vip, out
        base = vip.rsplit(".", 1)[0]
        lo, hi = (int(x) for x in rng.rsplit(".", 1)[-1].split("-"))
        self.sources = [f"{base}.{i}" for i in range(lo, hi + 1)]
        if len(self.sources) <= a.window:
            raise SystemExit(f"arpwatch.py: need more than --window ({a.window}) source addresses, got {len(self.sources)}")
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        self.sock.bind((iface, ETH_P_ARP))
        self.sock.setblocking(False)
        with open(f"/sys/class/net/{iface}/address") as f:
            self.mac = mac_bytes(f.read().strip())
        self.vip_b = ipaddress.IPv4Address(vip).packed
        self.pending = []          # [(seq, t, source, set of MACs)]
        self.by_source = {}        # source -> pending entry (the newest request from it)
        self.state = {}            # node -> bool (as last written)
        self.out = open(out, "a", buffering=1)
        for n in sorted(set(names.values())):
            self.write(time.time(), n, False)

    def write(self, t, node, held, end=False):
        r = {"t": round(t, 3), "node": node, "vip": held, "addr": self.vip}
        if end:
            r["end"] = True
        self.out.write(json.dumps(r) + "\n")
        self.state[node] = held

    def send(self, seq):
        src = self.sources[seq % len(self.sources)]
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, self.mac, ipaddress.IPv4Address(src).packed, b"\0" * 6, self.vip_b)
        frame = b"\xff" * 6 + self.mac + struct.pack("!H", ETH_P_ARP) + arp
        entry = (seq, time.time(), src, set())
        self.pending.append(entry)
        self.by_source[src] = entry
        try:
            self.sock.send(frame)
        except OSError:
            pass   # interface down: nobody answers, which is what gets recorded

    def receive(self):
        while True:
            try:
                frame = self.sock.recv(128)
            except BlockingIOError:
                return
            except OSError:
                return
            if len(frame) < 42:
                continue
            op = struct.unpack("!H", frame[20:22])[0]
            sha, spa, tpa = frame[22:28], frame[28:32], frame[38:42]
            if op != 2 or spa != self.vip_b:
                continue
            entry = self.by_source.get(str(ipaddress.IPv4Address(tpa)))
            if entry is not None:
                entry[3].add(mac_str(sha))

    def close_old(self, seq):
        while self.pending and self.pending[0][0] <= seq - a.window:
            _, t, _, macs = self.pending.pop(0)
            held = {names.get(m, m) for m in macs}
            for n in sorted(set(self.state) | held):
                if (n in held) != self.state.get(n, False):
                    self.write(t, n, n in held)

    def finish(self):
        self.close_old(10 ** 12)
        t = time.time()
        for n in sorted(self.state):
            self.write(t, n, self.state[n], end=True)
        self.out.close()


watches = [Watch(s) for s in a.watch]
start = time.monotonic()
seq = 0
while time.monotonic() - start < a.max and not (a.stop_file and os.path.exists(a.stop_file)):
    for w in watches:
        w.close_old(seq)
        w.send(seq)
    deadline = start + (seq + 1) * a.every
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([w.sock for w in watches], [], [], left)
        for w in watches:
            if w.sock in r:
                w.receive()
    seq += 1
    if time.monotonic() - deadline > 5 * a.every:   # a long stall (the VM): do not send a burst
        start = time.monotonic() - seq * a.every
# Late replies to the last requests, then close every set.
end = time.monotonic() + a.window * a.every
while time.monotonic() < end:
    r, _, _ = select.select([w.sock for w in watches], [], [], max(0.0, end - time.monotonic()))
    for w in watches:
        if w.sock in r:
            w.receive()
for w in watches:
    w.finish()
