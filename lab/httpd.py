"""The lab's server: one process, asyncio, listen backlog 1024 (busybox httpd forks per request
and listens with backlog 9, which drops SYNs under load). Serves GET/HEAD / and /health.
Run with /usr/bin/python3 (the VM hides root's pyenv).
"""
import argparse
import asyncio
import os
import signal

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--host", default="0.0.0.0")
parser.add_argument("--port", type=int, default=80)
parser.add_argument("--name", default="srv", help="server name put in the / body")
parser.add_argument("--ready", help="file to create once listening")
parser.add_argument("--idle-timeout", type=float, default=30.0, help="seconds a keep-alive connection may wait for its next request")
args = parser.parse_args()

BODIES = {"/": f"hello from {args.name}\n".encode(), "/health": b"ok\n"}
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


def response(status: int, body: bytes, keep_alive: bool, head: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {REASONS[status]}",
        "Content-Type: text/plain",
        f"Content-Length: {len(body)}",
        "Connection: " + ("keep-alive" if keep_alive else "close"),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head else body)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=args.idle_timeout)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
                return
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
            if len(parts) != 3:
                writer.write(response(400, b"bad request\n", False, False))
                return
            method, target, version = parts
            conn = headers.get("connection", "").lower()
            keep_alive = conn == "keep-alive" if version == "HTTP/1.0" else conn != "close"
            path = target.split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                status, body = 405, b"method not allowed\n"
            elif path in BODIES:
                status, body = 200, BODIES[path]
            else:
                status, body = 404, b"not found\n"
            writer.write(response(status, body, keep_alive, method == "HEAD"))
            await writer.drain()
            if not keep_alive:
                return
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(handle, args.host, args.port, backlog=1024, reuse_address=True)
    if args.ready:
        with open(args.ready, "w") as f:
            f.write(f"{os.getpid()}\n")
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with server:
        await stop


asyncio.run(main())
