"""palmnet's dual-stack web server: the field notes' ipv6-httpd, made concurrent.

The field notes serve a directory with `HTTPServer` and `address_family =
AF_INET6`: one socket for both families, but one client at a time, so a
client that connects and says nothing stops the server. This one keeps the
single dual-stack socket and serves every client from one asyncio event loop
(see `connection.py`), with keep-alive, timeouts and a real access log.

Why asyncio from the standard library and not a library from PyPI: the server
runs inside every `service: http` node, so it should start fast and bring no
dependency; the request reader it needs is small (GET/HEAD of files), and with
Protocol callbacks it is already several times faster than http.server (see
benchmarks/httpd.py). uvloop or httptools would add speed nobody in a lab needs.

`serve()` blocks until SIGTERM or SIGINT; `python -m palmnet.httpd` runs it
with its own argv, which is how a lab node starts it. `HttpServer` is the
asyncio-level handle for code that runs its own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable
from email.utils import formatdate

from palmnet.errors import InputError
from palmnet.httpd.accesslog import AccessLog
from palmnet.httpd.connection import HttpConnection
from palmnet.httpd.defaults import DEFAULT_BIND, DEFAULT_PORT, DEFAULT_TIMEOUT
from palmnet.httpd.listen import BACKLOG, open_listener, url_host
from palmnet.httpd.site import Site

"""Seconds a client may take to send a request head, or to take an answer."""
SHUTDOWN_GRACE = 5.0
"""Seconds answers in progress may take to finish after SIGTERM."""


class HttpServer:
    """A bound, listening server; `start()` begins answering on the running loop.

    The socket is bound in the constructor so that a bad address, a taken port
    or a missing directory is an `InputError` before anything starts, and so
    that `port=0` gives a known port (`address`) before the first request.
    """

    def __init__(
        self,
        directory: str = ".",
        port: int = DEFAULT_PORT,
        bind: str = DEFAULT_BIND,
        log_path: str | None = None,
        node_name: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not os.path.isdir(directory):
            raise InputError(f"not a directory: {directory}", key="DIR")
        if timeout <= 0:
            raise InputError("timeout must be positive", key="--timeout")
        self.site = Site(directory, node_name or socket.gethostname())
        self.timeout = timeout
        # Deadlines are checked, and `now` refreshed, this often: a timeout is
        # honoured to within a quarter of itself, never slower than a second.
        self._tick_interval = min(1.0, timeout / 4)
        self.connections: set[HttpConnection] = set()
        self.now = 0.0
        self.date_line = b""
        self.sock = open_listener(bind, port)
        try:
            self.log = AccessLog(log_path)
        except InputError:
            self.sock.close()
            raise
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._stopped = False
        self._drained: asyncio.Event | None = None

    @property
    def address(self) -> tuple:
        """The socket address it listens on (host, port, ...)."""
        return self.sock.getsockname()

    @property
    def url(self) -> str:
        """http://[host]:port/ of the listening socket."""
        return f"http://{url_host(self.address)}/"

    async def start(self) -> None:
        """Start accepting connections on the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._tick()
        self._server = await self._loop.create_server(
            lambda: HttpConnection(self), sock=self.sock, backlog=BACKLOG
        )

    def _tick(self) -> None:
        """Every tick: refresh the Date header and drop clients past their deadline."""
        loop = self._loop
        assert loop is not None
        self.now = now = loop.time()
        self.date_line = f"Date: {formatdate(usegmt=True)}\r\n".encode("ascii")
        for conn in [c for c in self.connections if c.deadline <= now]:
            conn.expire()
        self._ticker = loop.call_later(self._tick_interval, self._tick)

    def forget(self, conn: HttpConnection) -> None:
        """A connection is gone (called from its connection_lost)."""
        self.connections.discard(conn)
        if self._drained is not None and not self.connections:
            self._drained.set()

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop listening, let answers in progress finish for `grace` seconds, close."""
        if self._stopped:
            return
        self._stopped = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.shutdown()
        if self.connections:
            self._drained = asyncio.Event()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drained.wait(), grace)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        if self._ticker is not None:
            self._ticker.cancel()
        self.log.close()
        self.sock.close()

    async def run(self, announce: Callable[[str], None] | None = None) -> None:
        """Serve until SIGTERM or SIGINT (SIGHUP reopens the log file)."""
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
            loop.add_signal_handler(signal.SIGHUP, self.log.reopen)
            handled.append(signal.SIGHUP)
        if announce is not None:
            announce(
                f"palmnet httpd: serving {self.site.root} on {self.url} "
                f"as node {self.site.node_name}"
            )
        try:
            await stop.wait()
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            await self.stop()


def _stdout(line: str) -> None:
    print(line, flush=True)


def serve(
    directory: str = ".",
    port: int = DEFAULT_PORT,
    bind: str = DEFAULT_BIND,
    log_path: str | None = None,
    node_name: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    announce: Callable[[str], None] | None = _stdout,
) -> None:
    """Serve `directory` on [bind]:port until SIGTERM or SIGINT; blocks.

    Bad input (address, port, directory, log file) raises InputError before
    the server starts. The first line on stdout says where it listens, so a
    caller that passed port 0 learns the port and knows the socket is open.
    """
    server = HttpServer(directory, port, bind, log_path, node_name, timeout)
    try:
        asyncio.run(server.run(announce))
    except KeyboardInterrupt:  # SIGINT before the handler was installed
        pass
    finally:
        server.sock.close()
        sys.stdout.flush()
