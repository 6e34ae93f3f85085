"""`palmnet forward` end to end: localhost -> a link-local service inside a node.

A real lab on each backend: two hosts, `cli` (what --node names) and `srv`, on
one network with no router, so `srv` has nothing but its link-local address.
The test's servers listen on that address only, on a socket opened in `srv`'s
network namespace through the Lab API's node handle. The forwarder runs as a
real `palmnet` process in the machine's namespace, listens on localhost and
connects from inside `cli`. Nothing is created in the machine's namespace but
that loopback listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import queue
import re
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from palmnet.errors import InputError
from palmnet.kernel import nsfs
from palmnet.lab import LabAPI, plan_file
from palmnet.toolbox.forwarder import parse_target
from tests.integration.labs import run, traces, up, write_lab

PALMNET = str(Path(sys.executable).with_name("palmnet"))
DEADLINE = 20.0
LAB = """\
name: {name}
networks:
  lan: {{}}
nodes:
  cli:
    interfaces:
      eth0: {{network: lan}}
  srv:
    interfaces:
      eth0: {{network: lan}}
"""

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")


def root_test(func: Callable) -> Callable:
    return pytest.mark.root(needs_root(func))


# ---------------------------------------------------------------- no root


def test_parse_target_forms():
    t = parse_target("fe80::1%eth0", 80)
    assert (str(t.address), t.zone, t.port) == ("fe80::1", "eth0", 80)
    assert str(t) == "[fe80::1%eth0]:80"
    assert parse_target("[fe80::1%eth0]", 80).zone == "eth0"
    assert parse_target("fe80::1%25eth0", 80).zone == "eth0"  # RFC 6874 URL form
    assert parse_target("2001:db8::1", 443).zone is None
    assert str(parse_target("192.0.2.1", 80)) == "192.0.2.1:80"


@pytest.mark.parametrize(
    ("text", "port", "words"),
    [
        ("fe80::1", 80, "give its zone"),
        ("fe80::1%", 80, "empty zone"),
        ("not-an-address", 80, "not an IPv6"),
        ("ff02::1%eth0", 80, "unicast"),
        ("2001:db8::1", 0, "1..65535"),
        ("192.0.2.1%eth0", 80, "no zone"),
        ("fe80::1%a/b", 80, "not an interface name"),
        ("2001:db8::1%eth0", 80, "belongs only on scoped"),
    ],
)
def test_parse_target_rejects(text, port, words):
    with pytest.raises(InputError, match=words):
        parse_target(text, port)


def test_bad_input_exits_2_without_traceback():
    result = subprocess.run(
        [PALMNET, "forward", "8080", "fe80::1", "80"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "give its zone" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- helpers


@dataclass
class Link:
    """The lab: `cli` and `srv` on one network; the forwarders the test started."""

    lab: str
    server_ll: str  # srv's link-local address (from the plan)
    procs: list[subprocess.Popen] = field(default_factory=list)

    def netns(self, node: str) -> str:
        """The node's network namespace, from the Lab API (a path setns() takes)."""
        with LabAPI().session(self.lab) as s:
            return s.running_node(node).netns


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[tuple[str, str]]:
    name = f"fwd{backend[0]}{os.getpid() % 10000}"
    path = write_lab(tmp_path_factory.mktemp("fwd") / "lab.yaml", LAB.format(name=name))
    up(path, backend)
    try:
        yield name, str(plan_file(path).node("srv").interface("eth0").link_local.ip)
    finally:
        run("down", name, check=False)
    assert traces(name, backend) == []


@pytest.fixture
def link(lab: tuple[str, str]) -> Iterator[Link]:
    made = Link(*lab)
    try:
        yield made
    finally:
        for proc in made.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def _read_line(stream, seconds: float = DEADLINE) -> str:
    """One line from a child's pipe, or fail at the deadline."""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout=seconds):
            raise TimeoutError(f"no line within {seconds} s")
    return stream.readline()


def start_forwarder(link: Link, *args: str, node: bool = True) -> tuple[subprocess.Popen, int, str]:
    """Run `palmnet forward`, wait for its 'forwarding' line; (process, port, line)."""
    if node:
        argv = [PALMNET, "forward", "--lab", link.lab, "--node", "cli", *args]
    else:
        argv = ["nsenter", f"--net={link.netns('cli')}", PALMNET, "forward", *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    link.procs.append(proc)
    line = _read_line(proc.stdout)
    assert line.startswith("forwarding "), (line, proc.stderr.read() if proc.poll() else "")
    port = int(line.split(" -> ")[0].rsplit(":", 1)[1])
    return proc, port, line.strip()


def stop(proc: subprocess.Popen, signum: int = signal.SIGTERM) -> tuple[int, str]:
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=DEADLINE)
    return proc.returncode, err


class PeerServer:
    """A TCP server on srv's link-local address only, a thread per connection."""

    def __init__(self, netns: str, address: str, handler: Callable[[socket.socket], None]):
        with nsfs.netns(netns):
            scope = socket.if_nametoindex("eth0")
            self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 0, 0, scope))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            with conn:
                self.handler(conn)
        except BaseException as exc:
            self.errors.append(exc)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=DEADLINE)


@pytest.fixture
def peer_server(link):
    servers: list[PeerServer] = []

    def make(handler: Callable[[socket.socket], None]) -> PeerServer:
        server = PeerServer(link.netns("srv"), link.server_ll, handler)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def recv_all(conn: socket.socket) -> bytes:
    chunks = []
    while data := conn.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def digest_reply(conn: socket.socket) -> None:
    """Read to EOF, then answer the SHA-256 and the data back: needs half-close upstream."""
    conn.settimeout(DEADLINE)
    data = recv_all(conn)
    conn.sendall(hashlib.sha256(data).hexdigest().encode() + b"\n" + data)


# ---------------------------------------------------------------- root


def http_page(conn: socket.socket) -> None:
    """An HTTP/1.0 server of one page: read the request head, answer, close."""
    conn.settimeout(DEADLINE)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
            return
        head += chunk
    body = b"hello from srv's link-local\n"
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


@root_test
def test_curl_reaches_link_local_web_server_in_node(link, peer_server):
    server = peer_server(http_page)
    proc, port, line = start_forwarder(link, "0", f"{link.server_ll}%eth0", str(server.port))
    assert line.endswith(f"-> [{link.server_ll}%eth0]:{server.port} in node cli")
    for url in (f"http://localhost:{port}/", f"http://127.0.0.1:{port}/", f"http://[::1]:{port}/"):
        page = subprocess.run(
            ["curl", "-sS", "-g", "--max-time", "10", url], capture_output=True, text=True
        )
        assert page.returncode == 0, page.stderr
        assert page.stdout == "hello from srv's link-local\n"

    code, err = stop(proc)
    assert code == 0
    assert "stopped: 3 connections, 0 failed" in err


@root_test
def test_forward_from_host_namespace_without_node(link, peer_server):
    """No --node: connect from the forwarder's own namespace (here: run inside cli)."""
    server = peer_server(digest_reply)
    target = f"{link.server_ll}%eth0"
    proc, port, line = start_forwarder(link, "0", target, str(server.port), node=False)
    assert line == (
        f"forwarding 127.0.0.1:{port}, [::1]:{port} -> [{target}]:{server.port} in the host"
    )
    with nsfs.netns(link.netns("cli")):
        client = socket.create_connection(("::1", port), timeout=DEADLINE)
    with client:
        client.sendall(b"ping")
        client.shutdown(socket.SHUT_WR)
        reply = recv_all(client)
    assert reply == hashlib.sha256(b"ping").hexdigest().encode() + b"\nping"
    assert stop(proc)[0] == 0


@root_test
def test_half_close_client_first_gets_full_response(link, peer_server):
    """Request, SHUT_WR, then a 4 MiB answer after the server saw EOF."""
    server = peer_server(digest_reply)
    proc, port, _ = start_forwarder(link, "0", f"{link.server_ll}%eth0", str(server.port))
    payload = secrets.token_bytes(4 * 1024 * 1024)
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as client:
        sender = threading.Thread(
            target=lambda: (client.sendall(payload), client.shutdown(socket.SHUT_WR))
        )
        sender.start()
        reply = recv_all(client)
        sender.join()
    digest, _, echoed = reply.partition(b"\n")
    assert digest == hashlib.sha256(payload).hexdigest().encode()
    assert echoed == payload
    assert server.errors == []
    assert stop(proc)[0] == 0


@root_test
def test_half_close_server_first_still_receives_client_data(link, peer_server):
    """The server says hello and SHUT_WRs; the client reads EOF, then still sends."""
    got: queue.Queue[bytes] = queue.Queue()

    def greet_then_listen(conn: socket.socket) -> None:
        conn.settimeout(DEADLINE)
        conn.sendall(b"hello\n")
        conn.shutdown(socket.SHUT_WR)
        got.put(recv_all(conn))

    server = peer_server(greet_then_listen)
    proc, port, _ = start_forwarder(link, "0", f"{link.server_ll}%eth0", str(server.port))
    with socket.create_connection(("::1", port), timeout=DEADLINE) as client:
        assert recv_all(client) == b"hello\n"  # EOF arrived: the server half-closed
        client.sendall(b"late words")
        client.shutdown(socket.SHUT_WR)
        assert client.recv(1) == b""
    assert got.get(timeout=DEADLINE) == b"late words"
    assert stop(proc)[0] == 0


@root_test
def test_fifty_concurrent_connections(link, peer_server):
    """50 connections open at once through the forwarder (a barrier proves it)."""
    clients = 50
    barrier = threading.Barrier(clients, timeout=DEADLINE)

    def wait_for_all_then_reply(conn: socket.socket) -> None:
        conn.settimeout(DEADLINE)
        data = recv_all(conn)
        barrier.wait()  # every upstream connection is open and half-closed
        conn.sendall(hashlib.sha256(data).hexdigest().encode() + b"\n" + data)

    server = peer_server(wait_for_all_then_reply)
    proc, port, _ = start_forwarder(link, "0", f"{link.server_ll}%eth0", str(server.port))

    async def one(i: int) -> bool:
        host = "127.0.0.1" if i % 2 else "::1"
        reader, writer = await asyncio.open_connection(host, port)
        payload = secrets.token_bytes(256 * 1024)
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        reply = await reader.read()
        writer.close()
        return reply == hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload

    async def all_of_them() -> list[bool]:
        return await asyncio.wait_for(
            asyncio.gather(*(one(i) for i in range(clients))), DEADLINE * 2
        )

    assert asyncio.run(all_of_them()) == [True] * clients
    assert server.errors == []
    code, err = stop(proc)
    assert code == 0
    assert f"stopped: {clients} connections, 0 failed" in err


@root_test
def test_refused_and_reset_upstream_do_not_stop_the_forwarder(link, peer_server):
    def reset(conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    server = peer_server(reset)
    proc, port, _ = start_forwarder(link, "0", f"{link.server_ll}%eth0", str(server.port))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as client,
        contextlib.suppress(ConnectionResetError),
    ):
        assert client.recv(10) == b""
    server.close()  # now nothing listens: connection refused upstream
    with (
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as client,
        contextlib.suppress(ConnectionResetError),
    ):
        assert client.recv(10) == b""
    code, err = stop(proc)
    assert code == 0
    assert "failed: Connection refused" in err
    assert "stopped: 2 connections, 1 failed" in err


@root_test
def test_ctrl_c_cuts_idle_connections_and_exits_0(link, peer_server):
    server = peer_server(lambda conn: conn.recv(1))  # holds the connection open
    proc, port, _ = start_forwarder(link, "0", f"{link.server_ll}%eth0", str(server.port))
    with socket.create_connection(("::1", port), timeout=DEADLINE) as idle:
        idle.sendall(b"x")  # the connection is up end to end, then held open
        code, _ = stop(proc, signal.SIGINT)  # fails at DEADLINE if the exit hangs
        assert code == 0
        with contextlib.suppress(ConnectionResetError):
            assert idle.recv(1) == b""


@root_test
def test_unknown_zone_in_node_is_bad_input(link):
    result = subprocess.run(
        [PALMNET, "forward", "--lab", link.lab, "--node", "cli", "0", "fe80::1%eth9", "80"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert result.returncode == 2
    assert "no interface eth9 in node cli" in result.stderr


def test_listen_addresses():
    from palmnet.toolbox.forwarder import listen_addresses

    assert listen_addresses("localhost") == ["127.0.0.1", "::1"]
    assert listen_addresses("::1") == ["::1"]
    assert listen_addresses("[::1]") == ["::1"]
    assert listen_addresses("127.0.0.1") == ["127.0.0.1"]
    with pytest.raises(InputError, match=re.escape("--listen no-such-host.invalid")):
        listen_addresses("no-such-host.invalid")


def test_port_in_use_is_bad_input():
    from palmnet.toolbox.forwarder import Forwarder

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        forwarder = Forwarder(parse_target("fe80::1%lo", 80), port, listen="127.0.0.1")
        with pytest.raises(InputError, match=re.escape(f"cannot listen on 127.0.0.1:{port}")):
            asyncio.run(forwarder.start())
