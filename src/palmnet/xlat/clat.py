"""The CLAT of a host (RFC 6877), run inside the node: find the PLAT's prefix, then
hand the host's IPv4 to a stateless TAYGA.

clatd, the usual CLAT for Linux, is not in Debian 12; it is itself a wrapper
around TAYGA, and this is the same wrapper, small:

1. discover the NAT64 prefix as RFC 7050 says: the AAAA answers for
   `ipv4only.arpa` from the host's own resolver (learnt from the RA by
   rdnssd), the well-known 192.0.0.170/171 found in them (addressing/nat64.py),
   retried until a deadline (the resolver may not have heard the RA yet);
2. write TAYGA's config: the host's IPv4 address 192.0.0.1 (RFC 7335) mapped to
   the CLAT's own IPv6 address (the plan's, in the uplink's /64), everything
   else of IPv4 into the discovered prefix;
3. the tun device `clat` up with 192.0.0.1/29, an IPv4 default route into it
   (MTU: the uplink's less 20, the IPv6 header being 20 bytes longer), the
   CLAT address routed into it and answered for on the uplink (proxy ND,
   as clatd does); the host forwards between them (plan/sysctls.py);
4. exec TAYGA in the foreground, so the supervisor watches TAYGA itself.

Usage: python -m palmnet.xlat.clat PARAMS.json
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from palmnet.addressing.nat64 import IPV4ONLY_NAME, discover_prefix

DISCOVERY_TIMEOUT = 25.0  # seconds: below the runner's readiness deadline (30 s)
DISCOVERY_RETRY = 0.2
IPV6_OVER_IPV4 = 20  # an IPv6 header is 20 bytes longer than an IPv4 one


def synthesised(name: str = IPV4ONLY_NAME) -> list[ipaddress.IPv6Address]:
    """AAAA answers for `name` from the node's resolver (none: an empty list)."""
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET6, socket.SOCK_DGRAM)
    except OSError:
        return []
    return [ipaddress.IPv6Address(str(info[4][0]).split("%")[0]) for info in infos]


def discover(timeout: float = DISCOVERY_TIMEOUT) -> ipaddress.IPv6Network:
    """The PLAT prefix by RFC 7050, waiting for the resolver up to `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        prefix = discover_prefix(synthesised())
        if prefix is not None:
            return prefix
        if time.monotonic() > deadline:
            resolv = Path("/etc/resolv.conf").read_text(errors="replace").strip()
            raise SystemExit(
                f"clat: no NAT64 prefix after {timeout:g} s: {IPV4ONLY_NAME} has no "
                f"synthesised AAAA answer (RFC 7050); resolver: {resolv!r}"
            )
        time.sleep(DISCOVERY_RETRY)  # poll: no signal when the resolver learns its server


def tayga_config(params: dict[str, str], prefix: ipaddress.IPv6Network) -> str:
    host4 = ipaddress.IPv4Interface(params["ipv4"]).ip
    return "\n".join(
        [
            "# TAYGA as this host's CLAT, written by palmnet (prefix by RFC 7050)",
            f"tun-device {params['device']}",
            f"ipv4-addr {params['translator4']}",
            f"prefix {prefix}",
            f"map {host4} {params['ipv6']}",
            f"data-dir {params['dir']}",
            "",
        ]
    )


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True)


def set_up(params: dict[str, str], conf: Path) -> None:
    device, uplink = params["device"], params["uplink"]
    subprocess.run(["tayga", "--config", str(conf), "--mktun"], check=True)
    mtu = int(Path(f"/sys/class/net/{uplink}/mtu").read_text()) - IPV6_OVER_IPV4
    _ip("link", "set", device, "mtu", str(mtu), "up")
    _ip("address", "replace", params["ipv4"], "dev", device)
    _ip("route", "replace", "default", "dev", device)
    _ip("-6", "route", "replace", f"{params['ipv6']}/128", "dev", device)
    _ip("-6", "neigh", "replace", "proxy", params["ipv6"], "dev", uplink)


def main(argv: list[str]) -> None:
    params = json.loads(Path(argv[1]).read_text())
    prefix = discover()
    print(f"clat: NAT64 prefix {prefix} (RFC 7050, {IPV4ONLY_NAME})", flush=True)
    conf = Path(params["dir"]) / "tayga.conf"
    conf.write_text(tayga_config(params, prefix))
    set_up(params, conf)
    os.execvp("tayga", ["tayga", "--config", str(conf), "--nodetach"])


if __name__ == "__main__":
    main(sys.argv)
