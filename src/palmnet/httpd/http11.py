"""The HTTP/1.1 request reader: one request head in, a `Request` out.

Small on purpose. The server only serves files (GET/HEAD), so it needs the
request line, the headers that decide framing and persistence (Connection,
Content-Length, Transfer-Encoding) and If-Modified-Since. Anything it cannot
frame safely is refused with a status and the connection is closed, instead of
guessing where the next request starts (request smuggling starts with guesses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus

# RFC 9110 token characters: what a method name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

MAX_HEAD = 16 * 1024
"""Largest request head (request line + headers) accepted, in bytes."""

MAX_HEADERS = 100


class BadRequest(Exception):
    """The request cannot be answered normally; `status` says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class Request:
    """One parsed request head. Header names are lower case."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    keep_alive: bool
    has_body: bool
    line: str


def parse_head(head: bytes) -> Request:
    """Parse a request head (without its final empty line).

    Latin-1 decoding never fails and keeps every byte, so a bad byte in a
    header reaches the checks below instead of raising somewhere else.
    """
    lines = head.decode("latin-1").split("\r\n")
    line = lines[0]
    parts = line.split(" ")
    if len(parts) != 3:
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if not _TOKEN.fullmatch(method) or not target:
        raise BadRequest(400, "malformed request line")
    if version != "HTTP/1.1" and version != "HTTP/1.0":
        if version.startswith("HTTP/"):
            raise BadRequest(505, "HTTP version not supported")
        raise BadRequest(400, "malformed request line")
    if len(lines) > MAX_HEADERS + 1:
        raise BadRequest(431, "too many header fields")

    headers: dict[str, str] = {}
    for field in lines[1:]:
        name, colon, value = field.partition(":")
        # No whitespace before the colon (RFC 9112 §5.1), no obsolete line folding.
        if not colon or not name or name[-1] in " \t" or name[0] in " \t":
            raise BadRequest(400, "malformed header field")
        name = name.lower()
        value = value.strip(" \t")
        if name in headers:
            if name == "content-length" and headers[name] != value:
                raise BadRequest(400, "conflicting Content-Length")
            if name != "content-length":
                headers[name] = headers[name] + ", " + value
        else:
            headers[name] = value

    connection = headers.get("connection", "")
    tokens = {t.strip().lower() for t in connection.split(",")} if connection else set()
    # HTTP/1.1 persists unless told to close; HTTP/1.0 only when asked to.
    keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens

    has_body = False
    if "transfer-encoding" in headers:
        has_body = True
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit() or not length.isascii():
            raise BadRequest(400, "bad Content-Length")
        has_body = has_body or int(length) > 0

    return Request(method, target, version, headers, keep_alive, has_body, line)


def reason(status: int) -> str:
    """The reason phrase for a status code."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


STATUS_LINES: dict[int, bytes] = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode("ascii") for s in HTTPStatus
}
"""Pre-encoded status lines; the server always answers as HTTP/1.1 (RFC 9110 §6.2)."""
