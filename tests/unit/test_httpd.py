"""palmnet's web server, run as `python -m palmnet.httpd` on loopback.

Servers run in a subprocess, as a lab node runs them; each test waits for the
server's "serving ... on URL" line (printed after listen()) with a deadline,
never a sleep. Access-log assertions read the log after SIGTERM, which also
checks that a stop flushes it and exits 0.
"""

from __future__ import annotations

import http.client
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from palmnet.errors import InputError
from palmnet.httpd.accesslog import quote_request_line
from palmnet.httpd.http11 import BadRequest, parse_head
from palmnet.httpd.listen import client_host, parse_bind
from palmnet.httpd.site import url_parts

DEADLINE = 20.0
"""Generous upper bound for anything a test waits on; not a speed assertion."""


class Server:
    """A `python -m palmnet.httpd` process and the port it listens on."""

    def __init__(self, root: Path, *args: str) -> None:
        # stderr (the default access log) goes to a file: a pipe nobody reads
        # would fill up and stall the server, as it would any program.
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "palmnet.httpd", str(root), "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], DEADLINE)
        line = self.proc.stdout.readline() if ready else ""
        match = re.search(r"http://\[?([^\]/]+?)\]?:(\d+)/", line)
        if not match:
            errors = self.errors()
            self.stop()
            raise AssertionError(f"server did not start: {line!r} {errors}")
        self.port = int(match.group(2))

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self) -> int:
        """SIGTERM; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=DEADLINE)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.communicate()
            self.stderr.close()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("httpd")
    (base / "secret.txt").write_text("TOP SECRET\n")
    root = base / "www"
    (root / "site").mkdir(parents=True)
    (root / "site" / "index.html").write_text("<h1>site index</h1>\n")
    (root / "hello.txt").write_text("hello, world\n")
    (root / "sub").mkdir()
    (root / "sub" / "a.txt").write_text("a\n")
    (root / "escape").symlink_to(base / "secret.txt")
    (root / "big.bin").write_bytes(bytes(range(256)) * (3 * 4096 + 7))  # streamed, > 1 MiB
    return root


@pytest.fixture(scope="module")
def server(tree: Path) -> Iterator[Server]:
    srv = Server(tree, "--bind", "::1", "--name", "w1")
    yield srv
    srv.stop()


def get(port: int, path: str, host: str = "::1", method: str = "GET") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=DEADLINE)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def raw(port: int, data: bytes) -> bytes:
    """Send bytes on a fresh connection and read until the server closes it."""
    with socket.create_connection(("::1", port), timeout=DEADLINE) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# -- serving ------------------------------------------------------------------------


def test_ipv4_and_ipv6_clients_share_one_socket(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    log = tmp_path / "access.log"
    # Bound to :: for the dual-stack socket; the clients are loopback only.
    srv = Server(tmp_path / "www", "--bind", "::", "--name", "dual", "--log", str(log))
    try:
        status4, body4 = get(srv.port, "/", host="127.0.0.1")
        status6, body6 = get(srv.port, "/", host="::1")
    finally:
        assert srv.stop() == 0
    assert (status4, status6) == (200, 200)
    assert b"You came from <b>127.0.0.1</b> (IPv4)" in body4
    assert b"You came from <b>::1</b> (IPv6)" in body6
    assert b"dual" in body4
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("127.0.0.1 - - [")  # not ::ffff:127.0.0.1
    assert lines[1].startswith("::1 - - [")
    assert lines[0].endswith(f'"GET / HTTP/1.1" 200 {len(body4)}')


def test_file_and_directory_index(server: Server) -> None:
    assert get(server.port, "/hello.txt") == (200, b"hello, world\n")
    assert get(server.port, "/site/") == (200, b"<h1>site index</h1>\n")
    status, body = get(server.port, "/")
    assert status == 200
    assert b"<h1>w1</h1>" in body and b"You came from <b>::1</b>" in body
    assert b'href="hello.txt"' in body and b'href="sub/"' in body


def test_large_file_is_streamed_whole(server: Server, tree: Path) -> None:
    expected = (tree / "big.bin").read_bytes()
    conn = http.client.HTTPConnection("::1", server.port, timeout=DEADLINE)
    try:
        conn.request("HEAD", "/big.bin")
        head = conn.getresponse()
        assert head.getheader("Content-Length") == str(len(expected)) and head.read() == b""
        for _ in range(2):  # and the connection is reusable after a streamed body
            conn.request("GET", "/big.bin")
            assert conn.getresponse().read() == expected
    finally:
        conn.close()


def test_directory_without_slash_redirects(server: Server) -> None:
    response = raw(server.port, b"GET /site?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 301 ")
    assert b"\r\nLocation: /site/?x=1\r\n" in response


def test_missing_file_is_404(server: Server) -> None:
    assert get(server.port, "/nope.html")[0] == 404
    assert get(server.port, "/hello.txt/more")[0] == 404


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/sub/%2E%2E/%2E%2E/secret.txt",
        "/escape",
        "../secret.txt",
    ],
)
def test_path_traversal_is_refused(server: Server, target: str) -> None:
    response = raw(
        server.port, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    status = int(response.split(b" ", 2)[1])
    assert status in (400, 403)
    assert b"TOP SECRET" not in response


def test_head_has_headers_but_no_body(server: Server) -> None:
    conn = http.client.HTTPConnection("::1", server.port, timeout=DEADLINE)
    try:
        conn.request("HEAD", "/hello.txt")
        head = conn.getresponse()
        assert head.status == 200
        assert head.getheader("Content-Length") == "13"
        assert head.read() == b""
        # Had the server sent a body after HEAD, this answer would be garbage.
        conn.request("GET", "/hello.txt")
        assert conn.getresponse().read() == b"hello, world\n"
    finally:
        conn.close()


def test_keep_alive_two_requests_on_one_connection(server: Server) -> None:
    conn = http.client.HTTPConnection("::1", server.port, timeout=DEADLINE)
    try:
        conn.request("GET", "/hello.txt")
        first = conn.getresponse()
        assert first.read() == b"hello, world\n" and not first.will_close
        sock = conn.sock
        conn.request("GET", "/sub/a.txt")
        second = conn.getresponse()
        assert second.read() == b"a\n"
        assert conn.sock is sock  # the same TCP connection, not a reconnect
    finally:
        conn.close()


def test_pipelined_requests_answered_in_order(server: Server) -> None:
    response = raw(
        server.port,
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /sub/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert response.count(b"HTTP/1.1 200 OK") == 2
    assert response.index(b"hello, world") < response.index(b"\r\n\r\na\n")


def test_http10_closes_and_unknown_method_is_405(server: Server) -> None:
    response = raw(server.port, b"GET /hello.txt HTTP/1.0\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200 OK") and response.endswith(b"hello, world\n")
    response = raw(
        server.port, b"DELETE /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert response.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD" in response


def test_malformed_request_is_400_not_a_hang(server: Server) -> None:
    assert raw(server.port, b"this is not http\r\n\r\n").startswith(b"HTTP/1.1 400 ")


# -- concurrency and timeouts ---------------------------------------------------------


def test_idle_client_does_not_delay_others(server: Server) -> None:
    idle = socket.create_connection(("::1", server.port), timeout=DEADLINE)
    half = socket.create_connection(("::1", server.port), timeout=DEADLINE)
    half.sendall(b"GET /hello.txt HTTP/1.1\r\nHost:")  # a head that never ends
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(lambda _: get(server.port, "/hello.txt"), range(20)))
        assert results == [(200, b"hello, world\n")] * 20
        # Both slow clients are still connected: nothing was served by dropping them.
        for s in (idle, half):
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.recv(1)
    finally:
        idle.close()
        half.close()


def test_idle_client_times_out(tree: Path) -> None:
    srv = Server(tree, "--bind", "::1", "--timeout", "0.5")
    try:
        with socket.create_connection(("::1", srv.port), timeout=DEADLINE) as idle:
            assert idle.recv(1) == b""  # closed by the server, well before DEADLINE
        with socket.create_connection(("::1", srv.port), timeout=DEADLINE) as slow:
            slow.sendall(b"GET / HTTP/1.1\r\n")
            assert slow.recv(100).startswith(b"HTTP/1.1 408 ")
    finally:
        assert srv.stop() == 0


def test_client_that_stops_reading_is_reset(tree: Path) -> None:
    srv = Server(tree, "--bind", "::1", "--timeout", "0.5")
    try:
        with socket.create_connection(("::1", srv.port), timeout=DEADLINE) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            requests = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n" * 1000
            with pytest.raises((ConnectionResetError, BrokenPipeError)):
                for _ in range(100_000):  # sends block once the server stops reading
                    s.sendall(requests)
    finally:
        assert srv.stop() == 0


def test_access_log_lines(tree: Path) -> None:
    log = tree.parent / "private.log"
    srv = Server(tree, "--bind", "::1", "--log", str(log))
    try:
        get(srv.port, "/nope")
        raw(srv.port, b'GET /"x" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    finally:
        assert srv.stop() == 0
    lines = log.read_text().splitlines()
    assert re.fullmatch(r'::1 - - \[[^]]+\] "GET /nope HTTP/1.1" 404 \d+', lines[0])
    assert '"GET /\\"x\\" HTTP/1.1"' in lines[1]


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent-dir"], "not a directory"),
        ([".", "--bind", "not-an-address"], "not an IP address"),
        ([".", "--bind", "fe80::1"], "needs a zone"),
        ([".", "--bind", "fe80::1%nosuchif0"], "no interface"),
        ([".", "--port", "70000"], "not in 0..65535"),
    ],
)
def test_bad_input_exits_2_with_a_message(args: list[str], message: str) -> None:
    for argv in (
        [sys.executable, "-m", "palmnet", "serve", *args],
        [sys.executable, "-m", "palmnet.httpd", *args],
    ):
        if "--port" not in args:
            argv += ["--port", "0"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=DEADLINE)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr
        assert "Traceback" not in done.stderr


def test_port_in_use_is_input_error(server: Server) -> None:
    with pytest.raises(InputError, match="already in use"):
        from palmnet.httpd.server import HttpServer

        HttpServer(".", server.port, "::1")


# -- pure pieces --------------------------------------------------------------------


def test_parse_bind() -> None:
    assert parse_bind("::", 80) == (socket.AF_INET6, ("::", 80, 0, 0))
    assert parse_bind("[::1]", 8080)[1][:2] == ("::1", 8080)
    assert parse_bind("127.0.0.1", 80) == (socket.AF_INET, ("127.0.0.1", 80))
    family, addr = parse_bind("fe80::1%lo", 80)
    assert family == socket.AF_INET6 and addr[3] == socket.if_nametoindex("lo")


def test_client_host() -> None:
    assert client_host(("::ffff:192.0.2.7", 5, 0, 0)) == "192.0.2.7"
    assert client_host(("2001:db8::5", 5, 0, 0)) == "2001:db8::5"
    lo = socket.if_nametoindex("lo")
    assert client_host(("fe80::1", 5, 0, lo)) == "fe80::1%lo"
    assert client_host(("192.0.2.7", 5)) == "192.0.2.7"


def test_parse_head() -> None:
    r = parse_head(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close")
    assert (r.method, r.target, r.keep_alive, r.has_body) == ("GET", "/x", False, False)
    assert parse_head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive").keep_alive
    assert parse_head(b"GET / HTTP/1.1\r\nContent-Length: 3").has_body
    for bad, status in [
        (b"GET /", 400),
        (b"GET / HTTP/2.0", 505),
        (b"GET / HTTP/1.1\r\nHost : a", 400),
        (b"GET / HTTP/1.1\r\n folded", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: -1", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2", 400),
    ]:
        with pytest.raises(BadRequest) as info:
            parse_head(bad)
        assert info.value.status == status


def test_url_parts() -> None:
    assert url_parts("/a/./b//c?q=1") == ("/a/./b//c", ["a", "b", "c"])
    assert url_parts("http://host:80/x")[1] == ["x"]
    for target in ("/../x", "/a/%2e%2e/x", "/a/..%2F..%2Fx"):
        with pytest.raises(BadRequest) as info:
            url_parts(target)
        assert info.value.status == 403


def test_log_line_cannot_be_forged() -> None:
    assert quote_request_line('GET /"a\\ HTTP/1.1') == 'GET /\\"a\\\\ HTTP/1.1'
    assert quote_request_line("GET /\n127.0.0.1 HTTP/1.1") == "GET /\\x0a127.0.0.1 HTTP/1.1"
