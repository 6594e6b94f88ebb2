"""Side-by-side table for lab/compare.sh: reads <out>/<stack>/<scenario>/{analysis.json,
analysis-arp-gw.json, analysis-arp-fi.json, problems.json, notes.json} (lab/analyze.py's output
for the same records against the address watchers and the ARP observer) and writes
<out>/results.json and <out>/summary.md with the ratios keepalived / sandwich.

Per scenario and stack, over the phases after the baseline:
  failed      requests that got no correct answer within the load generator's timeout
  heal        seconds from the fault's action until every new request succeeds (the fault phase's
              recoverySeconds; None = never within the phase)
  dualArp     seconds during which both LBs' MACs answered the same ARP request for the gateway
              VIP 192.0.2.254 (what ir would see); dualArpFi the same for 10.1.0.254 (the firewalls)
  dualAddr    seconds during which both LBs had 192.0.2.254 on an interface
  longLost    long-lived connections broken
  takeover    seconds from the fault's action until the other LB had the VIP (address watcher;
              None: it never moved in the phase); moves: how often a VIP appeared on an LB
  compare.py --out DIR --stack keepalived --stack sandwich --scenario fw1-blackhole ... [--rate 10] [--advert-int 1]
"""
import argparse
import datetime
import json
import os
import platform

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--out", required=True)
p.add_argument("--stack", action="append", required=True)
p.add_argument("--scenario", action="append", required=True)
p.add_argument("--rate", default="10")
p.add_argument("--advert-int", default="1")
a = p.parse_args()


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def fault_phases(an):
    return [ph for ph in (an or {}).get("phases", []) if ph["name"] != "baseline"]


def jsonl(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def vip_changes(stack):
    recs = [r for n in ("lb1", "lb2") for r in jsonl(os.path.join(a.out, stack, f"watch.{n}")) if not r.get("end")]
    return sorted(recs, key=lambda r: r["t"])


def takeover(stack, an):
    """(seconds from the first fault phase's start to the other LB having the VIP, VIP appearances in the fault phases)."""
    ph = an.get("phases", [])
    base = [x for x in ph if x["name"] == "baseline"]
    faults = fault_phases(an)
    if not base or not faults or len(base[0]["vipHolderAtEnd"]) != 1:
        return None, None
    was = base[0]["vipHolderAtEnd"][0]
    lo, hi = faults[0]["start"], faults[-1]["end"]
    ch = vip_changes(stack)
    # appearances: a record with vip true after one with vip false for the same node
    last, moves, first = {}, 0, None
    for r in ch:
        if lo <= r["t"] < hi and r["vip"] and not last.get(r["node"], False):
            moves += 1
            if r["node"] != was and first is None and r["t"] < faults[0]["end"]:
                first = round(r["t"] - lo, 2)
        last[r["node"]] = r["vip"]
    return first, moves


def measure(stack, sc):
    d = os.path.join(a.out, stack, sc)
    an = load(os.path.join(d, "analysis.json"))
    gw = load(os.path.join(d, "analysis-arp-gw.json"))
    fi = load(os.path.join(d, "analysis-arp-fi.json"))
    problems = load(os.path.join(d, "problems.json"), ["no results"])
    notes = load(os.path.join(d, "notes.json"), [])
    if an is None:
        return {"ok": False, "problems": problems or ["no analysis"], "notes": notes}
    ph = fault_phases(an)
    tk, moves = takeover(stack, an)
    return {
        "takeover": tk,
        "moves": moves,
        "ok": not problems,
        "problems": problems,
        "notes": notes,
        "requests": sum(x["requests"] for x in ph),
        "failed": sum(x["failed"] for x in ph),
        "heal": ph[0]["recoverySeconds"] if ph else None,
        "healSecond": ph[1]["recoverySeconds"] if len(ph) > 1 else None,
        "dualArp": round(sum(x["dualVipSeconds"] for x in fault_phases(gw)), 2) if gw else None,
        "dualArpFi": round(sum(x["dualVipSeconds"] for x in fault_phases(fi)), 2) if fi else None,
        "dualAddr": round(sum(x["dualVipSeconds"] for x in ph), 2),
        "longLost": sum(x["longLost"] for x in ph),
        "phases": [dict(x, dualArp=(fault_or_all(gw, x["name"])), dualArpFi=(fault_or_all(fi, x["name"]))) for x in an["phases"]],
    }


def fault_or_all(an, name):
    for x in (an or {}).get("phases", []):
        if x["name"] == name:
            return x["dualVipSeconds"]
    return None


def ratio(k, s):
    """keepalived / sandwich as text; None when a side is missing."""
    if k is None or s is None:
        return None
    if isinstance(k, str) or isinstance(s, str):
        return None
    if s == 0:
        return "=" if k == 0 else "∞"
    return round(k / s, 2)


def fmt(v, unit="", none="never"):
    if v is None:
        return none
    if isinstance(v, float):
        return f"{v:.2f}{unit}"
    return f"{v}{unit}"


def rfmt(r):
    if r is None:
        return "—"
    if isinstance(r, str):
        return r
    return f"**{r:.2f}×**"


stacks = {s: {"up": load(os.path.join(a.out, s, "up.json"), {}), "scenarios": {sc: measure(s, sc) for sc in a.scenario}} for s in a.stack}
METRICS = [("failed", "failed requests"), ("heal", "time to heal (s)"), ("takeover", "VIP on the other LB after (s)"), ("moves", "VIP moves"), ("dualArp", "dual-VIP by ARP, gateway VIP (s)"),
           ("dualArpFi", "dual-VIP by ARP, firewall-side VIP (s)"), ("dualAddr", "dual-VIP by address (s)"), ("longLost", "long-lived connections lost (of 6)")]
ratios = {}
if "keepalived" in stacks and "sandwich" in stacks:
    for sc in a.scenario:
        k, s = stacks["keepalived"]["scenarios"][sc], stacks["sandwich"]["scenarios"][sc]
        ratios[sc] = {m: ratio(k.get(m), s.get(m)) for m, _ in METRICS}
problems = [f"{st}/{sc}: {p}" for st, v in stacks.items() for sc, m in v["scenarios"].items() for p in m["problems"]]
problems += [f"{st}: did not come up" for st, v in stacks.items() if v["up"].get("upFailed")]
now = datetime.datetime.now(datetime.timezone.utc)
result = {"date": now.strftime("%Y-%m-%dT%H:%MZ"), "kernel": platform.release(), "rate": a.rate, "advertInt": a.advert_int,
          "stacks": stacks, "ratios": ratios, "problems": problems}
with open(os.path.join(a.out, "results.json"), "w") as f:
    json.dump(result, f, indent=1)

L = [f"# keepalived vs sandwich — {result['date']}, kernel {result['kernel']}, qemu TCG", "",
     f"Same VM run, same topology (lab/topo.sh), same load ({a.rate} new HTTP requests/s from 25 client addresses, 2 s timeout,",
     "+ 6 long-lived keep-alive connections), same scenarios and measurements. keepalived: lab/keepalived/ (VRRP advert_int",
     f"{a.advert_int} s, HTTP checks through each firewall every 1 s, down after 3, inhibit_on_failure; er1: ICMP leg checks every 3 s,",
     "down after 2, notify scripts re-pointing tables 101/102). sandwich: lab/config.lab.yaml (TCG timing: probes 1 s / fall 3 /",
     "rise 3, hold-down 10 s, lease 30 s).", ""]
up = " · ".join(f"{st} up in {v['up'].get('upSeconds', '?')} s" if not v["up"].get("upFailed") else f"{st} did NOT come up" for st, v in stacks.items())
L += [up, ""]
if ratios:
    L += ["| scenario | measure | keepalived | sandwich | keepalived ÷ sandwich |", "| --- | --- | ---: | ---: | ---: |"]
    for sc in a.scenario:
        k, s = stacks["keepalived"]["scenarios"][sc], stacks["sandwich"]["scenarios"][sc]
        for m, label in METRICS:
            if m in ("takeover", "moves") and not sc.startswith("lb-"):
                continue
            if m == "takeover":
                L.append(f"| {sc} | {label} | {fmt(k.get(m), none='no move')} | {fmt(s.get(m), none='no move')} | {rfmt(ratios[sc][m])} |")
                continue
            L.append(f"| {sc} | {label} | {fmt(k.get(m))} | {fmt(s.get(m))} | {rfmt(ratios[sc][m])} |")
    L += ["", "Ratios: keepalived ÷ sandwich; \"=\" both 0; \"∞\" sandwich 0 and keepalived not; time to heal = from the fault's",
          "action to the start of the first request after the phase's last failure (0 without failures).", ""]
L += ["| stack | scenario | phase | what | requests | failed | until every new request succeeds (s) | long-lived lost / alive | dual-VIP ARP gw / fw-side (s) | dual-VIP by address (s) | VIP holder at end (address) |",
      "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
for st, v in stacks.items():
    for sc, m in v["scenarios"].items():
        for ph in m.get("phases", []):
            L.append(f"| {st} | {sc} | {ph['name']} | {ph['detail']} | {ph['requests']} | {ph['failed']} | {fmt(ph['recoverySeconds'])} | "
                     f"{ph['longLost']} / {ph['longAlive']} | {fmt(ph['dualArp'])} / {fmt(ph['dualArpFi'])} | {fmt(ph['dualVipSeconds'])} | {', '.join(ph['vipHolderAtEnd']) or 'none'} |")
L.append("")
for st, v in stacks.items():
    for sc, m in v["scenarios"].items():
        L.append(f"- **{st} {sc}** {'ok' if m['ok'] else 'FAILED: ' + '; '.join(m['problems'])}. {'. '.join(m['notes'])}")
with open(os.path.join(a.out, "summary.md"), "w") as f:
    f.write("\n".join(L) + "\n")
print(json.dumps({"ratios": ratios, "problems": problems}))
