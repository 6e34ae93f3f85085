"""A published Docker port (`80:80`, `[::]:8080:80/udp`), parsed purely.

Here rather than beside the `docker:` key (topology/docker.py) because the plan
holds PortMaps and the plan model is imported inside containers (LXD nodes run
palmnet's hooks from a zip, with no pydantic): nothing here may import the
topology model.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_PORT = re.compile(
    r"(?:(?:\[(?P<v6>[^\]]+)\]|(?P<v4>\d+\.\d+\.\d+\.\d+)):)?(?:(?P<host>\d+):)?(?P<ctr>\d+)"
)


@dataclass(frozen=True)
class PortMap:
    """A published port: `host_ip` (None: every address) : `host` -> container `port`."""

    host: int
    port: int
    proto: str = "tcp"
    host_ip: str | None = None

    def docker_arg(self) -> str:
        """The `docker run -p` argument (IPv6 in brackets, as Docker wants it)."""
        ip = self.host_ip
        where = "" if ip is None else (f"[{ip}]:" if ":" in ip else f"{ip}:")
        return f"{where}{self.host}:{self.port}/{self.proto}"


def parse_port(text: str) -> PortMap:
    """`80:80`, `[::]:80:80`, `192.0.2.1:8080:80/udp`, `80` (the same port on the node).
    ValueError says what is wrong and what would be valid."""
    body, _, proto = text.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise ValueError(f"protocol {proto!r} is not tcp or udp")
    match = _PORT.fullmatch(body)
    if match is None:
        raise ValueError(
            f"{text!r} is not a port mapping (HOST:CONTAINER, [ADDR]:HOST:CONTAINER, "
            "with an optional /tcp or /udp)"
        )
    host_ip = match["v6"] or match["v4"]
    if host_ip is not None:
        try:
            host_ip = str(ipaddress.ip_address(host_ip))
        except ValueError:
            raise ValueError(f"{host_ip!r} is not an IP address") from None
    ports = []
    for key in ("host", "ctr"):
        if match[key] is None:
            continue
        value = int(match[key])
        if not 1 <= value <= 65535:
            raise ValueError(f"port {value} is out of range (1-65535)")
        ports.append(value)
    container = ports[-1]
    return PortMap(host=ports[0], port=container, proto=proto, host_ip=host_ip)
