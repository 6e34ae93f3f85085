"""The `docker:` node key: Docker containers inside an LXD node (issue 17).

A node on the LXD backend may list containers that palmnet runs with the
node's own dockerd (image `palmnet-docker`) each time the node starts:

    docker:
      - name: web
        image: nginx            # a `palmnet docker image build` image
        ports: ["80:80", "[::]:8080:80"]
        volumes: ["site:/var/www/html"]   # a folder next to the lab file, read-only
        command: [nginx, -g, "daemon off;"]

Port forms are Docker's own (`HOST:CONTAINER`, `ADDR:HOST:CONTAINER` with an
IPv6 address in brackets, an optional `/tcp` or `/udp`); they are parsed here,
purely, so `palmnet plan` refuses a port out of range at its line.
"""

from __future__ import annotations

import re

from palmnet.addressing.portmap import parse_port
from palmnet.topology.describe import reason, shown
from palmnet.topology.model import DockerSpec

# Docker's own rule for a container name.
CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}")
# A local image name palmnet builds: lowercase name, optional tag (no registry: none here).
IMAGE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}(:[A-Za-z0-9_.-]{1,64})?")


def parse_volume(text: str) -> tuple[str, str]:
    """`FOLDER:/PATH` (an optional `:ro`, the only mode): the folder relative to the lab
    file, the absolute path in the container."""
    parts = text.split(":")
    if len(parts) == 3 and parts[2] == "ro":
        parts = parts[:2]
    if len(parts) != 2 or not parts[0] or not parts[1].startswith("/"):
        raise ValueError(
            f"{shown(text)} is not FOLDER:/PATH (a folder next to the lab file, mounted "
            "read-only at an absolute path in the container)"
        )
    return parts[0], parts[1]


def container_problems(spec: DockerSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """What is wrong in one container entry: (key path under it, message)."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    if not CONTAINER_NAME.fullmatch(spec.name):
        rule = "[a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 63 characters"
        out.append((("name",), f"{shown(spec.name)} is not a container name ({rule})"))
    if not IMAGE_NAME.fullmatch(spec.image):
        out.append(
            (("image",), f"{shown(spec.image)} is not a local image name (lowercase NAME[:TAG])")
        )
    seen: dict[tuple[int, str], int] = {}
    for index, text in enumerate(spec.ports):
        try:
            port = parse_port(text)
        except ValueError as exc:
            out.append((("ports", index), reason(exc)))
            continue
        key = (port.host, port.proto)
        if key in seen:
            also = f"node port {port.host}/{port.proto} is also ports[{seen[key]}]"
            out.append((("ports", index), also))
        seen.setdefault(key, index)
    for index, text in enumerate(spec.volumes):
        try:
            parse_volume(text)
        except ValueError as exc:
            out.append((("volumes", index), reason(exc)))
    return out
