"""The request/answer sampler shared by lab/arpwatch.py (IPv4, ARP) and lab/ndpwatch.py (IPv6, ND).

Each sends a request for the VIP every --every seconds from one of SLOTS made-up MACs (the answer's
destination MAC says which request it answers), collects who answered each request, and closes a
request --settle seconds after it was sent. Output (JSON lines to --out): {"t": <send time>,
"answered": [names]} at start and whenever the set of answering LBs changes; {"k": "garp", "t",
"node", "mac", "op"} for each unsolicited announcement of the VIP; {"end": true, "t"} at the end.
--state holds the last answered set ("lb1", "lb1 lb2" or "-"), replaced atomically.
"""
import argparse
import json
import os
import select
import socket
import struct
import time

SLOTS = 32


def parser(doc: str, vip: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iface", default="eth1")
    p.add_argument("--vip", default=vip)
    p.add_argument("--macs", required=True, help="name=mac,... (the LBs' interfaces on the VIP's subnet)")
    p.add_argument("--out", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--every", type=float, default=0.2)
    p.add_argument("--settle", type=float, default=2.0)
    p.add_argument("--max", type=float, default=7200)
    p.add_argument("--stop-file")
    return p


def mac_str(b: bytes) -> str:
    return ":".join("%02x" % x for x in b)


def fake_macs(second_octet: int) -> list:
    """Locally administered MACs 02:<second_octet>:00:00:00:<slot>, one per request slot."""
    return [bytes([0x02, second_octet, 0x00, 0x00, 0x00, i]) for i in range(SLOTS)]


def run(a, ethertype: int, request, classify, recv_size: int = 256) -> None:
    """request(slot) -> frame to send. classify(frame) -> None, ("answer", slot, sender MAC) or
    ("announce", sender MAC, op). Runs until --max, or --stop-file exists."""
    names = {}
    for item in a.macs.split(","):
        n, m = item.split("=", 1)
        names[bytes.fromhex(m.replace(":", ""))] = n

    def name_of(mac: bytes) -> str:
        return names.get(mac, mac_str(mac))

    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    s.bind((a.iface, ethertype))
    try:   # PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC: answers to the made-up MACs (a veth delivers them anyway)
        s.setsockopt(263, 1, struct.pack("iHH8s", socket.if_nametoindex(a.iface), 1, 0, b""))
    except OSError:
        pass
    s.setblocking(False)

    pending = {}   # slot -> [send time, monotonic send time, set of names]
    last = [None]

    def write_state(answered):
        with open(a.state + ".tmp", "w") as f:
            f.write((" ".join(answered) or "-") + "\n")
        os.rename(a.state + ".tmp", a.state)

    with open(a.out, "a", buffering=1) as out:
        def close_old(now_mono, everything=False):
            for slot, (t_wall, t_mono, got) in sorted(pending.items(), key=lambda kv: kv[1][1]):
                if not everything and now_mono - t_mono < a.settle:
                    break
                del pending[slot]
                answered = sorted(got)
                if answered != last[0]:
                    out.write(json.dumps({"t": round(t_wall, 3), "answered": answered}) + "\n")
                    write_state(answered)
                    last[0] = answered

        seq = 0
        end = time.monotonic() + a.max
        next_send = time.monotonic()
        while time.monotonic() < end and not (a.stop_file and os.path.exists(a.stop_file)):
            now = time.monotonic()
            if now >= next_send:
                slot = seq % SLOTS
                if slot in pending:   # never reuse a slot still open (only when --settle > SLOTS x --every)
                    close_old(now, everything=True)
                try:
                    s.send(request(slot))
                    pending[slot] = [time.time(), now, set()]
                except OSError:
                    pass
                seq += 1
                next_send = max(now, next_send + a.every)
            # Answers first, then close what is due: after a stall of this process (a starved VM) the
            # answers wait in the socket and must not be counted as silence.
            r, _, _ = select.select([s], [], [], max(0.0, min(next_send - time.monotonic(), 0.2)))
            while r:
                try:
                    frame, addr = s.recvfrom(recv_size)
                except BlockingIOError:
                    break
                if addr[2] == socket.PACKET_OUTGOING:
                    continue
                c = classify(frame)
                if c is None:
                    continue
                if c[0] == "answer":
                    if c[1] in pending:
                        pending[c[1]][2].add(name_of(c[2]))
                else:
                    out.write(json.dumps({"k": "garp", "t": round(time.time(), 3), "node": name_of(c[1]), "mac": mac_str(c[1]), "op": c[2]}) + "\n")
            close_old(time.monotonic())
        close_old(time.monotonic() + a.settle, everything=True)
        out.write(json.dumps({"t": round(time.time(), 3), "end": True}) + "\n")
