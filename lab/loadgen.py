"""Bounded HTTP load through the sandwich, from the lab's client namespace, one asyncio process.

New requests: --rate per second (one new TCP connection each, "Connection: close"), source
addresses cycling through <prefix><first>..<prefix><last>, for at most --duration seconds or
until --stop-file appears. Long-lived connections: --long N keep-alive connections from the
last N source addresses, one request each per --long-interval seconds on the same connection;
a connection that fails once is counted as lost (not reopened). --long-per-src K opens K such
connections per source address (their "src" is then "<address>#<j>"), --long-ramp spreads their
opening over that many seconds, --long-timeout bounds each of their requests (default --timeout:
a longer one lets a request ride out a failover on TCP retransmissions).
Records go to --out (JSON lines, flushed as they come):
  {"k":"req","t":<unix s>,"src":..,"ok":bool,"ms":..,"err":..}
  {"k":"long","t":..,"src":..,"port":<local port>,"ok":bool,"ms":..,"err":..,"seq":n}
  {"k":"end","t":..,"long":{"<src>":"alive"|"lost at <t>"}}
More streams in the same process (other services, IPv6, UDP): --extra "name=web6,host=2001:db8:100::10,
port=80,prefix=2001:db8:c::,rate=3,long=2,out=FILE" (keys: name, proto tcp|udp, host, port, prefix,
first, last, rate, long, out; unset ones as for the main stream, long 0). Each writes the same
records, with "svc": name, to its own file. A UDP request is one datagram from a new socket and
its echo (lab/httpd.py --udp-echo), within --timeout; UDP streams have no long-lived connections.
Run with /usr/bin/python3 inside the client namespace (the VM hides root's pyenv).
"""
import argparse
import asyncio
import json
import os
import sys
import time

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--out", required=True)
p.add_argument("--rate", type=float, default=20.0, help="new requests per second")
p.add_argument("--duration", type=float, default=120.0, help="upper bound in seconds")
p.add_argument("--stop-file", help="stop early when this file exists")
p.add_argument("--prefix", default="203.0.113.")
p.add_argument("--first", type=int, default=10)
p.add_argument("--last", type=int, default=34)
p.add_argument("--long", type=int, default=6, help="long-lived connections (sources after --last)")
p.add_argument("--long-interval", type=float, default=1.0)
p.add_argument("--long-per-src", type=int, default=1, help="long-lived connections per source address")
p.add_argument("--long-ramp", type=float, default=0.0, help="spread the long-lived connections' opening over this many seconds")
p.add_argument("--long-timeout", type=float, help="seconds per request on a long-lived connection (default: --timeout)")
p.add_argument("--host", default="198.51.100.10")
p.add_argument("--port", type=int, default=80)
p.add_argument("--timeout", type=float, default=2.0, help="seconds per request")
p.add_argument("--extra", action="append", default=[], help="another stream (see above)")
a = p.parse_args()
if not (0 < a.rate <= 200) or not (0 < a.duration <= 3600) or a.first > a.last or a.long < 0:
    sys.exit("loadgen.py: need 0 < --rate <= 200, 0 < --duration <= 3600, --first <= --last, --long >= 0")
if not (1 <= a.long_per_src and a.long * a.long_per_src <= 2000) or not (0 <= a.long_ramp <= 600):
    sys.exit("loadgen.py: need --long-per-src >= 1, --long x --long-per-src <= 2000, 0 <= --long-ramp <= 600")
if a.long_timeout is None:
    a.long_timeout = a.timeout
if not (0 < a.long_timeout <= 600):
    sys.exit("loadgen.py: need 0 < --long-timeout <= 600")


class Stream:
    def __init__(self, name, proto, host, port, prefix, first, last, rate, long, out):
        self.name, self.proto, self.host, self.port, self.prefix = name, proto, host, int(port), prefix
        self.first, self.last, self.rate, self.long = int(first), int(last), float(rate), int(long)
        self.file = open(out, "w", buffering=1)
        self.long_state = {}
        self.req = f"GET / HTTP/1.1\r\nHost: {'[%s]' % host if ':' in host else host}\r\n"

    def rec(self, r: dict) -> None:
        if self.name:
            r["svc"] = self.name
        self.file.write(json.dumps(r, separators=(",", ":")) + "\n")


main_stream = Stream(None, "tcp", a.host, a.port, a.prefix, a.first, a.last, a.rate, a.long, a.out)
streams = [main_stream]
total_rate = a.rate
for spec in a.extra:
    try:
        kv = dict(item.split("=", 1) for item in spec.split(","))
        bad = set(kv) - {"name", "proto", "host", "port", "prefix", "first", "last", "rate", "long", "out"}
        if bad or "name" not in kv or "out" not in kv or kv.get("proto", "tcp") not in ("tcp", "udp"):
            raise ValueError(f"unknown keys {sorted(bad)}" if bad else "needs name=, out=, proto tcp or udp")
        st = Stream(kv["name"], kv.get("proto", "tcp"), kv.get("host", a.host), kv.get("port", a.port), kv.get("prefix", a.prefix),
                    kv.get("first", a.first), kv.get("last", a.last), kv.get("rate", a.rate), kv.get("long", 0), kv["out"])
    except ValueError as e:
        sys.exit(f"loadgen.py: --extra {spec!r}: {e}")
    if not (0 < st.rate <= 200) or st.first > st.last or st.long < 0 or (st.proto == "udp" and st.long):
        sys.exit(f"loadgen.py: --extra {spec!r}: need 0 < rate <= 200, first <= last, long >= 0 (0 for udp)")
    total_rate += st.rate
    streams.append(st)
if total_rate > 200:
    sys.exit("loadgen.py: at most 200 new requests/s in all streams")


async def one_request(st, reader, writer, close: bool) -> None:
    writer.write((st.req + ("Connection: close\r\n" if close else "") + "\r\n").encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    body = await reader.readexactly(n)
    if status != b"200" or b"hello from" not in body:
        raise RuntimeError(f"HTTP {status.decode()} {body[:40]!r}")

def err_text(e: BaseException) -> str:
    if isinstance(e, asyncio.TimeoutError):
        return "timeout"
    return f"{type(e).__name__}: {e}"[:120]

class Echo(asyncio.DatagramProtocol):
    def __init__(self, payload: bytes):
        self.payload, self.done = payload, asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr) -> None:
        if data == self.payload and not self.done.done():
            self.done.set_result(None)

    def error_received(self, exc) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


udp_seq = 0
async def udp_request(st, src: str) -> None:
    global udp_seq
    udp_seq += 1
    payload = f"sandwich lab {udp_seq}".encode()
    transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: Echo(payload), local_addr=(src, 0), remote_addr=(st.host, st.port))
    try:
        transport.sendto(payload)
        await proto.done
    finally:
        transport.close()


async def request(st, src: str) -> None:
    t, t0 = time.time(), time.monotonic()
    err, writer = None, None
    try:
        async def go():
            nonlocal writer
            if st.proto == "udp":
                return await udp_request(st, src)
            reader, writer = await asyncio.open_connection(st.host, st.port, local_addr=(src, 0))
            await one_request(st, reader, writer, True)
        await asyncio.wait_for(go(), a.timeout)
    except Exception as e:  # every failure is a data point
        err = err_text(e)
    finally:
        if writer:
            writer.close()
    st.rec({"k": "req", "t": round(t, 3), "src": src, "ok": err is None, "ms": round((time.monotonic() - t0) * 1000, 1), "err": err})

async def long_lived(st, addr: str, src: str, deadline: float, delay: float) -> None:
    seq, writer = 0, None
    try:
        await asyncio.sleep(delay)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(st.host, st.port, local_addr=(addr, 0)), a.long_timeout)
        port = writer.get_extra_info("sockname")[1]
        st.long_state[src] = "alive"
        while time.monotonic() < deadline and not stopped():
            t, t0 = time.time(), time.monotonic()
            try:
                await asyncio.wait_for(one_request(st, reader, writer, False), a.long_timeout)
                st.rec({"k": "long", "t": round(t, 3), "src": src, "port": port, "ok": True, "ms": round((time.monotonic() - t0) * 1000, 1), "seq": seq})
            except Exception as e:
                st.rec({"k": "long", "t": round(t, 3), "src": src, "port": port, "ok": False, "ms": round((time.monotonic() - t0) * 1000, 1), "err": err_text(e), "seq": seq})
                st.long_state[src] = f"lost at {t:.3f}"
                return
            seq += 1
            await asyncio.sleep(a.long_interval)
    except Exception as e:
        st.long_state[src] = f"lost at {time.time():.3f} (connect: {err_text(e)})"
    finally:
        if writer:
            writer.close()

def stopped() -> bool:
    return bool(a.stop_file) and os.path.exists(a.stop_file)

async def run(st, start: float, deadline: float) -> None:
    sources = [f"{st.prefix}{i}" for i in range(st.first, st.last + 1)]
    per_src, ramp = (a.long_per_src, a.long_ramp) if st is main_stream else (1, 0.0)   # --long-per-src/--long-ramp: main stream
    n_long = max(1, st.long * per_src)
    longs = [asyncio.create_task(long_lived(
        st, f"{st.prefix}{st.last + 1 + i}", f"{st.prefix}{st.last + 1 + i}" + (f"#{j}" if per_src > 1 else ""), deadline,
        ramp * (i * per_src + j) / n_long)) for i in range(st.long) for j in range(per_src)]
    tasks, n = set(), 0
    while time.monotonic() < deadline and not stopped():
        t = asyncio.create_task(request(st, sources[n % len(sources)]))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        n += 1
        # Paced by the schedule, not by the previous sleep: a slow loop catches up.
        await asyncio.sleep(max(0.0, start + n / st.rate - time.monotonic()))
    await asyncio.gather(*tasks, *longs, return_exceptions=True)
    st.rec({"k": "end", "t": round(time.time(), 3), "requests": n, "long": st.long_state})


async def main() -> None:
    start = time.monotonic()
    await asyncio.gather(*(run(st, start, start + a.duration) for st in streams))

asyncio.run(main())
for st in streams:
    st.file.close()
