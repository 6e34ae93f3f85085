"""What `up` of a changed file says and does to a running lab (plan/diff.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from palmnet.plan.build import plan_lab
from palmnet.plan.diff import diff_plans
from palmnet.plan.model import Plan
from palmnet.topology.loader import load_lab_text

ROOT = Path(__file__).resolve().parents[2]


def _plan(text: str, filename: str) -> Plan:
    return plan_lab(load_lab_text(text, filename))


def test_hosts_come_and_go_behind_an_openwrt_router(tmp_path: Path) -> None:
    """The router's DHCP reservations and DNS records follow the roster: `up`
    reloads its dnsmasq, it is no change of the router."""
    shutil.copytree(ROOT / "examples" / "palm-router", tmp_path / "palm-router")
    text = (ROOT / "examples" / "palm.yaml").read_text()
    lab = str(tmp_path / "palm.yaml")
    old = _plan(text, lab)
    fewer = _plan(text.replace("count: 10", "count: 9"), lab)
    router_old, router_new = old.node("router"), fewer.node("router")
    assert router_old.dns != router_new.dns  # w10's records went
    diff = diff_plans(old, fewer)
    assert (diff.refused, diff.removed, diff.added) == ([], ["w10"], [])
    assert diff_plans(fewer, old).added == ["w10"]


def test_a_refusal_names_the_key_and_only_what_differs(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "palm-router", tmp_path / "palm-router")
    text = (ROOT / "examples" / "palm.yaml").read_text()
    lab = str(tmp_path / "palm.yaml")
    moved = text.replace("ipv4: [192.0.2.1/24]", "ipv4: [192.0.2.9/24]")
    assert moved != text
    refused = diff_plans(_plan(text, lab), _plan(moved, lab)).refused
    assert refused == ["  node up: eth0.ipv4_static: -192.0.2.1/24 +192.0.2.9/24"]


def test_a_protocol_change_is_said_by_key() -> None:
    text = (ROOT / "examples" / "ring.yaml").read_text()
    ospf = text.replace("profiles: &routing [babel]", "profiles: &routing [ospf3]")
    assert ospf != text
    refused = diff_plans(_plan(text, "ring.yaml"), _plan(ospf, "ring.yaml")).refused
    assert refused and all("routing.protocol: babel -> ospf3" in line for line in refused)
    assert "routing.interfaces[eth0].hello: 1.0 -> None" in refused[0]
