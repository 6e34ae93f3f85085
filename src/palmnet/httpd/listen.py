"""The listening socket and the client address as people read it.

One socket on `::` with IPV6_V6ONLY off serves both families: IPv4 clients
arrive as IPv4-mapped addresses (::ffff:192.0.2.7). The option is set
explicitly because its default is a sysctl (net.ipv6.bindv6only) that some
hosts turn on, which would silently make the server IPv6-only.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

from palmnet.errors import InputError

BACKLOG = 1024


def parse_bind(bind: str, port: int) -> tuple[socket.AddressFamily, tuple]:
    """Turn `--bind` and `--port` into a socket family and address.

    Accepts `::`, `::1`, `2001:db8::1`, `[::1]`, `fe80::1%eth0` and IPv4
    addresses. A link-local address needs its zone (RFC 4007): without it the
    kernel cannot tell which link is meant.
    """
    if not 0 <= port <= 65535:
        raise InputError(f"port {port} is not in 0..65535", key="--port")
    text = bind.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InputError(f"not an IP address: {bind!r}", key="--bind") from None
    if isinstance(address, ipaddress.IPv4Address):
        return socket.AF_INET, (str(address), port)
    if address.is_link_local and not address.scope_id:
        raise InputError(
            f"link-local address {bind} needs a zone, e.g. {address}%eth0", key="--bind"
        )
    try:
        infos = socket.getaddrinfo(
            text,
            port,
            socket.AF_INET6,
            socket.SOCK_STREAM,
            0,
            socket.AI_NUMERICHOST | socket.AI_PASSIVE,
        )
    except socket.gaierror:
        raise InputError(
            f"no interface {address.scope_id!r} for {bind} on this node", key="--bind"
        ) from None
    return socket.AF_INET6, infos[0][4]


def open_listener(bind: str, port: int) -> socket.socket:
    """Bind and listen; errors the user can fix become `InputError`."""
    family, sockaddr = parse_bind(bind, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise _bind_error(exc, bind, port) from None
    return sock


def _bind_error(exc: OSError, bind: str, port: int) -> InputError:
    where = f"[{bind}]:{port}" if ":" in bind else f"{bind}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return InputError(f"{where} is already in use; pick another --port", key="--port")
    if exc.errno == errno.EACCES:
        return InputError(
            f"port {port} needs root or CAP_NET_BIND_SERVICE; pick a --port above 1023",
            key="--port",
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return InputError(f"{bind} is not an address of this node", key="--bind")
    return InputError(f"cannot listen on {where}: {exc.strerror}", key="--bind")


def client_host(peer: tuple | None) -> str:
    """The client's address as it belongs in a log: IPv4-mapped shown as IPv4.

    A link-local client keeps its zone (fe80::1%eth0): without it the
    address names no one in particular.
    """
    if not peer:
        return "-"
    host = peer[0]
    if len(peer) < 4:
        return host
    address = ipaddress.IPv6Address(host)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    if peer[3]:
        try:
            return f"{host}%{socket.if_indextoname(peer[3])}"
        except OSError:
            return f"{host}%{peer[3]}"
    return host


def url_host(sockname: tuple) -> str:
    """host:port of a socket address as it is written in a URL (RFC 3986, 6874)."""
    host = client_host(sockname)
    if ":" in host:
        return f"[{host.replace('%', '%25')}]:{sockname[1]}"
    return f"{host}:{sockname[1]}"
