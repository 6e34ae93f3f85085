"""A re-plan of a running lab keeps the DHCP leases its hosts hold.

Reservations are a hash of the client's id into the router's range, probing
forward in name order. That alone moves a running host when a new name that
sorts before it lands on its slot: `launch w w12` on examples/palm.yaml gave
w12 the address w3 held (.197) and moved w3's reservation; dnsmasq, seeing .197
leased to w3, gave w12 a pool address, and the launch failed waiting for .197.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from palmnet.plan.build import _reserve, held_leases, keeps_leases, plan_lab
from palmnet.plan.model import Plan
from palmnet.topology.copies import with_copies
from palmnet.topology.loader import load_lab

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _v4(plan: Plan) -> dict[str, ipaddress.IPv4Address]:
    lan = next(lan for lan in plan.node("router").lans if lan.hosts)
    return {name: addr for _, addr, name in lan.hosts}


def _v6(plan: Plan) -> dict[str, ipaddress.IPv6Address]:
    lan = next(lan for lan in plan.node("router").lans if lan.hosts6)
    return {name: addr for _, addr, name in lan.hosts6}


def test_a_launched_copy_never_takes_the_lease_of_a_running_host() -> None:
    lab = load_lab(EXAMPLES / "palm.yaml")
    running = plan_lab(with_copies(lab, {"w11": "w"}))
    grown = with_copies(lab, {"w11": "w", "w12": "w"})
    naive = _v4(plan_lab(grown))
    assert naive["w3"] != _v4(running)["w3"], "the case this file is about is gone"

    kept = plan_lab(grown, held_leases(running))
    for old, new in ((_v4(running), _v4(kept)), (_v6(running), _v6(kept))):
        assert {n: new[n] for n in old} == old
        assert len(set(new.values())) == len(new)  # w12's is its own
    assert kept.node("w12").interface("eth0").ipv4_dhcp[0].ip == _v4(kept)["w12"]
    assert not keeps_leases(plan_lab(grown), held_leases(running))


def test_a_plan_of_the_same_lab_keeps_every_lease() -> None:
    plan = plan_lab(load_lab(EXAMPLES / "palm.yaml"))
    held = held_leases(plan)
    assert len(held) == 2 * len(_v4(plan))  # a MAC and a DUID for each host
    assert keeps_leases(plan, held)


IDS = st.lists(st.text("0123456789abcdef", min_size=4, max_size=4), unique=True, max_size=24)


@given(IDS, IDS)
def test_reservations_of_held_hosts_never_move(before: list[str], added: list[str]) -> None:
    first, last = ipaddress.IPv4Address("198.51.100.100"), ipaddress.IPv4Address("198.51.100.129")
    old = _reserve([(f"h{c}", c) for c in before], first, last)
    held = {c: old[f"h{c}"] for c in before}
    hosts = [(f"h{c}", c) for c in {*before, *added}]
    new = _reserve(hosts, first, last, held)  # type: ignore[arg-type]
    assert all(new[f"h{c}"] == held[c] for c in before)
    assert len(set(new.values())) == len(new) == min(len(hosts), 30)
    assert all(first <= a <= last for a in new.values())
    if all(_reserve(hosts, first, last).get(f"h{c}") == a for c, a in held.items()):
        assert _reserve(hosts, first, last) == new  # keeps_leases: no second plan needed
