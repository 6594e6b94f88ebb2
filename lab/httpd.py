"""The lab's server: one process, asyncio, listen backlog 1024 (busybox httpd forks per request
and listens with backlog 9, which drops SYNs under load). Serves GET/HEAD / and /health.
--host and --port take comma lists (every host on every port: 0.0.0.0,:: 80,443,7); --udp-echo PORT
also echoes UDP datagrams on that port of each --udp-host address (at most 512 bytes, one reply per
datagram: the lab's UDP service; bound to the service addresses so that replies come from them). Run with /usr/bin/python3 (the VM hides root's pyenv).
"""
import argparse
import asyncio
import os
import signal

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--host", default="0.0.0.0", help="address(es), comma-separated")
parser.add_argument("--port", default="80", help="port(s), comma-separated")
parser.add_argument("--udp-echo", type=int, help="also echo UDP on this port")
parser.add_argument("--udp-host", default="198.51.100.10", help="the UDP echo's address(es), comma-separated")
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


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.transport.sendto(data[:512], addr)


async def main() -> None:
    hosts, ports = args.host.split(","), [int(p) for p in args.port.split(",")]
    servers = [await asyncio.start_server(handle, hosts if len(hosts) > 1 else hosts[0], port, backlog=1024, reuse_address=True)
               for port in ports]
    for h in args.udp_host.split(",") if args.udp_echo else []:
        await asyncio.get_running_loop().create_datagram_endpoint(Echo, local_addr=(h, args.udp_echo))
    if args.ready:
        with open(args.ready, "w") as f:
            f.write(f"{os.getpid()}\n")
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    await stop
    for server in servers:
        server.close()


asyncio.run(main())
