"""Watches one LB namespace without spawning anything (an exec costs 0.15-2 s in the TCG VM):
every --every seconds whether the namespace holds the gateway VIP (bind() to it succeeds only
when the address is local), every --weights-every seconds the weights of fw1/fw2 in IPVS service
FWM 1 (/proc/net/ip_vs; the VM has no CPU to spare for reading it 10 times a second).
Writes the current state to --state as one line "<vip 0|1> <fw1 weight|-> <fw2 weight|->"
(replaced atomically) and a JSON line to --out at start and at every change:
{"t": <unix s>, "node": name, "vip": bool, "w": [fw1, fw2]}. Stops when --stop-file exists.
Run inside an LB namespace with /usr/bin/python3.
"""
import argparse
import json
import os
import socket
import time

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--name", required=True)
p.add_argument("--out", required=True)
p.add_argument("--state", required=True)
p.add_argument("--vip", default="192.0.2.254")
p.add_argument("--reals", default="10.1.0.11,10.1.0.12")
p.add_argument("--every", type=float, default=0.1)
p.add_argument("--weights-every", type=float, default=0.5)
p.add_argument("--max", type=float, default=3600)
p.add_argument("--stop-file")
a = p.parse_args()
REALS = ["%02X%02X%02X%02X:0000" % tuple(int(x) for x in r.split(".")) for r in a.reals.split(",")]


def holds() -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((a.vip, 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def weights() -> list:
    w = {r: None for r in REALS}
    try:
        with open("/proc/net/ip_vs") as f:
            in_fwm1 = False
            for line in f:
                parts = line.split()
                if not parts:
                    continue
                if parts[0] in ("TCP", "UDP", "FWM", "SCTP"):
                    in_fwm1 = parts[0] == "FWM" and int(parts[1], 16) == 1
                elif parts[0] == "->" and in_fwm1 and parts[1] in w:
                    w[parts[1]] = int(parts[3])
    except OSError:
        pass
    return [w[r] for r in REALS]


end = time.monotonic() + a.max
last = None
w, w_at = None, 0.0
with open(a.out, "a", buffering=1) as out:
    while time.monotonic() < end and not (a.stop_file and os.path.exists(a.stop_file)):
        if time.monotonic() - w_at >= a.weights_every:
            w, w_at = weights(), time.monotonic()
        cur = (holds(), w)
        if cur != last:
            out.write(json.dumps({"t": round(time.time(), 3), "node": a.name, "vip": cur[0], "w": cur[1]}) + "\n")
            with open(a.state + ".tmp", "w") as f:
                f.write("%d %s\n" % (cur[0], " ".join("-" if x is None else str(x) for x in cur[1])))
            os.rename(a.state + ".tmp", a.state)
            last = cur
        time.sleep(a.every)
    out.write(json.dumps({"t": round(time.time(), 3), "node": a.name, "vip": last[0] if last else None, "end": True}) + "\n")
