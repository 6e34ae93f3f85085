"""Pure parts of the LXD cluster support: placement, the planned link MTU, tokens,
the join preseed, tunnel keys."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from palmnet.backends.lxd import cluster, networks, placement
from palmnet.backends.lxd.cluster import Member
from palmnet.errors import InputError
from palmnet.lab import plan_file

LAB = """\
name: pl
backend: lxd
{placement}
networks:
  lan: {{}}
nodes:
  r:
    kind: router
    {member}
    interfaces:
      eth0: {{network: lan, ipv6: [2001:db8:77::1/64], ra: true}}
  h:
    count: 5
    interfaces:
      eth0: {{network: lan}}
"""

MEMBERS = [Member("m1", "", "Online", ""), Member("m2", "", "Online", "")]


def _plan(tmp_path: Path, placement_line: str = "", member_line: str = ""):
    path = tmp_path / "lab.yaml"
    path.write_text(LAB.format(placement=placement_line, member=member_line))
    return plan_file(path)


def test_spread_balances_in_file_order_around_a_pinned_router(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "placement: spread", "member: m1")
    where = placement.place(plan.nodes, plan.placement, MEMBERS, "m1")
    assert where == {"r": "m1", "h1": "m2", "h2": "m1", "h3": "m2", "h4": "m1", "h5": "m2"}


def test_pack_puts_everything_on_the_local_member(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "placement: pack")
    assert set(placement.place(plan.nodes, plan.placement, MEMBERS, "m2").values()) == {"m2"}


def test_spread_skips_offline_members_unless_pinned(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "placement: spread", "member: m2")
    members = [MEMBERS[0], Member("m2", "", "Offline", "")]
    where = placement.place(plan.nodes, plan.placement, members, "m1")
    assert where["r"] == "m2"
    assert {where[f"h{i}"] for i in range(1, 6)} == {"m1"}


def test_an_unknown_member_is_bad_input_naming_the_members(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "", "member: m9")
    with pytest.raises(InputError, match=r"m9 is not a member .* \(members: m1, m2\)"):
        placement.place(plan.nodes, plan.placement, MEMBERS, "m1")


def test_members_on_other_machines_take_no_unpinned_node(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "placement: spread")
    members = [*MEMBERS, Member("m3", "", "Online", "", here=False)]
    where = placement.place(plan.nodes, plan.placement, members, "m1")
    assert set(where.values()) == {"m1", "m2"}
    packed = _plan(tmp_path, "placement: pack")
    away_local = [Member("m1", "", "Online", "", here=False), MEMBERS[1]]
    assert set(placement.place(packed.nodes, packed.placement, away_local, "m1").values()) == {"m2"}


def test_a_node_pinned_to_a_member_elsewhere_is_bad_input(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "", "member: m2")
    members = [MEMBERS[0], Member("m2", "", "Online", "", here=False)]
    with pytest.raises(InputError, match=r"member: r on m2 \(it routes .*another machine.*\(m1\)"):
        placement.place(plan.nodes, plan.placement, members, "m1", _why(plan))


def _why(plan):  # type: ignore[no-untyped-def]
    from palmnet.backends.lxd import far

    return lambda node: far.why_not(plan, node)


def test_plain_hosts_spread_over_members_elsewhere_and_the_router_stays_here(
    tmp_path: Path,
) -> None:
    plan = _plan(tmp_path, "placement: spread")
    members = [MEMBERS[0], Member("m2", "", "Online", "", here=False)]
    where = placement.place(plan.nodes, plan.placement, members, "m1", _why(plan))
    assert where == {"r": "m1", "h1": "m2", "h2": "m1", "h3": "m2", "h4": "m1", "h5": "m2"}
    # without the rule, as before: nothing goes to the member elsewhere
    assert set(placement.place(plan.nodes, plan.placement, members, "m1").values()) == {"m1"}


def test_a_plain_host_may_be_pinned_to_a_member_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(
        LAB.format(placement="", member="").replace(
            "    count: 5\n", "    count: 2\n    member: m2\n"
        )
    )
    plan = plan_file(path)
    members = [MEMBERS[0], Member("m2", "", "Online", "", here=False)]
    where = placement.place(plan.nodes, plan.placement, members, "m1", _why(plan))
    assert where == {"r": "m1", "h1": "m2", "h2": "m2"}


def test_a_cluster_with_no_member_here_is_bad_input(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "placement: spread")
    members = [Member(m.name, "", "Online", "", here=False) for m in MEMBERS]
    with pytest.raises(InputError, match=r"no member of this LXD cluster \(m1, m2\) runs on"):
        placement.place(plan.nodes, plan.placement, members, "m1")


def test_link_mtu_is_planned_only_for_labs_that_span_members(tmp_path: Path) -> None:
    spanning = _plan(tmp_path, "placement: spread")
    assert spanning.link_mtu == 1450
    assert any("MTU 1450" in note for note in spanning.notes)
    pinned = _plan(tmp_path, "", "member: m1")
    assert pinned.link_mtu == 1450 and pinned.placement == "spread"
    single = _plan(tmp_path)
    assert single.link_mtu is None
    assert any("on an LXD cluster 1450" in note for note in single.notes)


def test_tokens_round_trip_and_bad_tokens_are_input_errors() -> None:
    meta = {"serverName": "m2", "secret": "s", "fingerprint": "f", "addresses": ["a:8443"]}
    token = cluster.encode_token(meta)
    assert json.loads(base64.b64decode(token))["server_name"] == "m2"
    assert cluster.decode_token(token)["secret"] == "s"
    with pytest.raises(InputError, match="not an LXD token"):
        cluster.decode_token("bm90IGEgdG9rZW4=")


def test_join_preseed_names_the_member_and_each_pool_source() -> None:
    token = cluster.encode_token(
        {"serverName": "m2", "secret": "s", "fingerprint": "f", "addresses": ["192.0.2.11:8443"]}
    )
    text = cluster.join_preseed(token, "192.0.2.12", "m2", ["default"])
    assert 'server_address: "192.0.2.12:8443"' in text
    assert "entity: storage-pool" in text and "key: source" in text
    with pytest.raises(InputError, match="token is for member 'm2', not 'm3'"):
        cluster.join_preseed(token, "192.0.2.13", "m3", ["default"])


def test_addresses_get_lxd_port() -> None:
    assert cluster.with_port("192.0.2.1") == "192.0.2.1:8443"
    assert cluster.with_port("2001:db8::1") == "[2001:db8::1]:8443"
    assert cluster.with_port("[2001:db8::1]:9000") == "[2001:db8::1]:9000"


def test_tunnel_keys_fit_the_kernel_name_limit_and_differ_per_network() -> None:
    bridge = networks.bridge_name("pl", "lan")
    assert len(f"{bridge}-{networks.TUNNEL}") <= 15
    keys = networks.tunnel_config("pl", "lan", 1450)
    assert keys["tunnel.v.protocol"] == "vxlan" and keys["bridge.mtu"] == "1450"
    assert keys["tunnel.v.group"].startswith("239.")
    assert 0 < int(keys["tunnel.v.id"]) < 2**24
    assert networks.vxlan_id("pl", "lan") != networks.vxlan_id("pl", "wan")


def test_a_running_lab_is_not_moved_to_other_members_by_reconcile(tmp_path: Path) -> None:
    from palmnet.plan.diff import diff_plans

    before = _plan(tmp_path)
    after = _plan(tmp_path, "placement: pack")
    assert diff_plans(before, after).refused == [
        "  placement: spread, link MTU 1500 -> pack, link MTU 1450"
    ]
    pinned = _plan(tmp_path, "placement: pack", "member: m2")
    assert any(line.startswith("  node r:") for line in diff_plans(after, pinned).refused)
