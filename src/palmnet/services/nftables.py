"""An openwrt node's firewall: fw4 semantics compiled from its UCI files, loaded
with one `nft -f -` in the node's network namespace, for every backend.

The host's nft runs in the node's namespace (the kernel's nftables is the same
whichever binary talks to it), so a container image needs no nft of its own.
Loading is atomic: nft commits the file as one transaction or not at all.
"""

from __future__ import annotations

from palmnet.errors import LabError
from palmnet.kernel.processes import run_in_netns
from palmnet.plan.model import NodePlan


def ruleset(node: NodePlan) -> str:
    """The nft text of the node's /etc/config/firewall, as fw4 would make it."""
    from palmnet.openwrt.fw4 import compile_firewall
    from palmnet.openwrt.uci import parse
    from palmnet.openwrt.zones import zone_devices

    files = dict(node.uci)
    network = parse(files["network"], "network", file="/etc/config/network")
    firewall = parse(files["firewall"], "firewall", file="/etc/config/firewall")
    return compile_firewall(firewall, zone_devices(network)).nft_text


def load(node: NodePlan, netns_path: str, text: str | None = None) -> None:
    """Load the node's firewall (or `text`) into its network namespace."""
    try:
        proc = run_in_netns(netns_path, ["nft", "-f", "-"], text or ruleset(node), timeout=30)
    except FileNotFoundError:
        raise LabError("nft is not installed (Debian: apt install nftables)") from None
    if proc.returncode != 0:
        raise LabError(f"{node.name}: nft refused the firewall: {proc.stderr.strip()}")
