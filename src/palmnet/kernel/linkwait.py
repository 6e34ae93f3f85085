"""Wait until links are gone from a namespace.

Deleting a node's namespace removes its veth pairs in the background (the
kernel's netns cleanup work), so the outer ends linger in the lab's hidden
namespace for a moment; starting the node again before they are gone fails
with "File exists". This waits for the kernel's RTM_DELLINK notifications.
"""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Iterable

from palmnet.errors import LabError
from palmnet.kernel import nsfs
from palmnet.kernel.dump import dump_links
from palmnet.kernel.rtnl import RTMGRP_LINK


def subscribe_links(netns_path: str) -> socket.socket:
    with nsfs.netns(netns_path):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    sock.bind((0, RTMGRP_LINK))
    sock.setblocking(False)
    return sock


def wait_links_gone(
    sock: socket.socket, netns_path: str, names: Iterable[str], timeout: float = 10.0
) -> None:
    """Return once none of `names` exists in the namespace (sock: from subscribe_links,
    opened before the deletion so no notification is missed)."""
    wanted = set(names)
    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    while True:
        present = {link.name for link in dump_links(netns_path).values()} & wanted
        if not present:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise LabError(f"links not removed after {timeout:g} s: {', '.join(sorted(present))}")
        if poller.poll(left * 1000):
            while True:
                try:
                    sock.recv(1 << 16)
                except BlockingIOError:
                    break
                except OSError as exc:  # ENOBUFS: events lost; the next dump tells
                    if exc.errno != errno.ENOBUFS:
                        raise
                    break
