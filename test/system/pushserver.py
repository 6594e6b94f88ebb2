#!/usr/bin/python3
"""A server that speaks first (test/system/statesync.test.ts): per connection, answers the client's
"hello" line with "ok", then, once GO exists (polled every 20 ms), sends one "push" line; every later
client line is answered with "pong". Runs until killed.

  pushserver.py --bind 198.51.100.11 --port 80 --go FILE --ready FILE
"""
import argparse
import asyncio
import os

p = argparse.ArgumentParser(description=__doc__)
p.add_argument('--bind', required=True)
p.add_argument('--port', type=int, default=80)
p.add_argument('--go', required=True)
p.add_argument('--ready', required=True)
a = p.parse_args()


async def handle(reader, writer):
    try:
        if await reader.readline() != b'hello\n':
            return
        writer.write(b'ok\n')
        await writer.drain()
        while not os.path.exists(a.go):
            await asyncio.sleep(0.02)
        writer.write(b'push\n')
        await writer.drain()
        while await reader.readline():
            writer.write(b'pong\n')
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, a.bind, a.port, backlog=1024)
    open(a.ready, 'w').close()
    async with server:
        await server.serve_forever()

asyncio.run(main())
