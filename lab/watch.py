"""Watches one LB namespace without spawning anything (an exec costs 0.15-2 s in the TCG VM):
every --every seconds whether the namespace holds the gateway VIP (bind() to it succeeds only
when the address is local), every --weights-every seconds the weights of fw1/fw2 in IPVS service
FWM 1 (/proc/net/ip_vs; the VM has no CPU to spare for reading it 10 times a second).
Writes the current state to --state as one line "<vip 0|1> <fw1 weight|-> <fw2 weight|->"
(replaced atomically) and a JSON line to --out at start and at every change:
{"t": <unix s>, "node": name, "vip": bool, "w": [fw1, fw2]}. Stops when --stop-file exists.
Optional (lab/services.sh): --vip6 ADDR adds "vip6": bool (the IPv6 VIP, same bind test); --svc
NAME=MARK[/6] (repeatable) adds "svc": {NAME: [fw1, fw2]}, the weights of that fwmark service (IPv6
with /6; real servers --reals6), read with the FWM 1 weights. With either, --state2 FILE holds
"vip6 <0|1>" and one "NAME <fw1> <fw2>" line per service (default: --state + ".svc"; the main
state line is unchanged).
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
p.add_argument("--vip6")
p.add_argument("--reals6", default="2001:db8:1::11,2001:db8:1::12")
p.add_argument("--svc", action="append", default=[], help="NAME=MARK or NAME=MARK/6")
p.add_argument("--state2")
p.add_argument("--ipvs-file", default="/proc/net/ip_vs", help="(tests)")
p.add_argument("--every", type=float, default=0.1)
p.add_argument("--weights-every", type=float, default=0.5)
p.add_argument("--max", type=float, default=3600)
p.add_argument("--stop-file")
a = p.parse_args()
REALS = ["%02X%02X%02X%02X:0000" % tuple(int(x) for x in r.split(".")) for r in a.reals.split(",")]
REALS6 = ["[%s]:0000" % ":".join(socket.inet_pton(socket.AF_INET6, r).hex()[i:i + 4] for i in range(0, 32, 4)) for r in a.reals6.split(",")]
SVC = {}   # (mark, ipv6) -> name
for spec in a.svc:
    n, m = spec.split("=", 1)
    SVC[(int(m.split("/")[0]), m.endswith("/6"))] = n


def holds(vip=None) -> bool:
    vip = vip or a.vip
    s = socket.socket(socket.AF_INET6 if ":" in vip else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((vip, 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def weights() -> list:
    w = {r: None for r in REALS}
    sw = {n: {r: None for r in (REALS6 if v6 else REALS)} for (_, v6), n in SVC.items()}
    try:
        with open(a.ipvs_file) as f:
            in_fwm1, mark = False, None
            for line in f:
                parts = line.split()
                if not parts:
                    continue
                if parts[0] in ("TCP", "UDP", "FWM", "SCTP"):
                    in_fwm1 = parts[0] == "FWM" and int(parts[1], 16) == 1
                    mark = int(parts[1], 16) if parts[0] == "FWM" else None
                elif parts[0] == "->" and in_fwm1 and parts[1] in w:
                    w[parts[1]] = int(parts[3])
                # /proc does not say a fwmark service's family; its real servers' address format does.
                if parts[0] == "->" and mark is not None and (mark, parts[1].startswith("[")) in SVC:
                    d = sw[SVC[(mark, parts[1].startswith("["))]]
                    if parts[1] in d:
                        d[parts[1]] = int(parts[3])
    except OSError:
        pass
    if not SVC:
        return [w[r] for r in REALS]
    return [w[r] for r in REALS], {n: list(d.values()) for n, d in sw.items()}


end = time.monotonic() + a.max
last = None
w, w_at = None, 0.0
if (SVC or a.vip6) and not a.state2:
    a.state2 = a.state + ".svc"
with open(a.out, "a", buffering=1) as out:
    while time.monotonic() < end and not (a.stop_file and os.path.exists(a.stop_file)):
        if time.monotonic() - w_at >= a.weights_every:
            w, w_at = weights(), time.monotonic()
        if SVC or a.vip6:
            w1, sw = w if SVC else (w, {})
            cur = (holds(), w1, holds(a.vip6) if a.vip6 else None, sw)
        else:
            cur = (holds(), w)
        if cur != last:
            r = {"t": round(time.time(), 3), "node": a.name, "vip": cur[0], "w": cur[1]}
            if len(cur) > 2:
                r.update({"vip6": cur[2], "svc": cur[3]})
            out.write(json.dumps(r) + "\n")
            with open(a.state + ".tmp", "w") as f:
                f.write("%d %s\n" % (cur[0], " ".join("-" if x is None else str(x) for x in cur[1])))
            os.rename(a.state + ".tmp", a.state)
            if a.state2 and len(cur) > 2:
                with open(a.state2 + ".tmp", "w") as f:
                    f.write("vip6 %d\n" % bool(cur[2]))
                    for n, ws in cur[3].items():
                        f.write("%s %s\n" % (n, " ".join("-" if x is None else str(x) for x in ws)))
                os.rename(a.state2 + ".tmp", a.state2)
            last = cur
        time.sleep(a.every)
    out.write(json.dumps({"t": round(time.time(), 3), "node": a.name, "vip": last[0] if last else None, "end": True}) + "\n")
