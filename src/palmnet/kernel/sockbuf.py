"""Enlarge the receive buffer of a socket that another process holds.

radvd has no option for its ICMPv6 socket's buffer, and net.core.rmem_default
is read-only in every namespace but the machine's own (Linux 6.x shows it there
as -r--r--r--), so a router's socket keeps the default 208 KiB. That drops part
of a LAN's router-solicitation burst (111 of 1,000 here, measured by the drops
column of /proc/net/raw6) and those hosts wait a second for their next RS.

The buffer belongs to the socket, not to a descriptor: palmnet takes a
duplicate of the daemon's descriptor with pidfd_getfd(2) (Linux 5.6; Python's
os module has pidfd_open but not pidfd_getfd, hence ctypes) and sets
SO_RCVBUFFORCE on it (CAP_NET_ADMIN, not capped by net.core.rmem_max). The
daemon keeps its own descriptor; palmnet closes the duplicate.
"""

from __future__ import annotations

import ctypes
import os
import socket
from collections.abc import Callable, Iterator

SYS_PIDFD_GETFD = 438  # the same number on every architecture (generic syscall table)
SO_RCVBUFFORCE = 33


def _getfd(pidfd: int, target: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, target, 0)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(fd)


def _socket_fds(pid: int) -> list[int]:
    out = []
    for entry in os.scandir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(entry.path).startswith("socket:"):
                out.append(int(entry.name))
        except OSError:
            continue
    return out


def is_icmpv6_raw(sock: socket.socket) -> bool:
    return sock.type == socket.SOCK_RAW and sock.proto == socket.IPPROTO_ICMPV6


def held_sockets(pid: int) -> Iterator[socket.socket]:
    """Duplicates of the sockets `pid` holds, each closed once the next is asked for.
    OSError if the process cannot be reached."""
    pidfd = os.pidfd_open(pid)
    try:
        for target in _socket_fds(pid):
            with socket.socket(fileno=_getfd(pidfd, target)) as sock:
                yield sock
    finally:
        os.close(pidfd)


def force_rcvbuf(pid: int, size: int, wanted: Callable[[socket.socket], bool]) -> int:
    """Set the receive buffer of `pid`'s sockets that `wanted` picks to `size`
    bytes (the kernel keeps twice that, as for SO_RCVBUF); returns how many."""
    changed = 0
    for sock in held_sockets(pid):
        if wanted(sock):
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
            changed += 1
    return changed
