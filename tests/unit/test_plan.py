"""The plan layer, pure: golden plans of the examples, MAC clashes, names."""

from __future__ import annotations

import ipaddress
import json
import os
import random
from pathlib import Path

import pytest

from palmnet.addressing.eui64 import eui64_address
from palmnet.addressing.mac import assign_macs, stable_mac
from palmnet.backends.netns.names import outer_names
from palmnet.plan.build import plan_lab
from palmnet.topology.loader import load_lab, load_lab_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ["farm", "palm", "cascade", "ipv6only", "lan"]
GOLDEN = ROOT / "tests" / "golden" / "plan"


@pytest.mark.parametrize("name", EXAMPLES)
def test_plan_of_example_matches_golden(name: str) -> None:
    plan = plan_lab(load_lab(ROOT / "examples" / f"{name}.yaml"))
    text = json.dumps(plan.to_json(), indent=2) + "\n"
    golden = GOLDEN / f"{name}.json"
    if os.environ.get("PALMNET_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()


def test_field_notes_address_is_what_the_kernel_would_form() -> None:
    # field notes: www's MAC 00:16:3e:01:e0:a3 on 2001:db8:ebbd:2084::/64
    assert str(eui64_address("00:16:3e:01:e0:a3", "2001:db8:ebbd:2084::/64")) == (
        "2001:db8:ebbd:2084:216:3eff:fe01:e0a3"
    )


def test_macs_unique_and_independent_of_order_with_clashes() -> None:
    keys = [f"lab/n{i}/eth0" for i in range(6000)]  # ~66 % chance of a 24-bit clash each run
    macs = assign_macs(keys)
    assert len(set(macs.values())) == len(keys)
    assert all(m.startswith("00:16:3e:") for m in macs.values())
    shuffled = keys[:]
    random.Random(7).shuffle(shuffled)
    assert assign_macs(shuffled) == macs
    moved = [k for k, m in macs.items() if m != stable_mac(*k.split("/"))]
    # 6000 keys in 2^24: the birthday bound makes a clash near certain; if one occurred,
    # exactly the later key of each pair moved.
    for key in moved:
        assert stable_mac(*key.split("/")) in macs.values()


def test_interface_names_fit_the_kernel_and_addresses_follow_the_mac() -> None:
    lab = load_lab(ROOT / "examples" / "farm.yaml")
    plan = plan_lab(lab)
    outer = list(outer_names(plan).values())
    assert len(outer) == sum(len(n.veths) for n in plan.nodes)
    assert len(set(outer)) == len(outer)
    assert all(len(o) <= 15 for o in outer)
    for node in plan.nodes:
        for iface in node.interfaces:
            for addr in iface.ipv6_slaac:
                assert addr.ip == eui64_address(iface.mac, addr.network)
            assert iface.link_local.ip == eui64_address(iface.mac, "fe80::/64")


def test_start_order_does_not_change_the_plan() -> None:
    text = (ROOT / "examples" / "farm.yaml").read_text()
    a = plan_lab(load_lab_text(text, "farm.yaml"))
    lines = text.splitlines()
    start = lines.index("nodes:")
    # swap the order of two node entries: `up` moves after the farm
    body = "\n".join(lines[start + 1 :])
    up_block, rest = body.split("  web:", 1)
    reordered = "\n".join(lines[: start + 1]) + "\n  web:" + rest + "\n" + up_block
    b = plan_lab(load_lab_text(reordered, "farm.yaml"))
    key = lambda p: {(n.name, i.name): (i.mac, i.ipv6) for n in p.nodes for i in n.interfaces}  # noqa: E731
    assert key(a) == key(b)


def test_delegations_nest_from_the_isp_down() -> None:
    plan = plan_lab(load_lab(ROOT / "examples" / "cascade.yaml"))
    pool = ipaddress.IPv6Network("2001:db8:ebbd::/48")
    r1 = plan.node("r1").pd_client
    r2 = plan.node("r2").pd_client
    assert r1 is not None and r2 is not None and r1.delegated and r2.delegated
    assert r1.delegated.subnet_of(pool) and r1.delegated.prefixlen == 56
    assert r2.delegated.subnet_of(r1.delegated) and r2.delegated.prefixlen == 60
    h2 = plan.node("h2").interfaces[0]
    assert any(a.network.subnet_of(r2.delegated) for a in h2.ipv6_slaac)


def test_ipv4_next_hop_is_chosen_on_a_shared_subnet() -> None:
    """Issue 11: with the upstream's WAN renamed, the default profile gives it an eth0 on
    the router's LAN as well; the IPv4 route via the router must take the router's WAN
    address (in a subnet the upstream has), not its LAN address (off link there)."""
    palm = ROOT / "examples" / "palm.yaml"
    text = palm.read_text().replace(
        "      eth0: {network: br0, ipv6: [2001:db8:ebbd:2080::1/64]",
        "      wan0: {network: br0, ipv6: [2001:db8:ebbd:2080::1/64]",
    )
    assert "wan0" in text
    up = plan_lab(load_lab_text(text, str(palm))).node("up")
    assert [i.name for i in up.interfaces] == ["eth0", "wan0"]
    v4 = [r for r in up.routes if r.to.version == 4]
    assert [(str(r.to), str(r.via), r.dev) for r in v4] == [
        ("198.51.100.0/24", "192.0.2.2", "wan0")
    ]
