#!/usr/bin/python3
"""Established keep-alive HTTP connections across a path change (test/system/statesync.test.ts).

  keepalive.py --dst 198.51.100.10 --src 10.1.0.1 --count 20 --out FILE [--timeout 5] [--max-wait 60] [--server-first]

Opens --count connections from --src, completes one request on each, writes FILE.ready
({"open": n, "ports": [local ports]}), waits (at most --max-wait s) for FILE.go, then sends one
more request on every connection at once and writes FILE ({"kept": n, "lost": {"<local port>":
"<error>"}}). A connection is kept if that request is answered (HTTP 200) within --timeout s.
--server-first (against test/system/pushserver.py): the exchange is a "hello"/"ok" line, and after
FILE.go the client only waits for the server's "push" line; kept = received within --timeout s.
Each one not received then sends a "ping" line and waits --timeout s more: FILE also gets
"afterPing": how many received the push only after that.
"""
import argparse
import asyncio
import json
import os
import sys
import time

p = argparse.ArgumentParser(description=__doc__)
p.add_argument('--dst', required=True)
p.add_argument('--port', type=int, default=80)
p.add_argument('--src', required=True)
p.add_argument('--count', type=int, default=20)
p.add_argument('--out', required=True)
p.add_argument('--timeout', type=float, default=5.0)
p.add_argument('--max-wait', type=float, default=60.0)
p.add_argument('--server-first', action='store_true')
a = p.parse_args()
if not (0 < a.count <= 1000) or not (0 < a.timeout <= 60) or not (0 < a.max_wait <= 600):
    sys.exit('keepalive.py: need 0 < --count <= 1000, 0 < --timeout <= 60, 0 < --max-wait <= 600')

REQ = f'GET / HTTP/1.1\r\nHost: {a.dst}\r\n\r\n'.encode()


async def request(reader, writer):
    if a.server_first:
        writer.write(b'hello\n')
        await writer.drain()
        if await reader.readline() != b'ok\n':
            raise RuntimeError('no ok')
        return
    writer.write(REQ)
    await writer.drain()
    head = await reader.readuntil(b'\r\n\r\n')
    n = 0
    for line in head.split(b'\r\n'):
        if line.lower().startswith(b'content-length:'):
            n = int(line.split(b':')[1])
    await reader.readexactly(n)
    if head.split(b' ', 2)[1] != b'200':
        raise RuntimeError(head.split(b'\r\n')[0].decode())


def dump(path, obj):
    with open(path + '.tmp', 'w') as f:
        json.dump(obj, f)
    os.replace(path + '.tmp', path)


async def main():
    conns = []
    for _ in range(a.count):
        r, w = await asyncio.wait_for(asyncio.open_connection(a.dst, a.port, local_addr=(a.src, 0)), a.timeout)
        await asyncio.wait_for(request(r, w), a.timeout)
        conns.append((w.get_extra_info('sockname')[1], r, w))
    dump(a.out + '.ready', {'open': len(conns), 'ports': [c[0] for c in conns]})
    deadline = time.monotonic() + a.max_wait
    while not os.path.exists(a.out + '.go'):
        if time.monotonic() > deadline:
            sys.exit('keepalive.py: no go file within --max-wait')
        await asyncio.sleep(0.02)

    async def push(r):
        if await r.readline() != b'push\n':
            raise RuntimeError('no push')

    after_ping = 0

    async def one(port, r, w):
        nonlocal after_ping
        try:
            await asyncio.wait_for(push(r) if a.server_first else request(r, w), a.timeout)
            return port, None
        except Exception as e:  # every failure is a data point
            err = 'timeout' if isinstance(e, asyncio.TimeoutError) else f'{type(e).__name__}: {e}'[:100]
        if a.server_first and err == 'timeout':
            try:
                w.write(b'ping\n')
                await w.drain()
                await asyncio.wait_for(push(r), a.timeout)
                after_ping += 1
            except Exception:  # noqa: BLE001 - still not received
                pass
        return port, err
    res = await asyncio.gather(*(one(*c) for c in conns))
    dump(a.out, {'kept': sum(1 for _, e in res if e is None), 'lost': {str(p): e for p, e in res if e is not None}, 'afterPing': after_ping})
    for _, _, w in conns:
        w.close()

asyncio.run(main())
