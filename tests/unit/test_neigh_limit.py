"""`up` refuses a lab that cannot fit in the machine's IPv6 neighbour table, and
warns near it (lab/host.py). The table is read through neigh_limit; here its
readings are given, the rule is what is tested."""

from __future__ import annotations

import pytest

from palmnet.errors import InputError
from palmnet.lab import host
from palmnet.plan.build import plan_lab
from palmnet.topology.loader import load_lab_text

LAB = """\
name: nl
networks:
  lan: {}
nodes:
  r:
    kind: router
    interfaces:
      eth0: {network: lan, ipv6: ["2001:db8:b::1/64"], ra: true}
  h:
    count: HOSTS
    interfaces:
      eth0: {network: lan}
"""


def plan(hosts: int):  # type: ignore[no-untyped-def]
    return plan_lab(load_lab_text(LAB.replace("HOSTS", str(hosts)), "nl.yaml"))


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    state = {"have": 0, "cap": 1024, "visible": True}
    monkeypatch.setattr(host.neigh_limit, "visible", lambda: state["visible"])
    monkeypatch.setattr(host.neigh_limit, "current_entries", lambda: state["have"])
    monkeypatch.setattr(host.neigh_limit, "limit", lambda: state["cap"])
    return state


def test_a_lab_over_the_limit_is_refused_naming_it(table) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as exc:
        host.refuse_over_limit(plan(1000))  # 1,001 interfaces: at least 4,004 entries
    assert exc.value.exit_code == 2
    text = str(exc.value)
    assert "4,004" in text and "gc_thresh3=1,024" in text and "--raise-neigh-limit" in text


def test_what_is_in_use_counts(table) -> None:  # type: ignore[no-untyped-def]
    host.refuse_over_limit(plan(200))  # 804 of 1,024: fits, with a warning
    assert host.neigh_warning(plan(200)) is not None
    table["have"] = 300
    with pytest.raises(InputError):
        host.refuse_over_limit(plan(200))


def test_a_small_lab_passes_silently(table) -> None:  # type: ignore[no-untyped-def]
    host.refuse_over_limit(plan(10))
    assert host.neigh_warning(plan(10)) is None


def test_a_raised_limit_lets_it_through(table) -> None:  # type: ignore[no-untyped-def]
    table["cap"] = 10_000
    host.refuse_over_limit(plan(1000))


def test_inside_a_rootless_lab_the_table_is_not_judged(table) -> None:  # type: ignore[no-untyped-def]
    table["visible"] = False
    host.refuse_over_limit(plan(1000))
