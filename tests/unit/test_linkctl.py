"""Link names, the impairment's nftables text, and `converge`'s pure parts (no root)."""

from __future__ import annotations

import ipaddress
import json

import pytest

from palmnet.errors import InputError
from palmnet.links import nft
from palmnet.links.names import link_of_network, links_of, resolve_link
from palmnet.plan.build import plan_lab
from palmnet.toolbox import fib
from palmnet.toolbox.converge import analyze, churn, destination_of, settled
from palmnet.toolbox.probe import Probe, echo_request, parse_reply
from palmnet.toolbox.routewatch import RouteEvent, moves, via_of
from palmnet.topology.loader import load_lab_text

# r1 and r2 share two networks (a and b); r3 sits on a LAN with r1 and h;
# h also has a second interface on `solo` where it is alone.
LAB = """\
name: lt
networks:
  a: {}
  b: {}
  c: {}
  lan: {}
  solo: {}
nodes:
  r1:
    kind: router
    interfaces:
      eth0: {network: a}
      eth1: {network: b}
      eth2: {network: lan, ipv6: [2001:db8:1::1/64], ra: true}
  r2:
    kind: router
    interfaces:
      eth0: {network: a}
      eth1: {network: b}
      eth2: {network: c}
  r3:
    kind: router
    interfaces:
      eth0: {network: lan}
      eth1: {network: c}
  h:
    interfaces:
      eth0: {network: lan}
      eth1: {network: solo}
"""


@pytest.fixture(scope="module")
def plan():
    return plan_lab(load_lab_text(LAB, "lt.yaml"))


# -- link names ----------------------------------------------------------------------
def test_two_nodes_on_one_network_are_a_link(plan) -> None:
    link = resolve_link(plan, "r2:r3")
    assert link.network == "c"
    assert [(e.node, e.interface) for e in link.ends] == [("r2", "eth2"), ("r3", "eth1")]
    assert link.name == "r2:r3"


def test_either_order_names_the_same_link(plan) -> None:
    assert resolve_link(plan, "r3:r2").network == resolve_link(plan, "r2:r3").network


def test_node_and_interface_names_the_network_of_that_interface(plan) -> None:
    link = resolve_link(plan, "r1:eth1")
    assert link.network == "b"
    assert link.name == "r1:r2"  # canonical: the two nodes on it
    assert {e.node for e in link.ends} == {"r1", "r2"}


def test_a_shared_lan_is_one_link_with_every_port(plan) -> None:
    link = resolve_link(plan, "r1:r3")
    assert link.network == "lan"
    assert [e.node for e in link.ends] == ["r1", "r3", "h"]
    assert link.name == "r1:eth2"


def test_two_shared_networks_ask_for_an_interface(plan) -> None:
    with pytest.raises(InputError) as err:
        resolve_link(plan, "r1:r2")
    text = str(err.value)
    assert "share several networks (a, b)" in text
    assert "r1:eth0 (a)" in text and "r1:eth1 (b)" in text
    assert err.value.exit_code == 2


def test_no_shared_network_is_not_a_link(plan) -> None:
    with pytest.raises(InputError, match=r"r2 and h share no network: r2:h is not a link"):
        resolve_link(plan, "r2:h")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("r9:r1", "no node 'r9' in lab lt"),
        ("r1:nope", "'nope' is neither a node nor an interface of r1"),
        ("r1", "'r1' is not a link: write A:B"),
        ("r1:r2:r3", "is not a link"),
        (":r1", "is not a link"),
        ("r1:r1", "a link joins two nodes"),
    ],
)
def test_bad_names_are_input_errors(plan, text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        resolve_link(plan, text)


def test_links_of_lists_every_network_with_ports(plan) -> None:
    names = {link.network: link.name for link in links_of(plan)}
    assert names == {"a": "r1:r2", "b": "r1:r2", "c": "r2:r3", "lan": "r1:eth2", "solo": "h:eth1"}
    assert link_of_network(plan, "solo").nodes == ("h",)


# -- nft text ------------------------------------------------------------------------
def test_impair_text_sets_one_ingress_chain_per_end() -> None:
    text = nft.impair_text("palmnet_impair", ["vaaa", "vbbb"], 30)
    assert text.splitlines() == [
        "add table netdev palmnet_impair",
        "add chain netdev palmnet_impair vaaa { type filter hook ingress "
        'device "vaaa" priority -500; policy accept; }',
        "flush chain netdev palmnet_impair vaaa",
        "add rule netdev palmnet_impair vaaa numgen random mod 100 < 30 counter drop "
        'comment "palmnet loss 30"',
        "add chain netdev palmnet_impair vbbb { type filter hook ingress "
        'device "vbbb" priority -500; policy accept; }',
        "flush chain netdev palmnet_impair vbbb",
        "add rule netdev palmnet_impair vbbb numgen random mod 100 < 30 counter drop "
        'comment "palmnet loss 30"',
    ]


def test_blackhole_drops_everything() -> None:
    rule = nft.impair_text("palmnet_impair", ["vaaa"], None).splitlines()[-1]
    assert rule == 'add rule netdev palmnet_impair vaaa counter drop comment "palmnet blackhole"'


def test_no_one_line_table_form() -> None:
    """nft 1.0.6 refused `table netdev t { chain c { ... } }` (routing-notes)."""
    for text in (
        nft.impair_text("palmnet_impair", ["v1"], 5),
        nft.clear_text("palmnet_impair", ["v1"]),
        nft.drop_table_text("palmnet_impair"),
    ):
        assert "table netdev palmnet_impair {" not in text
        assert all(line.startswith(("add ", "flush ", "delete ")) for line in text.splitlines())


def test_clear_text_is_idempotent_add_then_delete() -> None:
    assert nft.clear_text("palmnet_impair", ["vaaa"]).splitlines()[1:] == [
        "add chain netdev palmnet_impair vaaa { type filter hook ingress "
        'device "vaaa" priority -500; policy accept; }',
        "delete chain netdev palmnet_impair vaaa",
    ]


@pytest.mark.parametrize("loss", [0, 101, -5])
def test_loss_out_of_range_is_refused(loss: int) -> None:
    with pytest.raises(ValueError):
        nft.rule_text(loss)


def _listing(*rules: tuple[str, str, int]) -> str:
    items: list[dict] = [{"metainfo": {"version": "1.0.6"}}]
    items.append({"table": {"family": "netdev", "name": "palmnet_impair", "handle": 1}})
    for chain, comment, packets in rules:
        items.append({"chain": {"family": "netdev", "table": "palmnet_impair", "name": chain}})
        items.append(
            {
                "rule": {
                    "family": "netdev",
                    "table": "palmnet_impair",
                    "chain": chain,
                    "comment": comment,
                    "expr": [{"counter": {"packets": packets, "bytes": 0}}, {"drop": None}],
                }
            }
        )
    return json.dumps({"nftables": items})


def test_parse_table_reads_back_loss_blackhole_and_counters() -> None:
    text = _listing(
        ("va", "palmnet loss 30", 7), ("vb", "palmnet blackhole", 3), ("vc", "someone", 1)
    )
    got = nft.parse_table(text, "palmnet_impair")
    assert got == {
        "va": nft.Impairment("va", 30, False, 7),
        "vb": nft.Impairment("vb", 100, True, 3),
    }
    assert nft.chains_in(text, "palmnet_impair") == ["va", "vb", "vc"]
    assert nft.parse_table("", "t") == {} and nft.chains_in("", "t") == []


# -- converge: destination, outage, churn, stop rule -----------------------------------
def test_destination_is_the_first_global_address(plan) -> None:
    h = plan.node("h")
    assert destination_of(h) == next(
        a.ip for a in h.interface("eth0").ipv6_slaac if a.ip in ipaddress.ip_network("2000::/3")
    )
    assert destination_of(plan.node("r2")) is None  # link-locals only


def _probes(pattern: str, interval: float = 0.1, start: float = 100.0) -> list[Probe]:
    """`.` answered, `x` lost, one per interval."""
    return [
        Probe(i, start + i * interval, None if c == "x" else start + i * interval + 0.001)
        for i, c in enumerate(pattern)
    ]


def test_outage_runs_from_first_lost_to_first_answered_after_it() -> None:
    probes = _probes("....." + "xxxx" + "..." + "xx" + "...")  # failure at probe 5
    fail_at = probes[5].sent - 0.01
    got = analyze(probes, fail_at - 0.001, fail_at, 0.1)
    assert got["outage"] == pytest.approx(0.4)
    assert got["outage_from"] == pytest.approx(0.01)
    assert got["recovered"] is True
    assert len(got["loss_periods"]) == 2
    assert got["probes"] == {
        "sent": 17,
        "answered": 11,
        "lost": 6,
        "lost_after_failure": 6,
        "not_sent": 0,
    }


def test_no_loss_is_no_outage_and_no_answer_is_not_recovered() -> None:
    probes = _probes("..........")
    assert analyze(probes, probes[5].sent, probes[5].sent, 0.1)["outage"] == 0.0
    lost = _probes(".....xxxxx")
    got = analyze(lost, lost[5].sent, lost[5].sent, 0.1)
    assert got["outage"] is None and got["recovered"] is False
    assert got["loss_periods"] == [[0.0, None]]


def test_losses_before_the_failure_do_not_count() -> None:
    probes = _probes("..x.......")
    got = analyze(probes, probes[6].sent, probes[6].sent, 0.1)
    assert got["outage"] == 0.0 and got["probes"]["lost"] == 1
    assert got["probes"]["lost_after_failure"] == 0


def test_churn_counts_changes_after_the_failure_per_router() -> None:
    a, b = ("fe80::a%eth0",), ("fe80::b%eth1",)
    events = [
        RouteEvent(9.0, "r1", "add", "::/0", 12, a),
        RouteEvent(10.5, "r1", "del", "2001:db8::/64", 12, a),
        RouteEvent(11.0, "r2", "add", "2001:db8::/64", 12, b),
        RouteEvent(12.0, "r1", "add", "2001:db8::/64", 12, b),
        RouteEvent(13.0, "r1", "add", "2001:db8::/64", 12, b),  # a rewrite: same next hop
    ]
    initial = {("r1", "::/0"): a, ("r1", "2001:db8::/64"): a, ("r2", "2001:db8::/64"): b}
    got = churn(events, ["r1", "r2", "r3"], 10.0, initial)
    assert got["count"] == 4 and got["before_failure"] == 1
    assert got["moves"] == 2  # r1 lost the route, then got it via b; r2 and the rewrite: no
    assert got["per_router"]["r1"] == {
        "count": 3,
        "moves": 2,
        "first": 0.5,
        "times": [0.5, 2.0, 3.0],
    }
    assert got["per_router"]["r3"] == {"count": 0, "moves": 0, "first": None, "times": []}
    assert got["events"][0] == {
        "t": -1.0,
        "router": "r1",
        "op": "add",
        "dst": "::/0",
        "via": ["fe80::a%eth0"],
        "moved": False,
    }


def test_moves_start_from_the_initial_tables() -> None:
    e = RouteEvent(1.0, "r1", "add", "2001:db8::/64", 12, ("eth2",))
    assert moves([e], {}) == [e]  # unknown before: a new route is a move
    assert moves([e], {("r1", "2001:db8::/64"): ("eth2",)}) == []
    gone = RouteEvent(2.0, "r1", "del", "2001:db8::/64", 12, ("eth2",))
    assert moves([e, gone], {("r1", "2001:db8::/64"): ("eth2",)}) == [gone]
    assert via_of([(None, "eth2"), ("fe80::1", "eth0")]) == ("eth2", "fe80::1%eth0")


def test_settled_needs_a_reaction_then_quiet_with_answers() -> None:
    probes = _probes("." * 100, interval=0.1, start=0.0)  # 0 .. 9.9 s, all answered
    assert not settled(9.9, 2.0, None, probes, 3.0, 0.1)  # routing never reacted
    assert not settled(9.9, 2.0, 1.0, probes, 3.0, 0.1)  # a change, but before the failure
    assert not settled(9.9, 2.0, 8.0, probes, 3.0, 0.1)  # not quiet long enough
    assert settled(9.9, 2.0, 4.0, probes, 3.0, 0.1)
    lossy = _probes("." * 80 + "x" + "." * 19, interval=0.1, start=0.0)  # probe at 8.0 s lost
    assert not settled(9.9, 2.0, 4.0, lossy, 3.0, 0.1)


# -- fib: longest match, ECMP, the path through the plan --------------------------------
def _ll(plan, node: str, iface: str) -> ipaddress.IPv6Address:
    return plan.node(node).interface(iface).link_local.ip


def test_lookup_longest_prefix_lowest_metric_and_ecmp() -> None:
    net = ipaddress.IPv6Network
    a, b = ipaddress.IPv6Address("fe80::a"), ipaddress.IPv6Address("fe80::b")
    routes = [
        fib.Route(net("::/0"), 1024, 1, (fib.NextHop("eth0", a),)),
        fib.Route(net("2001:db8::/48"), 32, 1, (fib.NextHop("eth0", a), fib.NextHop("eth1", b))),
        fib.Route(net("2001:db8::/48"), 500, 1, (fib.NextHop("eth2", a),)),
        fib.Route(net("2001:db8:0:9::/64"), 32, 7, ()),  # unreachable
    ]
    dest = ipaddress.IPv6Address("2001:db8:0:1::5")
    route, hops = fib.lookup(routes, dest)
    assert route is not None and route.metric == 32
    assert hops == (fib.NextHop("eth0", a), fib.NextHop("eth1", b))
    assert fib.lookup(routes, ipaddress.IPv6Address("2001:db8:0:9::1"))[1] == ()
    assert fib.lookup(routes, ipaddress.IPv6Address("2002::1"))[1] == (fib.NextHop("eth0", a),)
    assert fib.lookup([], dest) == (None, ())


def test_trace_follows_next_hops_through_the_plan_and_forks_on_ecmp(plan) -> None:
    dest = destination_of(plan.node("h"))
    assert dest is not None
    lan = ipaddress.IPv6Network("2001:db8:1::/64")
    tables = {
        # r2 splits between r1 (network a) and r3 (network c)
        "r2": [
            fib.Route(
                lan,
                32,
                1,
                (
                    fib.NextHop("eth0", _ll(plan, "r1", "eth0")),
                    fib.NextHop("eth2", _ll(plan, "r3", "eth1")),
                ),
            )
        ],
        "r1": [fib.Route(lan, 256, 1, (fib.NextHop("eth2", None),))],
        "r3": [fib.Route(lan, 256, 1, (fib.NextHop("eth0", None),))],
    }
    path = fib.trace(plan, "r2", dest, lambda n: tables.get(n, []))
    assert path.complete
    assert path.chains == (("r2", "r1", "h"), ("r2", "r3", "h"))
    sent = {"r2": {"eth0": 3, "eth2": 40}}
    assert fib.used_chain(path, plan, sent) == ("r2", "r3", "h")


def test_trace_reports_where_the_route_ends(plan) -> None:
    dest = destination_of(plan.node("h"))
    path = fib.trace(plan, "r2", dest, lambda n: [])
    assert not path.complete
    assert f"r2 has no route to {dest}" in path.problem
    assert path.chains == (("r2", "?"),)


# -- probes on the wire ---------------------------------------------------------------
def test_echo_request_and_reply_carry_the_counter() -> None:
    request = echo_request(0x1234, 70000)
    assert request[0] == 128 and request[4:6] == b"\x12\x34"
    assert int.from_bytes(request[6:8], "big") == 70000 & 0xFFFF
    reply = bytes([129]) + request[1:]
    assert parse_reply(reply, 0x1234) == 70000
    assert parse_reply(reply, 0x4321) is None  # another run's
    assert parse_reply(request, 0x1234) is None  # not a reply
    assert parse_reply(reply[:10], 0x1234) is None
