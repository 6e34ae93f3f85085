"""ICMPv6 echo probes at a fixed interval from inside a node, each one timed.

A raw ICMPv6 socket is opened inside the node's network namespace (it stays
there) and filtered to echo replies (ICMP6_FILTER). One thread sends an echo
request every `interval` seconds on a fixed schedule and reads the replies
in between with poll(). Every probe carries the run's identifier and a
64-bit counter in its payload, so replies from other pings in the node and
16-bit sequence wrap-around cannot be confused with ours. A probe the
kernel refuses to send (no route: ENETUNREACH) counts as sent and lost.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

from palmnet.kernel import nsfs

ICMP6_FILTER = 1
ECHO_REQUEST = 128
ECHO_REPLY = 129
MAGIC = b"palmnetP"
PAYLOAD = struct.Struct("!8sQ")
HEADER = struct.Struct("!BBHHH")  # type, code, checksum (the kernel fills it), id, seq


@dataclass
class Probe:
    seq: int  # 0, 1, 2 ... (the wire carries seq & 0xffff)
    sent: float  # time.monotonic()
    replied: float | None = None
    error: str = ""  # why the kernel did not send it

    @property
    def answered(self) -> bool:
        return self.replied is not None


def _only_echo_replies() -> bytes:
    words = [0xFFFFFFFF] * 8  # a set bit blocks the type
    words[ECHO_REPLY >> 5] &= ~(1 << (ECHO_REPLY & 31))
    return struct.pack("=8I", *words)


def echo_request(ident: int, seq: int) -> bytes:
    return HEADER.pack(ECHO_REQUEST, 0, 0, ident, seq & 0xFFFF) + PAYLOAD.pack(MAGIC, seq)


def parse_reply(data: bytes, ident: int) -> int | None:
    """The counter of one of our echo replies, None for anything else."""
    if len(data) < HEADER.size + PAYLOAD.size:
        return None
    kind, _code, _sum, rid, _seq = HEADER.unpack_from(data)
    if kind != ECHO_REPLY or rid != ident:
        return None
    magic, counter = PAYLOAD.unpack_from(data, HEADER.size)
    return counter if magic == MAGIC else None


class EchoProber:
    """`start()`, read `probes` (or `answered_since`) while it runs, `stop()`."""

    def __init__(self, netns_path: str, destination: str, interval: float) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.destination = destination
        self.interval = interval
        self.ident = (os.getpid() ^ int.from_bytes(os.urandom(2), "big")) & 0xFFFF
        self.probes: list[Probe] = []
        self._lock = threading.Lock()
        self._answer = threading.Condition(self._lock)
        self._stop_sending = threading.Event()
        self._stop_r, self._stop_w = socket.socketpair()
        self._thread: threading.Thread | None = None
        self._grace = 1.0
        with nsfs.netns(netns_path):
            self.sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        self.sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, _only_echo_replies())
        self.sock.setblocking(False)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)
        self._thread.start()

    def _send(self, seq: int) -> None:
        probe = Probe(seq, time.monotonic())
        try:
            self.sock.sendto(echo_request(self.ident, seq), (self.destination, 0))
        except OSError as exc:
            probe.error = errno.errorcode.get(exc.errno or 0, str(exc))
        with self._lock:
            self.probes.append(probe)

    def _receive(self) -> None:
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                return
            now = time.monotonic()
            counter = parse_reply(data, self.ident)
            if counter is None:
                continue
            with self._lock:
                if counter < len(self.probes) and self.probes[counter].replied is None:
                    self.probes[counter].replied = now
                    self._answer.notify_all()

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(self._stop_r.fileno(), select.POLLIN)
        seq = 0
        next_at = time.monotonic()
        deadline: float | None = None
        # poll: a fixed-interval probe schedule; replies are read as they arrive
        while True:
            now = time.monotonic()
            if deadline is None and self._stop_sending.is_set():
                deadline = now + self._grace
            if deadline is None and now >= next_at:
                self._send(seq)
                seq += 1
                next_at += self.interval
                if next_at < now:  # fell behind (a stall): keep the pace, skip the backlog
                    next_at = now + self.interval
                continue
            if deadline is not None and (now >= deadline or self._all_answered()):
                return
            wait = (deadline if deadline is not None else next_at) - now
            for fd, _ in poller.poll(max(0.0, wait) * 1000):
                if fd == self.sock.fileno():
                    self._receive()
                else:
                    self._stop_r.recv(16)

    def _all_answered(self) -> bool:
        with self._lock:
            return all(p.answered or p.error for p in self.probes)

    # -- readers (any thread) ---------------------------------------------------------
    def snapshot(self) -> list[Probe]:
        with self._lock:
            return [Probe(p.seq, p.sent, p.replied, p.error) for p in self.probes]

    def wait_answers(self, after: float, timeout: float, count: int = 1) -> bool:
        """Wait until `count` probes sent at or after `after` (monotonic) are answered."""
        deadline = time.monotonic() + timeout
        with self._answer:
            while True:
                answered = 0
                for p in reversed(self.probes):
                    if p.sent < after:
                        break
                    answered += p.answered
                if answered >= count:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._answer.wait(left)

    def stop(self, grace: float = 1.0) -> None:
        """Stop sending; wait up to `grace` seconds for replies still on their way."""
        self._grace = grace
        self._stop_sending.set()
        self._stop_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=grace + 5)
            self._thread = None
        self.close()

    def close(self) -> None:
        self.sock.close()
        self._stop_r.close()
        self._stop_w.close()
