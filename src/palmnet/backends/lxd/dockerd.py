"""dockerd's API, read from the host over its unix socket in a node.

The socket is reached through the container's root (/proc/INIT/root/run/docker.sock),
so readiness and `ls` need neither an exec nor a docker client on the host.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

from palmnet.errors import LabError


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("docker", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def api_get(init: int, socket_path: str, path: str) -> Any:
    """GET from dockerd's API on its socket, reached from the host through the
    container's root; the JSON body, None for a 404. (Read this way, not with `docker
    inspect` through LXD's exec: LXD 5.0's recorded output of `docker inspect` and
    `docker ps --format` came back empty here, while the same command in a shell
    after an `echo` did not.)"""
    conn = _UnixHTTP(f"/proc/{init}/root{socket_path}")
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status == 404:
        return None
    if response.status != 200:
        raise LabError(f"dockerd: GET {path}: {response.status} {body[:200]!r}")
    return json.loads(body)


def ping(init: int, socket_path: str) -> bool:
    """dockerd answers `GET /_ping` on its socket."""
    conn = _UnixHTTP(f"/proc/{init}/root{socket_path}")
    try:
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()
