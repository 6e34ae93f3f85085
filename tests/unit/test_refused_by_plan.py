"""Inputs `up` used to fail on after `plan` accepted them: `plan` refuses them now,
exit 2 at the key that says it (an exploratory test found each)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from palmnet.errors import InputError
from palmnet.openwrt import defaults
from palmnet.plan.build import plan_lab
from palmnet.topology.loader import load_lab_text

ROUTER = """\
name: refused
networks:
  lan: {{}}
nodes:
  r:
    kind: router{extra}
    interfaces:
      {ifname}: {{network: lan, ipv6: ["2001:db8:1::1/64"], ipv4: [192.0.2.1/24], ra: true}}
  h:{host}
    interfaces:
      eth0: {{network: lan, ipv4: [192.0.2.5/24]}}
"""
ROOT = Path(__file__).resolve().parents[2]
NAT64 = "\n    nat64: {{prefix: {prefix}, pool4: 203.0.113.128/26}}"


def _lab(ifname: str = "eth0", extra: str = "", host: str = "") -> str:
    return ROUTER.format(ifname=ifname, extra=extra, host=host)


def _refused(text: str) -> InputError:
    with pytest.raises(InputError) as caught:
        plan_lab(load_lab_text(text, "lab.yaml"))
    assert caught.value.exit_code == 2
    return caught.value


@pytest.mark.parametrize(
    ("prefix", "kind"),
    [("ff0e::/96", "multicast"), ("fe80::/96", "link-local"), ("fec0::/96", "site-local")],
)
def test_nat64_prefix_tayga_calls_reserved(prefix: str, kind: str) -> None:
    err = _refused(_lab(extra=NAT64.format(prefix=prefix)))
    assert (err.line, err.key) == (7, "nodes.r.nat64.prefix")
    assert f"{prefix} is {kind}" in err.message


def test_interface_named_like_the_nat64_tun_device() -> None:
    err = _refused(_lab("nat64", NAT64.format(prefix="2001:db8:64::/96")))
    assert (err.line, err.key) == (9, "nodes.r.interfaces.nat64")
    assert "translator device" in err.message


def test_interface_named_like_the_clat_tun_device() -> None:
    text = _lab(extra=NAT64.format(prefix="2001:db8:64::/96"), host="\n    clat: true")
    text = text.replace("eth0: {network: lan, ipv4: [192.0.2.5/24]}", "clat: {network: lan}")
    err = _refused(text)
    assert err.key == "nodes.h.interfaces.clat"


def test_digits_only_interface_sending_ras() -> None:
    err = _refused(_lab("0"))
    assert (err.line, err.key) == (8, "nodes.r.interfaces.0.ra")
    assert "radvd" in err.message


@pytest.mark.parametrize(("via", "which"), [("192.0.2.255", "broadcast"), ("192.0.2.0", "network")])
def test_ipv4_next_hop_on_the_subnets_broadcast_or_network_address(via: str, which: str) -> None:
    text = _lab() + f"    routes:\n      - {{to: 198.51.100.0/24, via: {via}}}\n"
    err = _refused(text)
    assert err.key == "nodes.h.routes[0].via"
    assert f"the {which} address of 192.0.2.0/24" in err.message


def test_the_same_lab_with_good_values_plans() -> None:
    text = _lab(extra=NAT64.format(prefix="2001:db8:64::/96"))
    text += "    routes:\n      - {to: 198.51.100.0/24, via: 192.0.2.1}\n"
    assert plan_lab(load_lab_text(text, "lab.yaml")).node("h").routes


def test_a_uci_address_with_a_zone(tmp_path: Path) -> None:
    router = tmp_path / "r"
    shutil.copytree(ROOT / "examples" / "palm-router", router)
    network = (router / "network").read_text()
    (router / "network").write_text(
        network.replace(
            "option ip6addr '2001:db8:ebbd:2084::1/64'", "option ip6addr 'fe80::1%x/64'"
        )
    )
    text = "name: zoned\nnetworks:\n  lan: {}\n  wan: {}\nnodes:\n  rt:\n    kind: openwrt\n"
    text += "    uci: r\n    interfaces:\n      eth0: {network: lan}\n      eth1: {network: wan}\n"
    with pytest.raises(InputError, match="written with a zone") as caught:
        plan_lab(load_lab_text(text, str(tmp_path / "lab.yaml")))
    assert caught.value.file == str(router / "network") and caught.value.key == "lan.ip6addr"


def test_the_firewall_problems_of_every_openwrt_node_at_once(tmp_path: Path) -> None:
    """Two routers, each with its own folder and a bad value: one `plan` names both."""
    text = "name: twofw\nnetworks:\n  wan: {}\n  l1: {}\n  l2: {}\nnodes:\n"
    for name, lan in (("ra", "l1"), ("rb", "l2")):
        folder = tmp_path / name
        shutil.copytree(ROOT / "examples" / "palm-router", folder)
        stock = defaults.FIREWALL
        assert "'bad-header'" in stock
        (folder / "firewall").write_text(stock.replace("'bad-header'", "'bogus'", 1))
        text += f"  {name}:\n    kind: openwrt\n    uci: {name}\n    interfaces:\n"
        text += f"      eth0: {{network: {lan}}}\n      eth1: {{network: wan}}\n"
    with pytest.raises(InputError) as caught:
        plan_lab(load_lab_text(text, str(tmp_path / "lab.yaml")))
    said = str(caught.value)
    assert caught.value.exit_code == 2
    for name in ("ra", "rb"):
        assert f"{tmp_path / name / 'firewall'}:" in said and "'bogus'" in said, said
