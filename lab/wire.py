"""A cable between two TAP devices: every frame read from one is written to the other, from user space.

Why (lab/README.md, "The wire"): between network namespaces of one kernel a packet keeps its socket-buffer
flags, and TCP sets dst_pending_confirm on the packets it sends while its peer acknowledges data. A router
namespace forwarding such a packet takes the flag as a reachability confirmation of *its own* next hop
(ip_finish_output2 → sock_confirm_neigh), so a client's TCP keeps the router's neighbour entry for an LB
REACHABLE, and neighbour unreachability detection never starts, whatever the LB answers. Between two
machines no flag crosses the wire. Copying the frames through user space builds a new packet on the
other side, as a real cable does.

  wire.py <tap-a> <tap-b> --ready <file>

Opens both (existing, persistent) TAP devices by name, touches --ready, and copies until killed. The devices
may then be moved into other namespaces: the open descriptors stay attached.
"""
import argparse
import fcntl
import os
import select
import struct

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("a")
p.add_argument("b")
p.add_argument("--ready", required=True)
args = p.parse_args()


def tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


a, b = tap(args.a), tap(args.b)
peer = {a: b, b: a}
open(args.ready, "w").close()
while True:
    for fd in select.select([a, b], [], [])[0]:
        try:
            os.write(peer[fd], os.read(fd, 65536))
        except OSError:   # the other side is down or gone: the frame is lost, as on a cable
            pass
