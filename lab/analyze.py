"""Turns one lab run's raw records into measurements, an SVG timeline and a markdown table.

Inputs: the load generator's JSON lines (lab/loadgen.py), the VIP watchers' JSON lines
(lab/watch.py, one file per LB: is the VIP address local), the ARP watcher's JSON lines
(lab/arpwatch.py in the upstream router: which LBs answer ARP for the VIP), lab markers (JSON lines {t, name, detail}; a marker named
"phase:<name>" starts a measured phase that ends at the next phase marker or at the end of the
load), and the controllers' events (`sandwich events --json`).
Per phase: requests, failed requests, seconds from the phase start until every new request
succeeds (start of the first request after the last failure; 0 without failures), long-lived
connections alive at the phase start and lost during it, dual-VIP seconds: with --arp, during which
two LBs answered the same ARP request for the VIP (what the network sees: an LB that keeps the address
behind an expired ARP fence does not count), else during which both held the address; the address
count is always reported too (dualVipAddressSeconds), and gratuitous ARPs per LB (garps).
  analyze.py --records R --vip F1 --vip F2 [--arp A] --markers M --events E --title T --json OUT.json --svg OUT.svg --md OUT.md
"""
import argparse
import datetime
import html
import json
import sys

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--records", required=True)
p.add_argument("--vip", action="append", default=[])
p.add_argument("--arp", help="lab/arpwatch.py's JSON lines: the dual-VIP measurement that respects the ARP fence")
p.add_argument("--markers", required=True)
p.add_argument("--events", action="append", default=[], help="JSON-lines event logs (`sandwich events --json` or the nodes' files)")
p.add_argument("--title", default="sandwich lab")
p.add_argument("--json", required=True)
p.add_argument("--svg", required=True)
p.add_argument("--md")
a = p.parse_args()


def jsonl(path):
    out = []
    try:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    print(f"analyze.py: {path}:{n}: skipped a bad line ({e})", file=sys.stderr)
    except FileNotFoundError:
        print(f"analyze.py: {path}: missing", file=sys.stderr)
    return out


recs = jsonl(a.records)
reqs = sorted((r for r in recs if r.get("k") == "req"), key=lambda r: r["t"])
longs = [r for r in recs if r.get("k") == "long"]
end_rec = next((r for r in recs if r.get("k") == "end"), None)
markers = sorted(jsonl(a.markers), key=lambda m: m["t"])
events = []
for e in (e for path in a.events for e in jsonl(path)):
    try:
        e["t"] = datetime.datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp()
        events.append(e)
    except (KeyError, ValueError):
        pass
vip = {}
for path in a.vip:
    for v in jsonl(path):
        vip.setdefault(v["node"], []).append(v)

arp_recs = jsonl(a.arp) if a.arp else []
arp_sets = sorted((r for r in arp_recs if "answered" in r), key=lambda r: r["t"])
arp_end = next((r["t"] for r in arp_recs if r.get("end")), None)
garps = [r for r in arp_recs if r.get("k") == "garp"]

if not reqs:
    sys.exit(f"analyze.py: no requests in {a.records}")
t_first, t_last = reqs[0]["t"], max(r["t"] + r["ms"] / 1000 for r in reqs)
t_end = end_rec["t"] if end_rec else t_last


def intervals(samples, until):
    """[(start, end)] during which the node held the VIP, from change records."""
    out, start = [], None
    for s in sorted(samples, key=lambda s: s["t"]):
        if s.get("end"):
            continue
        if s["vip"] and start is None:
            start = s["t"]
        elif not s["vip"] and start is not None:
            out.append((start, s["t"]))
            start = None
    if start is not None:
        out.append((start, until))
    return out


vip_iv = {n: intervals(s, t_end) for n, s in vip.items()}


def overlap(lo, hi):
    names = sorted(vip_iv)
    if len(names) < 2:
        return 0.0
    tot = 0.0
    for s1, e1 in vip_iv[names[0]]:
        for s2, e2 in vip_iv[names[1]]:
            s, e = max(s1, s2, lo), min(e1, e2, hi)
            tot += max(0.0, e - s)
    return tot


def arp_dual(lo, hi):
    """Seconds in [lo, hi) during which two or more LBs answered the same ARP request for the VIP."""
    tot = 0.0
    for i, r in enumerate(arp_sets):
        s = r["t"]
        e = arp_sets[i + 1]["t"] if i + 1 < len(arp_sets) else (arp_end or t_end)
        if len(r["answered"]) >= 2:
            tot += max(0.0, min(e, hi) - max(s, lo))
    return tot


def arp_at(t):
    cur = None
    for r in arp_sets:
        if r["t"] > t:
            break
        cur = r["answered"]
    return cur


def dual(lo, hi):
    return arp_dual(lo, hi) if a.arp else overlap(lo, hi)


def garps_in(lo, hi):
    out = {}
    for g in garps:
        if lo <= g["t"] < hi:
            out[g["node"]] = out.get(g["node"], 0) + 1
    return out


def holder_at(t):
    return [n for n, iv in sorted(vip_iv.items()) if any(s <= t < e for s, e in iv)]


# Long-lived connections: lost time per source (first failed request on it).
long_lost = {}
long_first = {}
for r in sorted(longs, key=lambda r: r["t"]):
    long_first.setdefault(r["src"], r["t"])
    if not r["ok"] and r["src"] not in long_lost:
        long_lost[r["src"]] = r["t"]

phases = []
pm = [m for m in markers if m["name"].startswith("phase:")]
for i, m in enumerate(pm):
    lo = m["t"]
    hi = pm[i + 1]["t"] if i + 1 < len(pm) else t_end
    rs = [r for r in reqs if lo <= r["t"] < hi]
    failed = [r for r in rs if not r["ok"]]
    if failed:
        last_fail = max(r["t"] for r in failed)
        after = [r for r in rs if r["t"] > last_fail]
        recovery = (after[0]["t"] - lo) if after else None   # None: never recovered within the phase
    else:
        recovery = 0.0
    alive = [s for s, t0 in long_first.items() if t0 < lo and not (s in long_lost and long_lost[s] < lo)]
    lost = [s for s in alive if s in long_lost and long_lost[s] < hi]
    ev = [e for e in events if lo <= e["t"] < hi]
    phases.append({
        "name": m["name"][len("phase:"):],
        "detail": m.get("detail", ""),
        "start": lo, "end": hi, "seconds": round(hi - lo, 2),
        "requests": len(rs), "failed": len(failed),
        "failedErrors": sorted({(r.get("err") or "?").split(":")[0] for r in failed}),
        "recoverySeconds": None if recovery is None else round(recovery, 2),
        "longAlive": len(alive), "longLost": len(lost),
        "dualVipSeconds": round(dual(lo, hi), 2),
        "dualVipAddressSeconds": round(overlap(lo, hi), 2),
        "vipHolderAtEnd": holder_at(hi - 0.01),
        "arpAnsweringAtEnd": arp_at(hi - 0.01),
        "garps": garps_in(lo, hi),
        "events": len(ev),
    })

result = {
    "title": a.title,
    "start": t_first, "end": t_end,
    "requests": len(reqs), "failed": sum(1 for r in reqs if not r["ok"]),
    "long": end_rec["long"] if end_rec else {},
    "dualVipSource": "arp" if a.arp else "address",
    "dualVipSeconds": round(dual(t_first, t_end), 2),
    "dualVipAddressSeconds": round(overlap(t_first, t_end), 2),
    "vipHolderAtEnd": holder_at(t_end - 0.01),
    "arpAnsweringAtEnd": arp_at(t_end - 0.01),
    "garps": garps_in(t_first, t_end + 1),
    "markers": markers,
    "phases": phases,
    "events": [{k: e[k] for k in ("ts", "node", "event", "firewall", "reason") if k in e} for e in events],
}
with open(a.json, "w") as f:
    json.dump(result, f, indent=1)

# --- SVG: requests per 0.5 s bin (ok up, failed down), markers and controller events ---
W, H, L, R, T, B = 1100, 420, 60, 20, 40, 150
plot_w, mid = W - L - R, T + (H - T - B) * 0.6
span = max(1.0, t_end - t_first)
BIN = 0.5
nb = int(span / BIN) + 1
ok_b, bad_b = [0] * nb, [0] * nb
for r in reqs:
    i = min(nb - 1, int((r["t"] - t_first) / BIN))
    (ok_b if r["ok"] else bad_b)[i] += 1
ymax = max(1, max(ok_b), max(bad_b))
up_h, down_h = mid - T, (H - B) - mid
x = lambda t: L + (t - t_first) / span * plot_w
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{L}" y="18" font-size="14" font-weight="bold">{html.escape(a.title)}</text>',
       f'<text x="{L}" y="32" fill="#555">requests per {BIN} s: ok (green, up), failed (red, down); dashed: lab actions; ticks: controller events; grey band: both LBs have the VIP address; orange band: two LBs answer ARP for it</text>']
names = sorted(vip_iv)
if len(names) == 2:
    for s1, e1 in vip_iv[names[0]]:
        for s2, e2 in vip_iv[names[1]]:
            s, e = max(s1, s2), min(e1, e2)
            if e > s:
                out.append(f'<rect x="{x(s):.1f}" y="{T}" width="{max(1, x(e) - x(s)):.1f}" height="{H - B - T}" fill="#999" opacity="0.25"/>')
for i, r in enumerate(arp_sets):
    if len(r["answered"]) >= 2:
        s, e = max(t_first, r["t"]), min(t_end, arp_sets[i + 1]["t"] if i + 1 < len(arp_sets) else (arp_end or t_end))
        if e > s:
            out.append(f'<rect x="{x(s):.1f}" y="{T}" width="{max(1, x(e) - x(s)):.1f}" height="{H - B - T}" fill="orange" opacity="0.5"/>')
for i in range(nb):
    bx, bw = x(t_first + i * BIN), max(1.0, plot_w * BIN / span - 0.5)
    if ok_b[i]:
        h = ok_b[i] / ymax * up_h
        out.append(f'<rect x="{bx:.1f}" y="{mid - h:.1f}" width="{bw:.1f}" height="{h:.1f}" fill="#2a2"/>')
    if bad_b[i]:
        h = bad_b[i] / ymax * down_h
        out.append(f'<rect x="{bx:.1f}" y="{mid:.1f}" width="{bw:.1f}" height="{h:.1f}" fill="#d22"/>')
out.append(f'<line x1="{L}" y1="{mid}" x2="{W - R}" y2="{mid}" stroke="#333"/>')
out.append(f'<text x="{L - 5}" y="{T + 8}" text-anchor="end">{ymax}</text><text x="{L - 5}" y="{mid + 4}" text-anchor="end">0</text>')
for s in range(0, int(span) + 1, max(5, int(span / 20) // 5 * 5 or 5)):
    out.append(f'<text x="{x(t_first + s):.1f}" y="{H - B + 14}" text-anchor="middle">{s}s</text>')
for m in markers:
    mx = x(m["t"])
    label = m["name"].replace("phase:", "")
    out.append(f'<line x1="{mx:.1f}" y1="{T}" x2="{mx:.1f}" y2="{H - B}" stroke="#00c" stroke-dasharray="4,3"/>')
    out.append(f'<text x="{mx + 3:.1f}" y="{T + 12}" fill="#00c" transform="rotate(0)">{html.escape(label)}</text>')
# Controller events: a tick per event below the axis, labelled (rotated) for the interesting kinds.
KEEP = {"verdict", "leader", "vip", "switchover", "drift", "drain", "kernel"}
lane = H - B + 22
for e in events:
    if not (t_first - 1 <= e["t"] <= t_end + 1) or e.get("event") not in KEEP:
        continue
    ex = x(max(t_first, min(t_end, e["t"])))
    col = {"verdict": "#a0a", "leader": "#000", "vip": "#c60", "switchover": "#06c", "drift": "#c00"}.get(e["event"], "#777")
    out.append(f'<line x1="{ex:.1f}" y1="{lane}" x2="{ex:.1f}" y2="{lane + 8}" stroke="{col}"/>')
    txt = f'{e.get("node", "")}: {e.get("reason", "")}'[:70]
    out.append(f'<text x="{ex:.1f}" y="{lane + 12}" fill="{col}" font-size="8" transform="rotate(60 {ex:.1f} {lane + 12})"><title>{html.escape(e.get("ts", ""))} {html.escape(e.get("reason", ""))}</title>{html.escape(txt)}</text>')
out.append("</svg>")
with open(a.svg, "w") as f:
    f.write("\n".join(out) + "\n")

if a.md:
    DV = ", ARP" if a.arp else ", address"
    HE = " (address / answering ARP)" if a.arp else ""

    def holders(ph):
        h = ", ".join(ph["vipHolderAtEnd"]) or "none"
        if a.arp:
            arp = ph["arpAnsweringAtEnd"]
            h += " / " + ("?" if arp is None else ", ".join(arp) or "none")
        return h

    lines = [f"### {a.title}", "",
             f"| phase | what | requests | failed | until every new request succeeds (s) | long-lived lost / alive | dual-VIP{DV} (s) | VIP address on both (s) | VIP holder at end{HE} |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for ph in phases:
        rec_s = "never" if ph["recoverySeconds"] is None else f'{ph["recoverySeconds"]:.2f}'
        lines.append(f'| {ph["name"]} | {ph["detail"]} | {ph["requests"]} | {ph["failed"]} | {rec_s} | {ph["longLost"]} / {ph["longAlive"]} | {ph["dualVipSeconds"]:.2f} | {ph["dualVipAddressSeconds"]:.2f} | {holders(ph)} |')
    with open(a.md, "w") as f:
        f.write("\n".join(lines) + "\n")
print(json.dumps({"requests": result["requests"], "failed": result["failed"], "phases": [
    {k: ph[k] for k in ("name", "requests", "failed", "recoverySeconds", "longLost", "longAlive", "dualVipSeconds", "dualVipAddressSeconds", "vipHolderAtEnd")} for ph in phases]}))
