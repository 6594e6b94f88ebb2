#!/usr/bin/python3
"""Per-flow UDP counters for the active-active system test (test/system/active-active.test.ts).

  flows.py send --dst 198.51.100.10 --port 5000 --src 203.0.113.100,... --per-src 8 --interval-ms 10 --out FILE
      one UDP socket per flow (source address x ephemeral port), each sends a sequence-numbered
      datagram every interval; on SIGTERM writes {"ticks": N, "flows": {"src:port": sent}} to FILE.
  flows.py recv --bind 198.51.100.10 --port 5000 --out FILE [--every-ms 50]
      counts per flow; rewrites FILE (atomically) every --every-ms and on SIGTERM with
      {"flows": {"src:port": {"count", "first", "last", "firstSeq", "lastSeq"}}} (times: epoch seconds).
"""
import argparse
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time

stop = False


def on_term(*_):
    global stop
    stop = True


def dump(path, obj):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def send(a):
    socks = []
    for src in a.src.split(','):
        for _ in range(a.per_src):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((src, 0))
            s.connect((a.dst, a.port))
            s.setblocking(False)
            socks.append(s)
    names = ['%s:%d' % s.getsockname() for s in socks]
    sent = dict.fromkeys(names, 0)
    dump(a.out + '.ready', {'flows': names})
    seq = 0
    t0 = time.monotonic()
    while not stop:
        seq += 1
        payload = struct.pack('!Qd', seq, time.time())
        for s, n in zip(socks, names):
            try:
                s.send(payload)
                sent[n] += 1
            except OSError:
                pass  # ENETUNREACH/EAGAIN: counted as not sent
        delay = t0 + seq * a.interval_ms / 1000 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    dump(a.out, {'ticks': seq, 'flows': sent})


def recv(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((a.bind, a.port))
    s.settimeout(a.every_ms / 1000)
    flows = {}
    last_dump = 0.0
    while not stop:
        try:
            data, (ip, port) = s.recvfrom(64)
            now = time.time()
            seq = struct.unpack('!Qd', data[:16])[0] if len(data) >= 16 else 0
            k = '%s:%d' % (ip, port)
            f = flows.get(k)
            if f is None:
                flows[k] = {'count': 1, 'first': now, 'last': now, 'firstSeq': seq, 'lastSeq': seq}
            else:
                f['count'] += 1
                f['last'] = now
                f['lastSeq'] = seq
        except socket.timeout:
            pass
        if time.monotonic() - last_dump >= a.every_ms / 1000:
            last_dump = time.monotonic()
            dump(a.out, {'flows': flows, 'at': time.time()})
    dump(a.out, {'flows': flows, 'at': time.time()})


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest='cmd', required=True)
    ps = sub.add_parser('send')
    ps.add_argument('--dst', required=True)
    ps.add_argument('--port', type=int, default=5000)
    ps.add_argument('--src', required=True)
    ps.add_argument('--per-src', type=int, default=8)
    ps.add_argument('--interval-ms', type=float, default=10)
    ps.add_argument('--out', required=True)
    pr = sub.add_parser('recv')
    pr.add_argument('--bind', required=True)
    pr.add_argument('--port', type=int, default=5000)
    pr.add_argument('--out', required=True)
    pr.add_argument('--every-ms', type=float, default=50)
    a = p.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    send(a) if a.cmd == 'send' else recv(a)
    return 0


if __name__ == '__main__':
    sys.exit(main())
