"""A TCP forwarder from localhost to a scoped address, possibly inside a node.

Browsers do not take zone ids in URLs (RFC 6874 was never implemented by
them), so `http://[fe80::1%eth0]/` cannot be opened. The forwarder listens on
localhost in the caller's namespace and connects, per accepted connection, to
`[fe80::1%eth0]:port`. With a node, the outgoing socket is created by a worker
thread that has entered the node's network namespace (a socket belongs to the
namespace it was created in); it is then connected and pumped by asyncio in
the main thread like any other socket. The namespace file and the zone are
looked up per connection, so a node that restarts (new namespace, new
interface index) keeps working.

Half-close is kept both ways: EOF from one side becomes shutdown(SHUT_WR)
towards the other, so a client that sends a request and half-closes still
reads the whole answer. A reset on either side cuts both.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from palmnet.addressing import zones
from palmnet.errors import InputError, LabError
from palmnet.kernel import nsfs

# Reads of up to CHUNK; a side buffers at most about 2 * BUFFER before reading
# pauses (asyncio flow control): about 1 MiB per connection at worst, when one
# end reads slowly. 64 KiB halved the throughput (about 250 MB/s vs 480 MB/s
# through a veth on the dev box).
CHUNK = 256 * 1024
BUFFER = 256 * 1024
CONNECT_TIMEOUT = 10.0
# On Ctrl-C, connections get this long to finish on their own, then are cut:
# a browser's idle keep-alive connection would otherwise hold the exit forever.
SHUTDOWN_GRACE = 1.0


@dataclass(frozen=True)
class Target:
    """Where connections go: an address, its zone (RFC 4007) and a port."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    zone: str | None
    port: int

    def __str__(self) -> str:
        if self.address.version == 4:
            return f"{self.address}:{self.port}"
        zone = f"%{self.zone}" if self.zone else ""
        return f"[{self.address}{zone}]:{self.port}"


def parse_target(text: str, port: int) -> Target:
    """Parse `fe80::1%eth0` (also `[...]` and the RFC 6874 `%25` form) and a port.

    Zone rules are `addressing.zones`' (RFC 4007, the kernel's interface
    names); on top, a link-local target needs a zone, and TCP a unicast one.
    """
    if not 1 <= port <= 65535:
        raise InputError(f"remote port {port}: must be 1..65535")
    raw = text.strip()
    if raw.startswith("[") and raw.endswith("]"):
        raw = raw[1:-1]
    address_text, sep, zone = raw.partition("%")
    try:
        v4 = ipaddress.IPv4Address(address_text)
    except ValueError:
        pass
    else:
        if sep:
            raise InputError(f"{text}: IPv4 addresses take no zone")
        return Target(v4, None, port)
    if sep and zone.startswith("25") and len(zone) > 2:
        raw = f"{address_text}%{zone[2:]}"  # RFC 6874 URL form: %25 is an escaped %
    scoped = zones.parse_scoped(raw)
    if scoped.address.is_multicast or scoped.address.is_unspecified:
        raise InputError(f"{text}: TCP needs a unicast address")
    if scoped.zone is None and zones.zone_required(scoped.address):
        raise InputError(
            f"{text} is link-local: give its zone (the interface), e.g. {scoped.address}%eth0"
        )
    return Target(scoped.address, scoped.zone, port)


def listen_addresses(listen: str) -> list[str]:
    """Addresses to listen on: `localhost` means both loopbacks (RFC 6761)."""
    if listen == "localhost":
        return ["127.0.0.1", "::1"]
    raw = listen[1:-1] if listen.startswith("[") and listen.endswith("]") else listen
    try:
        infos = socket.getaddrinfo(raw, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InputError(f"--listen {listen}: {exc.strerror}") from None
    seen: list[str] = []
    for family, _, _, _, sockaddr in infos:
        host = str(sockaddr[0])
        if family == socket.AF_INET6 and len(sockaddr) == 4 and sockaddr[3]:
            host = f"{host.split('%')[0]}%{sockaddr[3]}"
        if host not in seen:
            seen.append(host)
    return seen


def format_endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@contextlib.contextmanager
def _in_netns(path: str | None) -> Iterator[None]:
    if path is None:
        yield
    else:
        with nsfs.netns(path):
            yield


def _scope_id(zone: str | None, node: str) -> int:
    if zone is None:
        return 0
    if zone.isdigit():
        return int(zone)
    try:
        return socket.if_nametoindex(zone)
    except OSError:
        raise InputError(f"no interface {zone} in {node}") from None


@dataclass
class Stats:
    """Counters printed at exit and read by tests."""

    accepted: int = 0
    failed: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    active: set[asyncio.Task[None]] = field(default_factory=set)


class Forwarder:
    """Listen on local addresses, forward each connection to one target."""

    def __init__(
        self,
        target: Target,
        local_port: int,
        *,
        listen: str = "localhost",
        netns: str | None = None,
        node: str | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.target = target
        self.local_port = local_port
        self.listen = listen
        self.netns = netns
        self.where = f"node {node}" if node else "the host"
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.stats = Stats()
        self.bound: list[tuple[str, int]] = []
        self._servers: list[asyncio.Server] = []
        self._bound_early: list[socket.socket] | None = None
        # Few threads: they only create sockets (and look up the zone) in the
        # node's namespace; connecting happens in the event loop.
        self._netns_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="netns")

    def check_target(self) -> None:
        """Fail early (exit 2) if the node or the zone's interface is not there."""
        try:
            with _in_netns(self.netns):
                _scope_id(self.target.zone, self.where)
        except FileNotFoundError:
            raise InputError(f"{self.where} is not running") from None

    def bind(self) -> list[tuple[str, int]]:
        """Bind every listen address on one port now, in this thread's namespace; return
        what was bound. Before a rootless lab is entered: once inside, this process
        could only listen in the lab's namespace, which the user's browser cannot see."""
        if not 0 <= self.local_port <= 65535:
            raise InputError(f"local port {self.local_port}: must be 0..65535")
        hosts = listen_addresses(self.listen)
        for _ in range(20 if self.local_port == 0 else 1):
            sockets = self._bind_all(hosts)
            if sockets is not None:
                self._bound_early = sockets
                return self.bound
        raise LabError("could not find a free port on every listen address")

    async def start(self) -> list[tuple[str, int]]:
        """Bind every listen address on one port (unless bind() did); what was bound."""
        if self._bound_early is None:
            self.bind()
        sockets, self._bound_early = self._bound_early or [], None
        for sock in sockets:
            server = await asyncio.start_server(self._serve_client, sock=sock, limit=BUFFER)
            self._servers.append(server)
        return self.bound

    def _bind_all(self, hosts: list[str]) -> list[socket.socket] | None:
        """Bind all hosts on one port; None if port 0 gave a port taken elsewhere."""
        port = self.local_port
        sockets: list[socket.socket] = []
        self.bound = []
        optional = self.listen == "localhost"
        for host in hosts:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sockaddr = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)[0][4]
                sock.bind(sockaddr)
                sock.listen(512)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE and self.local_port == 0 and sockets:
                    for s in sockets:
                        s.close()
                    return None
                if optional and exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    continue  # e.g. no IPv6 loopback on this host
                for s in sockets:
                    s.close()
                what = format_endpoint(host, port)
                raise InputError(f"cannot listen on {what}: {exc.strerror}") from None
            port = sock.getsockname()[1]
            sockets.append(sock)
            self.bound.append((host, port))
        if not sockets:
            raise InputError(f"cannot listen on {self.listen}: no usable address")
        return sockets

    def describe(self) -> str:
        local = ", ".join(format_endpoint(h, p) for h, p in self.bound)
        return f"forwarding {local} -> {self.target} in {self.where}"

    def _upstream_socket(self) -> tuple[socket.socket, tuple]:
        """Runs in a pool thread: a socket born in the node's namespace."""
        with _in_netns(self.netns):
            if self.target.address.version == 4:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                return sock, (str(self.target.address), self.target.port)
            scope = _scope_id(self.target.zone, self.where)
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            return sock, (str(self.target.address), self.target.port, 0, scope)

    async def _connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = asyncio.get_running_loop()
        sock, sockaddr = await loop.run_in_executor(self._netns_pool, self._upstream_socket)
        try:
            sock.setblocking(False)
            await asyncio.wait_for(loop.sock_connect(sock, sockaddr), CONNECT_TIMEOUT)
            return await asyncio.open_connection(sock=sock, limit=BUFFER)
        except BaseException:
            sock.close()
            raise

    async def _serve_client(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.stats.active.add(task)
        self.stats.accepted += 1
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            try:
                upstream_reader, upstream_writer = await self._connect_upstream()
            except ConnectionResetError:
                # The upstream accepted and reset at once, before the connect was seen
                # to complete: a connection that was made and cut, as a reset while
                # relaying is, not one that failed.
                _abort(client_writer)
                return
            except (OSError, TimeoutError, InputError) as exc:
                self.stats.failed += 1
                if isinstance(exc, FileNotFoundError):
                    reason = "its namespace is gone"
                elif isinstance(exc, OSError) and exc.errno:
                    reason = os.strerror(exc.errno)  # asyncio's strerror is "Connect call failed"
                else:
                    reason = str(exc) or type(exc).__name__
                self.log(f"connection to {self.target} in {self.where} failed: {reason}")
                return
            pumps = [
                asyncio.create_task(self._pump(client_reader, upstream_writer, "up")),
                asyncio.create_task(self._pump(upstream_reader, client_writer, "down")),
            ]
            try:
                done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
                if any(t.exception() is not None for t in done):
                    # A reset on one side: cut the other rather than leave it hanging.
                    for t in pumps:
                        t.cancel()
                    _abort(client_writer)
                    _abort(upstream_writer)
            finally:
                for t in pumps:
                    t.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except asyncio.CancelledError:
            _abort(client_writer)
            if upstream_writer is not None:
                _abort(upstream_writer)
            raise
        finally:
            _close(client_writer)
            if upstream_writer is not None:
                _close(upstream_writer)
            self.stats.active.discard(task)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str
    ) -> None:
        """Copy until EOF, then pass the EOF on as shutdown(SHUT_WR)."""
        while data := await reader.read(CHUNK):
            writer.write(data)
            if direction == "up":
                self.stats.bytes_up += len(data)
            else:
                self.stats.bytes_down += len(data)
            await writer.drain()
        if writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()
            await writer.drain()

    async def close(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop listening, let open connections finish for `grace` seconds, cut the rest."""
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        active = set(self.stats.active)
        if active:
            _, pending = await asyncio.wait(active, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._netns_pool.shutdown(wait=False, cancel_futures=True)


def _abort(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


def _close(writer: asyncio.StreamWriter) -> None:
    if not writer.is_closing():
        writer.close()


async def _run(forwarder: Forwarder, on_ready: Callable[[str], None]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await forwarder.start()
        on_ready(forwarder.describe())
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        # Bounded: a connection stuck in the kernel must not keep Ctrl-C from working.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(forwarder.close(), SHUTDOWN_GRACE + 2)


def run_forwarder(forwarder: Forwarder, on_ready: Callable[[str], None]) -> Stats:
    """Forward until SIGINT or SIGTERM (main thread only), then exit cleanly.

    Not asyncio.run(): on Python 3.11 it then waits, without a bound, for every
    thread of the default executor; closing the loop only shuts it down.
    """
    forwarder.check_target()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_run(forwarder, on_ready))
    finally:
        loop.close()
    return forwarder.stats
