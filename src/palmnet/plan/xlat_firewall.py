"""The NAT64 translator's tun device in an `openwrt` node's firewall, in UCI.

fw4 drops what is forwarded to or from a device in no zone, so the tun device
TAYGA translates through (`nat64`) becomes a zone of its own, appended to
/etc/config/firewall as a package's install would: the LAN zones forward into
it (IPv6 towards the prefix) and it forwards to the WAN zone (the translated
IPv4). Replies and ICMP errors (Packet Too Big, Fragmentation Needed) are
related traffic, which fw4 accepts before any zone rule.

The WAN zone still masquerades: pool4 is kept from it by a NAT rule outside
fw4 (services/tayga.py), because fw4 has no "do not masquerade" for one source
short of rewriting the user's wan zone (`masq_src`).
"""

from __future__ import annotations

from palmnet.openwrt.uci import quote

NAT64_ZONE = "nat64"
NAT64_DEVICE = "nat64"


def nat64_zone(lan_zones: list[str], wan_zone: str | None) -> str:
    """UCI sections for the translator's zone and its forwardings."""
    lines = [
        "",
        f"# added by palmnet: the NAT64 translator (TAYGA's tun device {NAT64_DEVICE})",
        "config zone",
        f"\toption name {quote(NAT64_ZONE)}",
        f"\tlist device {quote(NAT64_DEVICE)}",
        "\toption input 'ACCEPT'",
        "\toption output 'ACCEPT'",
        "\toption forward 'REJECT'",
        "",
    ]
    pairs = [(lan, NAT64_ZONE) for lan in lan_zones]
    if wan_zone is not None:
        pairs.append((NAT64_ZONE, wan_zone))
    for src, dest in pairs:
        lines += [
            "config forwarding",
            f"\toption src {quote(src)}",
            f"\toption dest {quote(dest)}",
            "",
        ]
    return "\n".join(lines)
