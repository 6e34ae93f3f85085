#!/usr/bin/env python3
"""Requests/s of palmnet's web server against the two Python servers users run today.

    .venv/bin/python benchmarks/httpd.py [--duration 5] [--connections 1 64]

Servers, each started and stopped here, all serving the same 1 KiB index.html
from a temporary directory. Each binds [::1] rather than `::`, so nothing
listens beyond loopback while the benchmark runs:

- palmnet:   `python -m palmnet.httpd` (asyncio, HTTP/1.1 keep-alive)
- threaded:  `python -m http.server --bind ::1` (ThreadingHTTPServer)
- reference: benchmarks/reference_server.py, the field notes' single-threaded
             ipv6-httpd.py
- threaded11 (extra, not a baseline): http.server with `--protocol HTTP/1.1`,
             so that it keeps connections alive too; it shows how much of the
             gap is keep-alive. It does not close the gap: it writes headers
             and body in separate sends, so at one connection Nagle and
             delayed ACK stall each answer for ~40 ms.)

Load: wrk, one thread, the same keep-alive client for every server. The two
http.server based servers answer HTTP/1.0 and close after each answer (their
default protocol), so wrk reconnects for them: that is how they behave for any
browser or curl too, and part of what is measured. The same interpreter runs
them all. Readiness is the server's own "listening" line on stdout followed
by one answered request, with a deadline; nothing sleeps.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOST = "::1"
READY_DEADLINE = 15.0
SERVERS = ("palmnet", "threaded", "reference", "threaded11")


@dataclass
class Result:
    server: str
    connections: int
    rps: float
    errors: int
    non2xx: int


def free_port() -> int:
    """A port that is free on ::1 now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def server_argv(name: str, port: int, root: str) -> list[str]:
    py = sys.executable
    if name == "palmnet":
        return [py, "-m", "palmnet.httpd", root, "--bind", HOST, "--port", str(port)]
    if name == "threaded":
        return [py, "-m", "http.server", "--bind", HOST, "--directory", root, str(port)]
    if name == "threaded11":  # the same, told to keep connections alive
        return [
            *server_argv("threaded", port, root)[:-1],
            *("--protocol", "HTTP/1.1", str(port)),
        ]
    if name == "reference":
        return [py, str(HERE / "reference_server.py"), str(port), HOST]
    raise ValueError(name)


def wait_ready(proc: subprocess.Popen, port: int) -> None:
    """Wait for the first stdout line (printed after listen()), then one 200."""
    deadline = time.monotonic() + READY_DEADLINE
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], READY_DEADLINE)
    if not ready or not proc.stdout.readline():
        raise RuntimeError(f"server on port {port} did not start (exit {proc.poll()})")
    conn = http.client.HTTPConnection(HOST, port, timeout=max(0.1, deadline - time.monotonic()))
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"server on port {port} answered {response.status}")
    finally:
        conn.close()


def start(name: str, root: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        server_argv(name, port, root),
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(proc, port)
    except BaseException:
        stop(proc)
        raise
    return proc, port


def stop(proc: subprocess.Popen) -> None:
    """SIGINT (^C, which all three handle), then kill if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def wrk(port: int, connections: int, duration: int) -> tuple[float, int, int]:
    """Run wrk; return requests/s, socket errors, non-2xx/3xx answers."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "5s",
            f"http://[{HOST}]:{port}/",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors = sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non2xx = int(m.group(1)) if m else 0
    return rps, errors, non2xx


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--servers", nargs="+", default=[*SERVERS])
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="palmnet-bench-") as root:
        Path(root, "index.html").write_text(
            "<!doctype html>\n<title>bench</title>\n" + "<p>palmnet benchmark page</p>\n" * 34
        )
        for name in args.servers:
            for connections in args.connections:
                # A fresh server per run: no run inherits another's backlog or threads.
                proc, port = start(name, root)
                try:
                    rps, errors, non2xx = wrk(port, connections, args.duration)
                finally:
                    stop(proc)
                results.append(Result(name, connections, rps, errors, non2xx))
                print(f"  {name:9} c={connections:<3} {rps:10.0f} req/s", file=sys.stderr)

    base = {r.connections: r.rps for r in results if r.server == "threaded"}
    python = sys.version.split()[0]
    print(f"\nwrk -t1 -d{args.duration}s keep-alive, GET / (1 KiB), [{HOST}], Python {python}")
    header = ("server", "conns", "req/s", "errors", "non-2xx", "vs threaded")
    print("{:10} {:>5} {:>10} {:>7} {:>8} {:>12}".format(*header))
    for r in results:
        ratio = f"{r.rps / base[r.connections]:.2f}x" if base.get(r.connections) else "-"
        print(
            f"{r.server:10} {r.connections:5} {r.rps:10.0f} {r.errors:7} {r.non2xx:8} {ratio:>12}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
