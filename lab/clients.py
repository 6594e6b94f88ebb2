"""One HTTP GET from each client source address <prefix><first>..<prefix><last>, in order, from one
process (an exec per request costs 0.2-2 s in the TCG VM). Prints "ok=N fail=M (failed: .a .b)";
exit status 1 if any request failed. --json FILE writes one record per request.
Run with /usr/bin/python3 inside the client namespace.
"""
import argparse
import http.client
import json
import sys
import time
from urllib.parse import urlsplit

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--first", type=int, default=10)
p.add_argument("--last", type=int, default=30)
p.add_argument("--prefix", default="203.0.113.")
p.add_argument("--url", default="http://198.51.100.10/")
p.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
p.add_argument("--expect", default="hello from srv", help="text the body must contain")
p.add_argument("--json", help="write per-request records here")
a = p.parse_args()
u = urlsplit(a.url)
if u.scheme != "http" or not u.hostname:
    sys.exit(f"clients.py: --url must be http://host[:port]/path, got {a.url!r}")

records, failed = [], []
for i in range(a.first, a.last + 1):
    src = f"{a.prefix}{i}"
    t0 = time.monotonic()
    err = None
    try:
        c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=a.timeout, source_address=(src, 0))
        c.request("GET", u.path or "/", headers={"Connection": "close"})
        r = c.getresponse()
        body = r.read().decode("utf-8", "replace")
        c.close()
        if r.status != 200 or a.expect not in body:
            err = f"HTTP {r.status} {body[:60]!r}"
    except OSError as e:
        err = f"{type(e).__name__}: {e}"
    ms = round((time.monotonic() - t0) * 1000, 1)
    records.append({"source": src, "ok": err is None, "ms": ms, "error": err})
    if err:
        failed.append(f".{i}")

if a.json:
    with open(a.json, "w") as f:
        json.dump(records, f, indent=1)
ok = len(records) - len(failed)
print(f"ok={ok} fail={len(failed)}" + (f" (failed: {' '.join(failed)})" if failed else ""))
sys.exit(1 if failed else 0)
