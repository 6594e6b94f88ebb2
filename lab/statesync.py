"""Established connections kept across a firewall failure (lab/statesync.sh).

  statesync.py variant --name N --records requests.jsonl --ipvs-conn before.txt --fw1 10.1.0.11
                       --fault T --acted T [--sync 0|1] [--repoint 0|1] [--fw2-conntrack before.txt]
                       [--extra JSON] --out variant.json
  statesync.py summary --out-dir DIR --goal 0.99 --goal-variant sync-repoint  (reads DIR/*/variant.json)

variant: a long-lived connection is *established* if one of its requests completed before the fault
(T, unix s); it is *kept* if it never failed and completed a request that started after the
controller had acted (--acted: fw1 out of IPVS on both LBs and, when re-pointing, er1's table
101 via fw2). "On fw1": the VIP holder's IPVS connection table (/proc/net/ip_vs_conn, taken just
before the fault) sends it to fw1's ingress address — the connections the fault hits. New
requests: failed ones started after the fault, and the time from the fault to the start of the
first request after the last failure. --fw2-conntrack (`conntrack -L` in fw2 just before the fault):
how many of the connections on fw1 fw2 already knew as ESTABLISHED (the sync's work).
summary: results.json and summary.md in --out-dir; exit status 1 if --goal-variant kept fewer
than --goal of its established connections (or has none).
"""
import argparse
import glob
import json
import os
import re
import sys


def hex_ip(h: str) -> str:
    n = int(h, 16)
    return ".".join(str((n >> s) & 255) for s in (24, 16, 8, 0))


def ipvs_dests(path: str) -> dict:
    """(client address, client port) -> real-server address, from /proc/net/ip_vs_conn."""
    out = {}
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) < 8 or p[0] != "TCP":
                continue
            out[(hex_ip(p[1]), int(p[2], 16))] = hex_ip(p[5])
    return out


def established_in(path: str) -> set:
    """(client address, client port) of the ESTABLISHED TCP entries in a `conntrack -L` dump."""
    out = set()
    with open(path) as f:
        for line in f:
            m = re.search(r"ESTABLISHED src=(\S+) dst=\S+ sport=(\d+) ", line)
            if m:
                out.add((m.group(1), int(m.group(2))))
    return out


def variant(a) -> None:
    recs = []
    with open(a.records) as f:
        for line in f:
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass  # a line cut by the stop
    dests = ipvs_dests(a.ipvs_conn)
    conns = {}
    for r in sorted((r for r in recs if r.get("k") == "long"), key=lambda r: r["t"]):
        c = conns.setdefault(r["src"], {"port": r.get("port"), "okBefore": False, "failedAt": None, "okAfter": None, "err": None})
        done = r["t"] + r["ms"] / 1000
        if r["ok"]:
            if done < a.fault:
                c["okBefore"] = True
            if r["t"] >= a.acted and c["okAfter"] is None:
                c["okAfter"] = done
        elif c["failedAt"] is None:
            c["failedAt"], c["err"] = r["t"], r.get("err")
    est = {k: c for k, c in conns.items() if c["okBefore"] and (c["failedAt"] is None or c["failedAt"] >= a.fault)}
    for k, c in est.items():
        c["dest"] = dests.get((k.split("#")[0], c["port"]))
    on_fw1 = {k for k, c in est.items() if c["dest"] == a.fw1}
    kept = {k for k, c in est.items() if c["failedAt"] is None and c["okAfter"] is not None}
    lost = {k for k, c in est.items() if c["failedAt"] is not None}
    reqs = sorted((r for r in recs if r.get("k") == "req" and r["t"] >= a.fault), key=lambda r: r["t"])
    failed = [r for r in reqs if not r["ok"]]
    heal = None
    if failed:
        after = [r for r in reqs if r["t"] > failed[-1]["t"]]
        heal = round(after[0]["t"] - a.fault, 2) if after else None
    else:
        heal = 0.0
    errs = {}
    for k in lost:
        e = est[k]["err"] or "?"
        errs[e] = errs.get(e, 0) + 1
    res = {
        "name": a.name, "sync": a.sync == 1, "repoint": a.repoint == 1,
        "established": len(est), "onFw1": len(on_fw1), "unknownDest": sum(1 for c in est.values() if c["dest"] is None),
        "kept": len(kept), "keptOnFw1": len(kept & on_fw1), "lost": len(lost), "stalled": len(est) - len(kept) - len(lost),
        "lostErrors": errs,
        "keptRatio": round(len(kept) / len(est), 4) if est else 0.0,
        "keptOnFw1Ratio": round(len(kept & on_fw1) / len(on_fw1), 4) if on_fw1 else None,
        "newRequests": len(reqs), "newFailed": len(failed), "newHealSeconds": heal,
        "actedSeconds": round(a.acted - a.fault, 2),
        # The slowest kept connection on fw1: fault -> completion of its first request started after the controller acted.
        "keptOnFw1LastAnswerSeconds": round(max(est[k]["okAfter"] for k in kept & on_fw1) - a.fault, 2) if kept & on_fw1 else None,
    }
    if a.fw2_conntrack:
        known = established_in(a.fw2_conntrack)
        res["onFw1KnownToFw2"] = sum(1 for k in on_fw1 if (k.split("#")[0], est[k]["port"]) in known)
    if a.extra:
        res.update(json.loads(a.extra))
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res))


def pct(n: int, d: int) -> str:
    return f"{n} / {d} ({100 * n / d:.1f} %)" if d else f"{n} / 0"


def summary(a) -> None:
    rows = []
    for p in sorted(glob.glob(os.path.join(a.out_dir, "*", "variant.json")), key=os.path.getmtime):
        with open(p) as f:
            rows.append(json.load(f))
    goal = next((r for r in rows if r["name"] == a.goal_variant), None)
    ok = goal is not None and goal["established"] > 0 and goal["keptRatio"] >= a.goal
    with open(os.path.join(a.out_dir, "results.json"), "w") as f:
        json.dump({"goal": a.goal, "goalVariant": a.goal_variant, "pass": ok, "variants": rows}, f, indent=1)
    lines = [
        "| variant | conntrackd sync | er1 table 101 re-pointed | established kept | of those on fw1 | lost / stalled | new requests failed | until every new request succeeds | controller done after the fault | fw1's connections known to fw2 before the fault | slowest kept fw1 connection answered |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f'| {r["name"]} | {"yes" if r["sync"] else "no"} | {("yes" + (", no conntrack flush" if r.get("flushConntrack") is False else "")) if r["repoint"] else "no (er1 controller stopped)"} '
            f'| {pct(r["kept"], r["established"])} | {pct(r["keptOnFw1"], r["onFw1"])} | {r["lost"]} / {r["stalled"]} '
            f'| {r["newFailed"]} / {r["newRequests"]} | {r["newHealSeconds"] if r["newHealSeconds"] is not None else "never"} s '
            f'| {r["actedSeconds"]} s | {r.get("onFw1KnownToFw2", "?")} / {r["onFw1"]} '
            f'| {str(r["keptOnFw1LastAnswerSeconds"]) + " s" if r["keptOnFw1LastAnswerSeconds"] is not None else "-"} |')
    verdict = "PASS" if ok else "FAIL"
    head = f"State-synced firewalls: {verdict} (goal: {a.goal_variant} keeps >= {100 * a.goal:.0f} % of the established connections)\n\n"
    if a.title:
        head = f"{a.title}\n\n{head}"
    with open(os.path.join(a.out_dir, "summary.md"), "w") as f:
        f.write(head + "\n".join(lines) + "\n")
    print(head + "\n".join(lines))
    sys.exit(0 if ok else 1)


p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
sub = p.add_subparsers(dest="cmd", required=True)
v = sub.add_parser("variant")
v.add_argument("--name", required=True)
v.add_argument("--records", required=True)
v.add_argument("--ipvs-conn", required=True)
v.add_argument("--fw1", required=True)
v.add_argument("--fault", type=float, required=True)
v.add_argument("--acted", type=float, required=True)
v.add_argument("--sync", type=int, default=1)
v.add_argument("--repoint", type=int, default=1)
v.add_argument("--fw2-conntrack", help="`conntrack -L` of fw2 just before the fault")
v.add_argument("--extra", help="JSON object merged into the result")
v.add_argument("--out", required=True)
s = sub.add_parser("summary")
s.add_argument("--out-dir", required=True)
s.add_argument("--goal", type=float, default=0.99)
s.add_argument("--goal-variant", default="sync-repoint")
s.add_argument("--title", help="a line put above the verdict (run, date, settings)")
a = p.parse_args()
variant(a) if a.cmd == "variant" else summary(a)
