"""The access log: one Common Log Format line per request.

`2001:db8::5 - - [09/Jul/2017:11:49:41 +0000] "GET / HTTP/1.1" 200 1234`

Lines are batched and written once per event-loop turn: a write() system call
per request would cost more than parsing the request. They still reach the file
within the same turn, so a test (or `tail -f`) sees them at once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

from palmnet.errors import InputError


def clf_time(seconds: int) -> str:
    """Local time as CLF writes it: 09/Jul/2017:11:49:41 +0000."""
    return time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(seconds))


def quote_request_line(line: str) -> str:
    """Escape what could forge a log line: quotes, backslashes, control bytes."""
    if line.isascii() and line.isprintable() and '"' not in line and "\\" not in line:
        return line
    out = []
    for ch in line:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}")
    return "".join(out)


class AccessLog:
    """Collects log lines and writes them in batches to a file or stderr."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._stream: TextIO = self._open()
        self._pending: list[str] = []
        self._second = -1
        self._stamp = ""
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> TextIO:
        if self.path is None:
            return sys.stderr
        try:
            return open(self.path, "a", encoding="utf-8")  # kept open: the log
        except OSError as exc:
            raise InputError(f"cannot open log file {self.path}: {exc.strerror}") from None

    def reopen(self) -> None:
        """Start a new file after logrotate moved the old one (SIGHUP)."""
        if self.path is None:
            return
        self.flush()
        old, self._stream = self._stream, self._open()
        old.close()

    def record(self, client: str, line: str, status: int, nbytes: int) -> None:
        """Queue the line for one answered request."""
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._stamp = clf_time(now)
        size = str(nbytes) if nbytes else "-"
        self._pending.append(
            f'{client} - - [{self._stamp}] "{quote_request_line(line)}" {status} {size}\n'
        )
        if len(self._pending) == 1:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write every queued line now."""
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a full disk or a closed stderr must not stop the server

    def close(self) -> None:
        """Flush, and close the file if it is ours."""
        self.flush()
        if self.path is not None:
            self._stream.close()
