"""BIRD 2 without root: config text, refusals, control socket, route/neighbour rows, firewall.

The plans come from a small lab file written here (r1 with a point-to-point
link to r2, a network shared by three routers, and a LAN), so the routing
section goes through the loader and the plan as in a real lab. Whole
bird.conf files are pinned by goldens under tests/golden/bird/ and parsed by
the real `bird -p` (no root needed); tests/integration/test_routing.py runs
them. PALMNET_UPDATE_GOLDEN=1 rewrites the goldens.

The BIRD replies below are what BIRD 2.0.12 answered in a ring lab, as
(code, text) lines of its control socket.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from palmnet.errors import InputError
from palmnet.openwrt.defaults import FIREWALL, stock_network
from palmnet.openwrt.fw4 import compile_firewall
from palmnet.openwrt.uci import parse
from palmnet.openwrt.zones import zone_devices
from palmnet.plan.build import plan_lab
from palmnet.plan.model import Plan, RoutingInterface, RoutingPlan
from palmnet.plan.routing import router_id
from palmnet.plan.routing_firewall import firewall_rules, zones_of_devices
from palmnet.services.bird import (
    Bird,
    BirdControlError,
    control,
    interval,
    render_bird_config,
    routing_problems,
)
from palmnet.services.registry import services_for
from palmnet.toolbox.routes import bfd_states, bird_routes, neighbor_rows, route_rows
from palmnet.topology.loader import load_lab_text

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "bird"
UPDATE = os.environ.get("PALMNET_UPDATE_GOLDEN") == "1"
STATE = Path("/run/palmnet/bt/nodes")

LAB = """\
name: bt
networks: {p2p: {}, shared: {}, lan: {}}
nodes:
  r1:
    kind: router
    routing: ROUTING
    interfaces:
      eth0: {network: p2p}
      eth1: {network: shared}
      eth2: {network: lan, ipv6: [2001:db8:1::1/64], ra: true}
  r2:
    kind: router
    interfaces: {eth0: {network: p2p}, eth1: {network: shared}}
  r3:
    kind: router
    interfaces: {eth1: {network: shared}}
  h1:
    interfaces: {eth0: {network: lan}}
"""

CASES = {
    "ripng": "{protocol: ripng, interfaces: {eth0: {}, eth1: {cost: 3}}}",
    "ripng-tuned-bfd": (
        "{protocol: ripng, interfaces: {eth0: {}, eth1: {}},"
        " defaults: {update: 1, timeout: 3, garbage: 2}, bfd: {interval: 0.02, multiplier: 3}}"
    ),
    "babel": "{protocol: babel, interfaces: {eth0: {}, eth1: {}}, defaults: {hello: 1}}",
    "babel-wireless": (
        "{protocol: babel, interfaces: {eth0: {}, eth1: {rxcost: 512, update: 4}},"
        " defaults: {type: wireless, hello: 0.2}}"
    ),
    "ospf3": "{protocol: ospf3, interfaces: {eth0: {}, eth1: {cost: 20}}}",
    "ospf3-bfd": (
        "{protocol: ospf3, interfaces: {eth0: {}, eth1: {}},"
        " defaults: {hello: 1, dead: 3}, bfd: true}"
    ),
}


def lab_plan(routing: str) -> Plan:
    return plan_lab(load_lab_text(LAB.replace("ROUTING", routing), "bt.yaml"))


def bird_for(plan: Plan, node: str = "r1") -> Bird:
    n = plan.node(node)
    return Bird(plan, n, STATE / n.name)


def conf(case: str) -> str:
    svc = bird_for(lab_plan(CASES[case]))
    return svc.render()[svc.conf]


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
    assert actual == path.read_text(), f"{name} differs; PALMNET_UPDATE_GOLDEN=1 to accept"


def routing(protocol: str, **changes: object) -> RoutingPlan:
    plan = RoutingPlan(
        protocol=protocol,
        router_id=ipaddress.IPv4Address("192.0.2.1"),
        interfaces=(RoutingInterface("eth0"), RoutingInterface("eth1")),
    )
    return replace(plan, **changes)  # type: ignore[arg-type]


# -- bird.conf ------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_bird_conf_golden(case: str) -> None:
    check_golden(f"{case}.conf", conf(case))


@pytest.mark.skipif(shutil.which("bird") is None, reason="bird2 not installed")
@pytest.mark.parametrize("case", CASES)
def test_bird_parses_the_config(case: str, tmp_path: Path) -> None:
    """`bird -p` parses without root, namespaces or a running daemon."""
    path = tmp_path / "bird.conf"
    path.write_text(conf(case))
    proc = subprocess.run(["bird", "-p", "-c", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_router_id_is_the_plans_and_stable() -> None:
    plan = lab_plan(CASES["babel"])
    rid = plan.node("r1").routing.router_id  # type: ignore[union-attr]
    assert rid == router_id("bt", "r1")
    assert f"router id {rid};" in conf("babel")
    assert lab_plan(CASES["babel"]).node("r1").routing.router_id == rid  # type: ignore[union-attr]


def test_kernel_gets_only_learned_routes_and_connected_lans_are_announced() -> None:
    text = conf("ripng")
    assert "export where source ~ [RTS_RIP];" in text  # never device/kernel routes back
    assert "learn;" in text
    assert 'interface "eth0", "eth1", "eth2";' in text  # protocol direct: every interface
    assert "if source = RTS_DEVICE then accept;" in text


def test_timer_units() -> None:
    assert interval(1) == "1 s"
    assert interval(0.2) == "200 ms"
    assert interval(1.5) == "1500 ms"
    assert interval(0.02) == "20 ms"
    assert "hello interval 200 ms;" in conf("babel-wireless")
    rip = conf("ripng-tuned-bfd")
    assert "update time 1;" in rip and "timeout time 3;" in rip and "garbage time 2;" in rip
    assert "min rx interval 20 ms;" in rip and "bfd on;" in rip


def test_ospf_point_to_point_only_between_two_nodes_and_lan_is_a_stub() -> None:
    text = conf("ospf3")
    ospf = text.split("protocol ospf v3")[1]
    eth0 = ospf.split('interface "eth0"')[1].split("};")[0]
    eth1 = ospf.split('interface "eth1"')[1].split("};")[0]
    assert "type ptp;" in eth0
    assert "type ptp;" not in eth1  # three routers on `shared`: broadcast, with a DR
    assert 'interface "eth2" { stub yes; };' in text
    assert "RTS_DEVICE" not in text.split("filter announce")[1]


def test_only_routers_with_routing_run_bird() -> None:
    plan = lab_plan(CASES["babel"])
    assert Bird in services_for(plan.node("r1"))
    assert Bird not in services_for(plan.node("r2"))
    assert Bird not in services_for(plan.node("h1"))


def test_files_and_socket_are_in_the_adapters_dir() -> None:
    svc = bird_for(lab_plan(CASES["babel"]))
    assert all(p.is_relative_to(svc.dir) for p in svc.render())
    argv = svc.argv()
    assert argv[:2] == ["/usr/sbin/bird", "-f"]
    assert argv[argv.index("-s") + 1] == str(svc.dir / "bird.ctl")
    assert all(a.startswith(str(svc.dir)) for a in argv[2:] if a.startswith("/"))


# -- refusals -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("plan", "words"),
    [
        (routing("babel", bfd_interval=0.1), "no BFD for Babel"),
        (routing("ripng", interfaces=(RoutingInterface("eth0", update=0.5),)), "whole seconds"),
        (routing("ospf3", interfaces=(RoutingInterface("eth0", hello=1.5),)), "whole seconds"),
        (routing("ospf3", interfaces=(RoutingInterface("eth0", hello=5, dead=5),)), "dead"),
        (routing("ospf3", interfaces=(RoutingInterface("eth0", dead=10),)), "hello interval"),
        (routing("ripng", interfaces=(RoutingInterface("eth0", cost=16),)), "unreachable"),
        (routing("babel", interfaces=(RoutingInterface("eth0", hello=0.005),)), "10 ms"),
        (routing("ripng", interfaces=()), "no interface"),
        (routing("isis"), "unknown protocol"),
    ],
)
def test_routing_problems_refused(plan: RoutingPlan, words: str) -> None:
    problems = routing_problems(plan)
    assert any(words in p for p in problems), problems
    node = replace(lab_plan(CASES["babel"]).node("r1"), routing=plan)
    with pytest.raises(InputError, match="node r1"):
        render_bird_config(node)


def test_good_plans_have_no_problems() -> None:
    for case in CASES:
        assert routing_problems(lab_plan(CASES[case]).node("r1").routing) == []  # type: ignore[arg-type]


def test_node_without_routing_is_refused() -> None:
    node = lab_plan(CASES["babel"]).node("r2")
    with pytest.raises(InputError, match="no routing"):
        render_bird_config(node)


def test_babel_bfd_is_refused_by_the_loader_too() -> None:
    with pytest.raises(InputError, match="no BFD for Babel"):
        lab_plan("{protocol: babel, bfd: true}")


def test_too_long_socket_path_is_refused() -> None:
    plan = lab_plan(CASES["babel"])
    svc = Bird(plan, plan.node("r1"), Path("/" + "x" * 120))
    with pytest.raises(InputError, match="too long"):
        svc.render()


# -- control socket -------------------------------------------------------------------
def fake_bird(path: Path, replies: dict[str, str]) -> threading.Thread:
    """A control socket that greets like BIRD and answers one command."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"0001 BIRD 2.0.12 ready.\n")
                command = conn.makefile("r").readline().strip()
                conn.sendall(replies.get(command, "9001 syntax error\n").encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


STATUS = (
    "1000-BIRD 2.0.12\n1011-Router ID is 192.0.2.1\n Hostname is r1\n"
    "0013 Daemon is up and running\n"
)


def test_control_reads_codes_and_continuations(tmp_path: Path) -> None:
    sock = tmp_path / "bird.ctl"
    thread = fake_bird(sock, {"show status": STATUS})
    reply = control(sock, "show status")
    thread.join(5)
    assert reply == [
        ("1000", "BIRD 2.0.12"),
        ("1011", "Router ID is 192.0.2.1"),
        ("1011", "Hostname is r1"),
        ("0013", "Daemon is up and running"),
    ]


def test_ready_asks_show_status(tmp_path: Path) -> None:
    plan = lab_plan(CASES["babel"])
    svc = Bird(plan, plan.node("r1"), tmp_path)
    assert not svc.ready(os.getpid())  # no socket yet
    svc.dir.mkdir()
    thread = fake_bird(svc.socket, {"show status": STATUS})
    assert svc.ready(os.getpid())
    thread.join(5)


def test_control_without_bird_raises(tmp_path: Path) -> None:
    with pytest.raises(BirdControlError):
        control(tmp_path / "none.ctl", "show status")


# -- rows for `palmnet route` and `palmnet neighbors` ---------------------------------
SHOW_ROUTE_ALL = [
    ("1007", "Table master6:"),
    ("1007", "2001:db8:ebbd:2083::/64 unicast [ripng1 23:25:07.457] * (120/3)"),
    ("1007", "\tvia fe80::216:3eff:fe2a:974e on eth1 weight 1"),
    ("1007", "\tvia fe80::216:3eff:fe83:868a on eth0 weight 1"),
    ("1008", "\tType: RIP univ"),
    ("1012", "\tRIP.metric: 3"),
    ("1012", "\tRIP.tag: 0000"),
    ("1007", "2001:db8:ebbd:2081::/64 unicast [direct1 23:26:00.740] * (240)"),
    ("1007", "\tdev eth2"),
    ("1008", "\tType: device univ"),
    ("1007", "                     unicast [ospf1 23:26:00.840] I (150/10) [129.223.0.39]"),
    ("1007", "\tdev eth2"),
    ("1008", "\tType: OSPF univ"),
    ("1007", "2001:db8:ebbd:2085::/64 unicast [ospf1 23:26:07.840] * E2 (150/20/10000) [1.2.3.4]"),
    ("1007", "\tvia fe80::1 on eth0 weight 1"),
    ("1008", "\tType: OSPF-E2 univ"),
    ("0000", ""),
]

IP_ROUTES = [
    {"dst": "2001:db8:ebbd:2081::/64", "dev": "eth2", "protocol": "kernel", "metric": 256},
    {
        "dst": "2001:db8:ebbd:2083::/64",
        "protocol": "bird",
        "metric": 32,
        "nexthops": [
            {"gateway": "fe80::216:3eff:fe2a:974e", "dev": "eth1", "weight": 1},
            {"gateway": "fe80::216:3eff:fe83:868a", "dev": "eth0", "weight": 1},
        ],
    },
    {"dst": "2001:db8:9::/64", "gateway": "fe80::9", "dev": "eth0", "protocol": "static"},
    {"dst": "default", "gateway": "fe80::1", "dev": "eth0", "protocol": "ra", "metric": 1024},
    {"dst": "fe80::/64", "dev": "eth0", "protocol": "kernel", "metric": 256},
]


def test_bird_routes_keep_the_best_route_per_prefix() -> None:
    best = bird_routes(SHOW_ROUTE_ALL)
    assert set(best) == {
        "2001:db8:ebbd:2083::/64",
        "2001:db8:ebbd:2081::/64",
        "2001:db8:ebbd:2085::/64",
    }
    rip = best["2001:db8:ebbd:2083::/64"]
    assert (rip.source, rip.protocol, rip.metric) == ("rip", "ripng1", 3)
    assert [h.dev for h in rip.nexthops] == ["eth1", "eth0"]
    assert best["2001:db8:ebbd:2081::/64"].source == "connected"  # direct beat ospf
    e2 = best["2001:db8:ebbd:2085::/64"]
    assert (e2.source, e2.ospf_type, e2.metric) == ("ospf", "E2", 20)


def test_route_rows_name_each_source() -> None:
    rows = {r.prefix: r for r in route_rows(IP_ROUTES, bird_routes(SHOW_ROUTE_ALL))}
    rip = rows["2001:db8:ebbd:2083::/64"]
    assert (rip.source, rip.via, rip.dev, rip.metric, rip.cost) == (
        "rip",
        "fe80::216:3eff:fe2a:974e",
        "eth1",
        32,
        3,
    )
    assert len(rip.to_json()["nexthops"]) == 2
    assert rows["2001:db8:ebbd:2081::/64"].source == "connected"
    assert rows["2001:db8:9::/64"].source == "static"
    assert rows["::/0"].source == "ra"
    assert rows["::/0"].to_json()["via"] == "fe80::1"


def test_bird_route_not_in_birds_table_keeps_kernel_name() -> None:
    rows = route_rows([{"dst": "2001:db8::/64", "protocol": "bird", "dev": "eth0"}], {})
    assert rows[0].source == "bird"


def test_neighbor_rows_of_each_protocol() -> None:
    rip = neighbor_rows(
        "ripng",
        [
            ("1021", "ripng1:"),
            ("1021", "IP address                Interface  Metric Routes    Seen"),
            ("1021", "fe80::216:3eff:fe83:868a  eth0            1      1   0.153"),
            ("1021", "fe80::216:3eff:fe2a:974e  eth1            1      1   0.313"),
            ("0000", ""),
        ],
    )
    assert [(r.address, r.interface, r.metric, r.routes, r.seen) for r in rip] == [
        ("fe80::216:3eff:fe83:868a", "eth0", 1, 1, 0.153),
        ("fe80::216:3eff:fe2a:974e", "eth1", 1, 1, 0.313),
    ]
    babel = neighbor_rows(
        "babel",
        [
            ("1024", "babel1:"),
            ("1024", "IP address                Interface  Metric Routes Hellos Expires Auth"),
            ("1024", "fe80::216:3eff:fe83:868a  eth0           96      1     12   1.016 No  "),
            ("0000", ""),
        ],
    )
    assert babel[0].metric == 96 and babel[0].expires == 1.016
    assert babel[0].to_json()["hellos"] == "12"
    ospf = neighbor_rows(
        "ospf3",
        [
            ("1013", "ospf1:"),
            ("1013", "Router ID   \tPri\t     State     \tDTime\tInterface  Router IP"),
            (
                "1013",
                "197.56.100.148\t  1\tFull/PtP  \t 2.586\teth0       fe80::216:3eff:fe83:868a",
            ),
            ("0000", ""),
        ],
    )
    assert (ospf[0].address, ospf[0].interface, ospf[0].state, ospf[0].router_id) == (
        "fe80::216:3eff:fe83:868a",
        "eth0",
        "Full/PtP",
        "197.56.100.148",
    )


def test_bfd_states() -> None:
    states = bfd_states(
        [
            ("1020", "bfd1:"),
            (
                "1020",
                "IP address                Interface  State      Since         Interval  Timeout",
            ),
            (
                "1020",
                "fe80::1                   eth0       Up         23:25:07.332    0.020    0.060",
            ),
            (
                "1020",
                "fe80::2                   eth1       Init       23:25:07.356    1.000    3.000",
            ),
            ("0000", ""),
        ]
    )
    assert states == {("fe80::1", "eth0"): "Up", ("fe80::2", "eth1"): "Init"}


# -- firewall rules for openwrt nodes -------------------------------------------------
def compiled(plan: RoutingPlan) -> str:
    network = stock_network("fd00:1:2::/48")
    devices = zone_devices(network)
    zones = zones_of_devices(parse(FIREWALL, "firewall"), devices)
    text = FIREWALL + firewall_rules(plan, zones)
    result = compile_firewall(parse(text, "firewall"), devices, strict=True)
    return result.nft_text


def _rules_for(nft: str, words: str) -> list[str]:
    return [line.strip() for line in nft.splitlines() if words in line]


def test_zones_of_stock_devices() -> None:
    devices = zone_devices(stock_network("fd00:1:2::/48"))
    assert zones_of_devices(parse(FIREWALL, "firewall"), devices) == {
        "br-lan": "lan",
        "eth1": "wan",
    }


def test_ripng_opens_udp_521_only_where_it_runs() -> None:
    nft = compiled(routing("ripng", interfaces=(RoutingInterface("eth1"),)))
    rules = _rules_for(nft, "udp dport 521")
    assert len(rules) == 1
    assert 'iifname "eth1"' in rules[0] and "ip6 saddr fe80::/10" in rules[0]
    assert "accept" in rules[0]
    assert "Allow-RIPng-eth1" in rules[0]
    assert not _rules_for(nft, "br-lan") or not any("521" in r for r in _rules_for(nft, "br-lan"))
    assert "3784" not in nft  # no BFD unless asked


def test_babel_ospf_and_bfd_rules() -> None:
    babel = compiled(routing("babel", interfaces=(RoutingInterface("eth1"),)))
    assert [r for r in _rules_for(babel, "udp dport 6696") if 'iifname "eth1"' in r]
    ospf = compiled(
        routing(
            "ospf3",
            interfaces=(RoutingInterface("eth1"), RoutingInterface("br-lan")),
            bfd_interval=0.1,
        )
    )
    proto89 = _rules_for(ospf, "meta l4proto 89")
    assert {('iifname "eth1"' in r, 'iifname "br-lan"' in r) for r in proto89} == {
        (True, False),
        (False, True),
    }
    bfd = _rules_for(ospf, "udp dport 3784")
    assert len(bfd) == 2
    assert "3785" not in ospf and "4784" not in ospf


def test_device_in_no_zone_gets_a_generic_input_rule() -> None:
    text = firewall_rules(routing("ripng", interfaces=(RoutingInterface("eth7"),)), {})
    assert "option src '*'" in text
    nft = compiled(routing("ripng", interfaces=(RoutingInterface("eth7"),)))
    assert _rules_for(nft, 'iifname "eth7" ip6 saddr fe80::/10 udp dport 521')


def test_an_isps_route_to_a_delegated_prefix_is_named() -> None:
    """kea's hook installs it with protocol 250, which iproute2 prints as a number."""
    entry = {"dst": "2001:db8:beef:c600::/56", "protocol": "250", "gateway": "fe80::1"}
    (row,) = route_rows([entry], {})
    assert (row.source, row.protocol) == ("delegated", "250")
