"""External networks (issue 16), the pure part: what plan prints and predicts, the
guard ruleset, the zone chunk."""

from __future__ import annotations

import ipaddress

from palmnet.addressing.eui64 import eui64_address
from palmnet.backends.netns.external import host_ports, lab_port_prefix
from palmnet.backends.netns.names import outer_names
from palmnet.plan.build import plan_lab
from palmnet.plan.codec import plan_from_json, plan_to_json
from palmnet.plan.dns import external_records, render_chunk
from palmnet.plan.external import pending_identifier
from palmnet.plan.guard import guard_ruleset, guard_table
from palmnet.topology.loader import load_lab_text

HOME = "2001:db8:ebbd:2080::/64"
LAB = """\
name: pal-m
networks:
  home: {{external: {{bridge: br0{prefix}}}}}
  lan: {{}}
nodes:
  a:
    interfaces:
      eth0: {{network: home}}
  r:
    kind: router
    interfaces:
      eth0: {{network: home}}
      eth1: {{network: lan, ipv6: [2001:db8:1::1/64], ra: true}}
  rogue:
    kind: router
    interfaces:
      eth0: {{network: home, ipv6: [2001:db8:98::1/64], ra: true}}
  adv:
    kind: router
    interfaces:
      eth0: {{network: home, ipv6: [2001:db8:99::1/64], ra: true, advertise: true}}
  h:
    interfaces:
      eth0: {{network: lan}}
"""


def _plan(prefix: str | None = HOME):
    text = LAB.format(prefix=f", prefix: {prefix}" if prefix else "")
    return plan_lab(load_lab_text(text, "lab.yaml"))


def test_with_prefix_the_plan_holds_the_lan_routers_slaac_address() -> None:
    plan = _plan()
    a = plan.node("a").interface("eth0")
    assert a.external == "bridge"
    assert ipaddress.IPv6Interface(f"{eui64_address(a.mac, HOME)}/64") in a.ipv6_slaac
    r = plan.node("r").interface("eth0")
    assert r.accept_ra  # a forwarding node takes the LAN's RA there (accept_ra 2)
    assert plan.network("home").external.parent == "br0"  # type: ignore[union-attr]


def test_a_guarded_advertiser_offers_nothing_an_advertise_true_one_does() -> None:
    a = _plan().node("a").interface("eth0")
    prefixes = {s.network for s in a.ipv6_slaac}
    assert ipaddress.IPv6Network("2001:db8:99::/64") in prefixes  # adv: advertise: true
    assert ipaddress.IPv6Network("2001:db8:98::/64") not in prefixes  # rogue: guarded
    assert not any("fe80" in str(x) for x in prefixes)


def test_without_prefix_plan_shows_the_interface_identifier() -> None:
    plan = _plan(None)
    a = plan.node("a").interface("eth0")
    assert a.ipv6_slaac == (
        ipaddress.IPv6Interface(f"{eui64_address(a.mac, '2001:db8:99::/64')}/64"),
    )
    iid = pending_identifier(a, None)
    assert iid is not None and iid.startswith("::216:3eff:fe")
    row = next(i for n in plan.to_json() if n["name"] == "a" for i in n["interfaces"])
    assert row["interface_id"] == iid and row["external"] == "bridge"


def test_notes_warn_loudly_of_advertise_and_say_what_is_guarded() -> None:
    notes = "\n".join(_plan().notes)
    assert "WARNING: adv:eth0 has advertise: true" in notes
    assert "rogue:eth0 sends router advertisements on external network home: the RA guard" in notes


def test_guard_ruleset_drops_what_a_guest_must_not_send() -> None:
    plan = _plan()
    text = guard_ruleset(plan.lab, plan.node("rogue"))
    assert text is not None
    assert guard_table("pal-m") == "palmnet_pal_m_guard"
    assert text.startswith("table netdev palmnet_pal_m_guard\ndelete table")
    assert 'type filter hook egress device "eth0"' in text
    for match in ("nd-router-advert", "nd-redirect", "udp sport 547", "udp sport 67",
                  "udp dport 521", "udp dport 6696", "meta l4proto 89"):  # fmt: skip
        assert match in text, match
    # tagged frames go first, whatever they carry (an untagged port on the LAN)
    rules = [line.strip() for line in text.splitlines() if "counter drop" in line]
    assert rules[0] == 'ether type { 8021q, 8021ad, 0x9100, 0x9200 } counter drop comment "tagged"'
    lifted = guard_ruleset(plan.lab, plan.node("adv"))
    assert lifted is not None and "nd-router-advert" not in lifted and "udp sport 67" in lifted
    assert "8021q, 8021ad" in lifted  # advertise: true lifts the RA guard only
    assert guard_ruleset(plan.lab, plan.node("h")) is None  # no external interface
    # only the external interface is guarded
    r = guard_ruleset(plan.lab, plan.node("r"))
    assert r is not None and '"eth1"' not in r


def test_host_ports_are_the_labs_and_never_on_the_lab_switch() -> None:
    plan = _plan()
    ports = host_ports(plan)
    assert set(ports) == {("a", "eth0"), ("r", "eth0"), ("rogue", "eth0"), ("adv", "eth0")}
    assert all(p.startswith(lab_port_prefix("pal-m")) and len(p) <= 15 for p in ports.values())
    assert not set(outer_names(plan)) & set(ports)
    assert len(set(ports.values())) == len(ports)


def test_plan_with_external_networks_survives_the_journal() -> None:
    plan = _plan()
    assert plan_from_json(plan_to_json(plan)) == plan


def test_zone_chunk_as_the_field_notes_paste_it() -> None:
    plan = _plan()
    chunk = render_chunk(external_records(plan))
    a = plan.node("a").interface("eth0")
    assert f"a      IN  AAAA    {eui64_address(a.mac, HOME)}\n" in chunk
    assert "adv    IN  AAAA    2001:db8:99::1\n" in chunk
    assert "h " not in chunk  # not on an external network
    learnt = _plan(None)
    ext = learnt.node("a").interface("eth0")
    live = {("a", "eth0"): (f"{eui64_address(ext.mac, HOME)}/64", "2001:db8:5::1/64")}
    assert (
        "a",
        eui64_address(ext.mac, HOME),
    ) in external_records(learnt, live)
    assert ("a", ipaddress.IPv6Address("2001:db8:5::1")) not in external_records(learnt, live)


def test_a_running_lab_refuses_another_host_interface() -> None:
    from palmnet.plan.diff import diff_plans

    moved = plan_lab(load_lab_text(LAB.format(prefix="").replace("br0", "br1"), "lab.yaml"))
    diff = diff_plans(_plan(None), moved)
    assert diff.refused == ["  network home: external {bridge: br0} -> {bridge: br1}"]
