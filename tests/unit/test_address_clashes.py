"""Addresses only the plan sees held twice are refused by `plan` (plan/address_clashes.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from palmnet.plan.build import plan_lab
from palmnet.topology.loader import load_lab_text
from palmnet.topology.problems import TopologyError

ROOT = Path(__file__).resolve().parents[2]
LAN = """\
name: clash
networks:
  lan: {}
  other: {}
nodes:
  r:
    kind: router
    interfaces:
      eth0: {network: lan, ipv6: ["2001:db8:1::1/64", "fe80::1/64"], ra: true}
  h:
    interfaces:
      eth0: {network: lan}
"""


def _plan(text: str, filename: str = "lab.yaml") -> object:
    return plan_lab(load_lab_text(text, filename))


def test_static_address_equal_to_a_hosts_slaac_address_is_refused() -> None:
    slaac = _plan(LAN).node("h").interfaces[0].ipv6_slaac[0]  # type: ignore[attr-defined]
    text = LAN + f"  g:\n    interfaces:\n      eth0: {{network: lan, ipv6: ['{slaac}']}}\n"
    with pytest.raises(TopologyError) as caught:
        _plan(text)
    err = caught.value
    assert err.exit_code == 2
    assert err.line == 15 and err.key == "nodes.g.interfaces.eth0"
    assert f"{slaac.ip} would be held twice" in err.message
    assert "h.eth0 (SLAAC from MAC" in err.message and "g.eth0 (static)" in err.message


def test_one_uci_folder_on_two_openwrt_nodes_is_refused_at_their_uci_key(
    tmp_path: Path,
) -> None:
    shutil.copytree(ROOT / "examples" / "palm-router", tmp_path / "ok")
    node = "    kind: openwrt\n    uci: ok\n    interfaces:\n      eth0: {network: lan}\n"
    node += "      eth1: {network: other}\n"
    text = LAN + "  ra:\n" + node + "  rb:\n" + node
    with pytest.raises(TopologyError) as caught:
        _plan(text, str(tmp_path / "lab.yaml"))
    lines = str(caught.value).splitlines()
    assert all(":21: nodes.rb.uci: " in line for line in lines), lines
    assert any("by ra.br-lan (from its UCI network file) and by rb.br-lan" in s for s in lines)


def test_openwrt_node_with_count_holds_its_uci_addresses_twice(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "palm-router", tmp_path / "ok")
    text = LAN + "  gw:\n    kind: openwrt\n    count: 2\n    uci: ok\n"
    text += "    interfaces:\n      eth0: {network: lan}\n      eth1: {network: other}\n"
    with pytest.raises(TopologyError, match=r"by gw1\.br-lan .* and by gw2\.br-lan"):
        _plan(text, str(tmp_path / "lab.yaml"))


def test_the_same_link_local_address_on_different_links_is_fine() -> None:
    text = LAN + (
        "  r2:\n    kind: router\n    interfaces:\n"
        "      eth0: {network: other, ipv6: ['2001:db8:2::1/64', 'fe80::1/64']}\n"
    )
    plan = _plan(text)
    for name in ("r", "r2"):
        held = plan.node(name).interfaces[0].ipv6_static  # type: ignore[attr-defined]
        assert "fe80::1/64" in {str(a) for a in held}


def test_the_same_private_ipv4_lan_behind_two_routers_is_fine() -> None:
    """Two openwrt nodes on OpenWrt's stock network: 198.51.100.1 on each br-lan and
    leases from each LAN's own range, on two separate LANs, as NAT makes it run."""
    node = "    kind: openwrt\n    interfaces:\n      eth0: {{network: {lan}}}\n"
    node += "      eth1: {{network: lan}}\n"
    hosts = "".join(
        f"  h{lan}:\n    count: 12\n    interfaces:\n      eth0: {{network: {lan}}}\n"
        for lan in ("l1", "l2")
    )
    text = LAN.replace("  other: {}\n", "  l1: {}\n  l2: {}\n")
    text += "  ra:\n" + node.format(lan="l1") + "  rb:\n" + node.format(lan="l2") + hosts
    plan = _plan(text)
    lans = {n: plan.node(n).interface("br-lan").ipv4_static for n in ("ra", "rb")}  # type: ignore[attr-defined]
    assert lans["ra"] == lans["rb"]  # the same stock LAN address, on two links
