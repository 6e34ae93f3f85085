"""What the server answers: files under one root, and the node's own page.

Path safety is decided here, on the decoded path: a `..` segment is refused
(403) rather than clamped the way http.server does, so a probe shows up in the
log as what it was; a symlink is followed only while its target stays under
the root. Small files are kept in memory, checked against a fresh stat() on
every request, because open/fstat/read/close costs more than the HTTP parsing.
"""

from __future__ import annotations

import html
import mimetypes
import os
import stat
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from typing import BinaryIO
from urllib.parse import quote, unquote

from palmnet import __version__
from palmnet.httpd.http11 import BadRequest, Request, reason

SERVER = f"palmnet/{__version__}"

INLINE_MAX = 1024 * 1024
"""Files up to this size are read at once; larger ones are streamed."""

CACHE_FILE_MAX = 256 * 1024
CACHE_TOTAL_MAX = 32 * 1024 * 1024


@dataclass(slots=True)
class Response:
    """An answer: status, header lines (each ending CRLF), body or file to stream.

    `headers` holds Content-Type/Length and the like, not Date, Server or
    Connection, which the connection adds. A HEAD answer carries the body too
    (for its length) and the connection does not send it.
    """

    status: int
    headers: bytes
    body: bytes = b""
    stream: BinaryIO | None = None
    length: int = 0


@dataclass(slots=True)
class _Cached:
    path: str
    key: tuple[int, int, int]
    last_modified: str
    headers: bytes
    body: bytes


def error_response(status: int, extra: bytes = b"") -> Response:
    """A small HTML page for an error status."""
    text = f"{status} {reason(status)}"
    body = f"<!doctype html>\n<title>{text}</title>\n<h1>{text}</h1>\n".encode()
    headers = (
        b"Content-Type: text/html; charset=utf-8\r\n"
        + f"Content-Length: {len(body)}\r\n".encode()
        + extra
    )
    return Response(status, headers, body, length=len(body))


def url_parts(target: str) -> tuple[str, list[str]]:
    """Split a request target into its raw path and decoded path segments.

    Raises BadRequest for a target that is not a path (400) and for a `..`
    segment, however it was encoded (403).
    """
    if not target.startswith("/"):
        lowered = target[:8].lower()
        if not lowered.startswith(("http://", "https://")):
            raise BadRequest(400, "request target is not a path")
        # absolute-form (RFC 9112 §3.2.2): keep only the path.
        slash = target.find("/", target.index("//") + 2)
        target = target[slash:] if slash >= 0 else "/"
    raw = target.split("?", 1)[0].split("#", 1)[0]
    try:
        path = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest(400, "path is not UTF-8") from None
    if "\x00" in path:
        raise BadRequest(400, "NUL in path")
    parts = [p for p in path.split("/") if p and p != "."]
    if ".." in parts:
        raise BadRequest(403, "path leaves the served directory")
    return raw, parts


class Site:
    """A directory to serve and the name of the node it is served from."""

    def __init__(self, root: str, node_name: str) -> None:
        self.root = os.path.realpath(root)
        self.node_name = node_name
        self._root_slash = self.root.rstrip("/") + "/"
        self._cache: dict[str, _Cached] = {}
        self._cache_bytes = 0
        self._types: dict[str, str] = {}

    def respond(self, request: Request, client: str, local: str) -> Response:
        """Answer a GET or HEAD request from `client` that reached `local`."""
        try:
            raw, parts = url_parts(request.target)
        except BadRequest as exc:
            return error_response(exc.status)
        key = "/".join(parts) + ("/" if raw.endswith("/") else "")
        cached = self._cache.get(key)
        if cached is not None:
            try:
                st = os.stat(cached.path)
            except OSError:
                st = None
            if st is not None and (st.st_ino, st.st_mtime_ns, st.st_size) == cached.key:
                return self._file_hit(cached, request)
            self._forget(key)
        return self._lookup(request, raw, parts, key, client, local)

    def _lookup(
        self, request: Request, raw: str, parts: list[str], key: str, client: str, local: str
    ) -> Response:
        path = os.path.realpath(os.path.join(self.root, *parts))
        if path != self.root and not path.startswith(self._root_slash):
            return error_response(403)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return error_response(404)
        except OSError:
            return error_response(403)
        if stat.S_ISDIR(st.st_mode):
            if not raw.endswith("/"):
                query = request.target.partition("?")[2]
                location = quote(raw + "/", safe="/%") + ("?" + query if query else "")
                return error_response(301, f"Location: {location}\r\n".encode("latin-1"))
            index = os.path.join(path, "index.html")
            if os.path.isfile(index):
                return self._file(index, request, key)
            return self.node_page(path, raw, client, local)
        if stat.S_ISREG(st.st_mode):
            return self._file(path, request, key)
        return error_response(403)

    def _file(self, path: str, request: Request, key: str) -> Response:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return error_response(404)
        except OSError:
            return error_response(403)
        f = os.fdopen(fd, "rb", buffering=0)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped for a FIFO or device since stat()
            f.close()
            return error_response(403)
        last_modified = formatdate(st.st_mtime, usegmt=True)
        headers = (
            f"Content-Type: {self._type(path)}\r\n"
            f"Content-Length: {st.st_size}\r\n"
            f"Last-Modified: {last_modified}\r\n"
        ).encode("latin-1")
        if st.st_size > INLINE_MAX:
            if _not_modified(request, last_modified, st.st_mtime):
                f.close()
                return _not_modified_response(last_modified)
            return Response(200, headers, stream=f, length=st.st_size)
        with f:
            body = f.read()
        key_stat = (st.st_ino, st.st_mtime_ns, st.st_size)
        entry = _Cached(path, key_stat, last_modified, headers, body)
        if len(body) == st.st_size and len(body) <= CACHE_FILE_MAX:
            self._remember(key, entry)
        return self._file_hit(entry, request)

    def _file_hit(self, entry: _Cached, request: Request) -> Response:
        if "if-modified-since" in request.headers and _not_modified(
            request, entry.last_modified, entry.key[1] / 1e9
        ):
            return _not_modified_response(entry.last_modified)
        return Response(200, entry.headers, entry.body, length=len(entry.body))

    def _remember(self, key: str, entry: _Cached) -> None:
        if self._cache_bytes + len(entry.body) > CACHE_TOTAL_MAX:
            self._cache.clear()
            self._cache_bytes = 0
        self._forget(key)
        self._cache[key] = entry
        self._cache_bytes += len(entry.body)

    def _forget(self, key: str) -> None:
        old = self._cache.pop(key, None)
        if old is not None:
            self._cache_bytes -= len(old.body)

    def _type(self, path: str) -> str:
        ext = os.path.splitext(path)[1].lower()
        ctype = self._types.get(ext)
        if ctype is None:
            ctype = mimetypes.guess_type("x" + ext)[0] or "application/octet-stream"
            if ctype.startswith("text/"):
                ctype += "; charset=utf-8"
            self._types[ext] = ctype
        return ctype

    def node_page(self, path: str, raw: str, client: str, local: str) -> Response:
        """The page a directory without index.html gets: who answered, who asked.

        In a lab that is the point of a web server on every node: curl a node
        over IPv4 and IPv6 and see which of its addresses answered and which
        address the request came from (NAT, proxies and routing show up here).
        """
        family = "IPv6" if ":" in client else "IPv4"
        try:
            names = sorted(os.listdir(path))
        except OSError:
            names = []
        items = []
        for name in names:
            slash = "/" if os.path.isdir(os.path.join(path, name)) else ""
            link = quote(name + slash)
            items.append(f'<li><a href="{link}">{html.escape(name + slash)}</a></li>')
        node = html.escape(self.node_name)
        listing = "\n".join(items) if items else "<li><em>(empty)</em></li>"
        body = (
            "<!doctype html>\n<meta charset=utf-8>\n"
            f"<title>{node}</title>\n"
            f"<h1>{node}</h1>\n"
            f"<p>This is node <b>{node}</b>, answering on {html.escape(local)}.</p>\n"
            f"<p>You came from <b>{html.escape(client)}</b> ({family}).</p>\n"
            f"<h2>Index of {html.escape(unquote(raw))}</h2>\n<ul>\n{listing}\n</ul>\n"
            f"<hr><address>{SERVER}</address>\n"
        ).encode()
        headers = (
            b"Content-Type: text/html; charset=utf-8\r\n"
            + f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n".encode()
        )
        return Response(200, headers, body, length=len(body))


def _not_modified(request: Request, last_modified: str, mtime: float) -> bool:
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    if since == last_modified:
        return True
    try:
        return parsedate_to_datetime(since).timestamp() >= int(mtime)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False


def _not_modified_response(last_modified: str) -> Response:
    return Response(304, f"Last-Modified: {last_modified}\r\n".encode("latin-1"))
