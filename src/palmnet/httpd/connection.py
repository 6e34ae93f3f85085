"""One client connection: read request heads, write answers, keep alive or close.

An asyncio Protocol rather than streams: data arrives in `data_received` and
every answer that is already in memory is written before the callback returns,
with no task, future or await per request. That is where the speed over
http.server comes from, and why a client that sends nothing costs one idle
socket and never holds up anyone else. Only a large file gets a task, which
follows the transport's flow control.

Timeouts use one deadline per connection, checked by the server's periodic
sweep (`HttpServer._tick`), so a request costs an attribute store instead of a
timer. A client has `timeout` seconds after connecting or after its previous
answer to deliver a whole request head (slowloris gets no more by trickling
bytes), and the same to take each part of an answer off the socket; a client
that never takes its answers is reset, not left to the kernel to time out.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios
import traceback
from typing import TYPE_CHECKING, BinaryIO

from palmnet.httpd.http11 import MAX_HEAD, STATUS_LINES, BadRequest, parse_head
from palmnet.httpd.listen import client_host, url_host
from palmnet.httpd.site import SERVER, Response, error_response

if TYPE_CHECKING:
    from palmnet.httpd.server import HttpServer

CHUNK = 256 * 1024
_LINGER_RESET = struct.pack("ii", 1, 0)
_SERVER_LINE = f"Server: {SERVER}\r\n".encode()


class HttpConnection(asyncio.Protocol):
    """The server side of one TCP connection."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.client = "-"
        self.local = "-"
        self.buffer = bytearray()
        self.deadline = 0.0
        self.closing = False
        self.stopping = False
        self.busy = False
        self.paused = False
        self._resumed: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    # asyncio callbacks ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.client = client_host(transport.get_extra_info("peername"))
        sockname = transport.get_extra_info("sockname")
        self.local = url_host(sockname) if sockname else "-"
        self.deadline = self.server.now + self.server.timeout
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.busy or self.paused:
            if len(self.buffer) > MAX_HEAD:
                self.transport.pause_reading()  # type: ignore[union-attr]
            return
        self._process()

    def eof_received(self) -> bool:
        # Finish what is in progress (a file, a full send buffer), then close.
        self.stopping = True
        return self.busy or self.paused

    def pause_writing(self) -> None:
        self.paused = True
        self.transport.pause_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        self.paused = False
        self.deadline = self.server.now + self.server.timeout
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)
        if not self.closing:
            self.transport.resume_reading()  # type: ignore[union-attr]
            if not self.busy:
                self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.forget(self)
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)
        if self._task is not None:
            self._task.cancel()

    # requests ---------------------------------------------------------------------

    def _process(self) -> None:
        """Answer every complete request head in the buffer, in order."""
        buffer = self.buffer
        while not (self.closing or self.busy or self.paused):
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._refuse(431, "-")
                elif self.stopping:
                    self._close()
                return
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            if head.startswith(b"\r\n"):  # RFC 9112 §2.2: skip empty lines before a request
                head = head.lstrip(b"\r\n")
                if not head:
                    continue
            if len(head) > MAX_HEAD:
                self._refuse(431, "-")
                return
            self._handle(head)

    def _handle(self, head: bytes) -> None:
        try:
            request = parse_head(head)
        except BadRequest as exc:
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            self._refuse(exc.status, line)
            return
        keep_alive = request.keep_alive and not request.has_body and not self.stopping
        if request.method == "GET" or request.method == "HEAD":
            try:
                response = self.server.site.respond(request, self.client, self.local)
            except Exception:  # a bug or an odd file must cost one answer, not the server
                traceback.print_exc()
                response = error_response(500)
                keep_alive = False
        else:
            response = error_response(405, b"Allow: GET, HEAD\r\n")
        send_body = request.method != "HEAD" and response.status != 304
        self._send(response, request.line, keep_alive, request.version, send_body)

    def _refuse(self, status: int, line: str) -> None:
        self._send(error_response(status), line, False, "HTTP/1.1", True)

    def _send(
        self, response: Response, line: str, keep_alive: bool, version: str, send_body: bool
    ) -> None:
        server = self.server
        if keep_alive:
            connection = b"Connection: keep-alive\r\n" if version == "HTTP/1.0" else b""
        else:
            connection = b"Connection: close\r\n"
        head = b"".join(
            (
                STATUS_LINES[response.status],
                server.date_line,
                _SERVER_LINE,
                response.headers,
                connection,
                b"\r\n",
            )
        )
        transport = self.transport
        assert transport is not None
        stream = response.stream
        if stream is not None and send_body:
            transport.write(head)
            self.busy = True
            self._task = asyncio.ensure_future(self._stream(stream, response, line, keep_alive))
            return
        if stream is not None:
            stream.close()
        nbytes = response.length if send_body else 0
        transport.write(head + response.body if nbytes else head)
        server.log.record(self.client, line, response.status, nbytes)
        self._done(keep_alive)

    async def _stream(
        self, stream: BinaryIO, response: Response, line: str, keep_alive: bool
    ) -> None:
        """Send a large file chunk by chunk, waiting while the client is slow."""
        sent = 0
        transport = self.transport
        assert transport is not None
        try:
            with stream:
                while sent < response.length and not self.closing:
                    chunk = stream.read(min(CHUNK, response.length - sent))
                    if not chunk:
                        break  # the file shrank; the client sees a short body
                    transport.write(chunk)
                    sent += len(chunk)
                    self.deadline = self.server.now + self.server.timeout
                    if self.paused:
                        self._resumed = asyncio.get_running_loop().create_future()
                        await self._resumed
        except OSError:
            keep_alive = False
        finally:
            self.server.log.record(self.client, line, response.status, sent)
            self._task = None
            self.busy = False
        if sent < response.length:
            keep_alive = False
        self._done(keep_alive)
        if not self.closing:
            self.transport.resume_reading()  # type: ignore[union-attr]
            self._process()

    def _done(self, keep_alive: bool) -> None:
        if keep_alive and not self.stopping:
            self.deadline = self.server.now + self.server.timeout
        else:
            self._close()

    def _close(self) -> None:
        if not self.closing:
            self.closing = True
            self.transport.close()  # type: ignore[union-attr]

    # called by the server -----------------------------------------------------------

    def expire(self) -> None:
        """The deadline passed: drop the client, telling it why if it was mid-request."""
        if self.closing:
            return
        sock = self.transport.get_extra_info("socket")  # type: ignore[union-attr]
        if self.paused or self.busy or _unsent(sock):
            # A client that stopped reading: reset (linger 0) rather than leave the
            # kernel holding the unsent answers in FIN-WAIT-1 for minutes.
            self.closing = True
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            self.transport.abort()  # type: ignore[union-attr]
        elif self.buffer.strip():
            self._refuse(408, "-")
        else:
            self._close()

    def shutdown(self) -> None:
        """Server is stopping: close now unless an answer is on its way."""
        self.stopping = True
        if not self.busy and not self.paused:
            self._close()


def _unsent(sock: socket.socket | None) -> int:
    """Bytes the kernel still holds for the peer (SIOCOUTQ); 0 if unknown."""
    if sock is None:
        return 0
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return 0
    return struct.unpack("i", buf)[0]
