"""dnsmasq's lease file, as the router page shows it (what OpenWrt's LuCI lists as
"Active DHCP leases" and "Active DHCPv6 leases").

The file's lines: `EXPIRY MAC IPv4 HOSTNAME CLIENT-ID` for DHCPv4, then a
`duid SERVER-DUID` line and `EXPIRY IAID IPv6 HOSTNAME CLIENT-DUID` for DHCPv6
(dnsmasq's lease.c). A hostname of `*` means the client sent none.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class Lease:
    family: int  # 4 or 6
    address: str
    hostname: str
    client: str  # MAC (v4) or DUID (v6)
    expires: int  # seconds since the epoch; 0: never


def parse_leases(text: str) -> list[Lease]:
    out: list[Lease] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 4 or words[0] == "duid":
            continue
        try:
            expires = int(words[0])
            address = ipaddress.ip_address(words[2])
        except ValueError:
            continue  # a line this reader does not know: left out, not guessed at
        host = "" if words[3] == "*" else words[3]
        if address.version == 4:
            out.append(Lease(4, str(address), host, words[1], expires))
        else:
            out.append(Lease(6, str(address), host, words[4] if len(words) > 4 else "", expires))
    return out
