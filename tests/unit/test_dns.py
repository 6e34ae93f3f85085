"""The lab's DNS records and zone files (palmnet.plan.dns, `palmnet dns zone`).

Zones are checked by BIND's own named-checkzone and the reverse names by
dnspython, not against text palmnet wrote for itself.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import shutil
import subprocess
from pathlib import Path
from textwrap import dedent

import dns.name
import dns.rdatatype
import dns.reversename
import dns.zone
import pytest
import typer
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from typer.testing import CliRunner, Result

from palmnet.cli import dns as dns_cli
from palmnet.errors import InputError
from palmnet.plan.build import plan_lab
from palmnet.plan.dns import (
    NO_NAME_SERVER,
    lab_records,
    name_server,
    records_by_name,
    render_zones,
)
from palmnet.plan.model import DnsRecord, DnsServerPlan, Plan
from palmnet.topology.loader import load_lab_text

LAB = """\
name: palm
domain: Palm.Example.
networks: {lan: {}}
nodes:
  router:
    kind: router
    interfaces:
      eth0:
        network: lan
        ipv6: [2001:db8:ebbd:2084::1/64, fd12:3456:789a:1::1/64]
        ipv4: [192.0.2.1/24]
        ra: true
  web:
    interfaces:
      eth0: {network: lan, ipv4: [192.0.2.10/24]}
  db:
    interfaces:
      eth0: {network: lan}
"""

GUA = ipaddress.IPv6Network("2001:db8:ebbd:2084::/64")
ULA = ipaddress.IPv6Network("fd12:3456:789a:1::/64")
FORWARD = "palm.example"
GUA_ZONE = "4.8.0.2.d.b.b.e.8.b.d.0.1.0.0.2.ip6.arpa"
ULA_ZONE = "1.0.0.0.a.9.8.7.6.5.4.3.2.1.d.f.ip6.arpa"
V4_ZONE = "2.0.192.in-addr.arpa"


def plan(text: str = LAB) -> Plan:
    return plan_lab(load_lab_text(dedent(text), "palm.yaml"))


def without_dns(p: Plan) -> Plan:
    """The plan as if no node served DNS, whatever the plan builder decides."""
    return dataclasses.replace(p, nodes=tuple(dataclasses.replace(n, dns=None) for n in p.nodes))


def with_dns_on(p: Plan, node: str) -> Plan:
    server = DnsServerPlan(domain=p.domain, interfaces=("eth0",), records=lab_records(p))
    nodes = tuple(dataclasses.replace(n, dns=server if n.name == node else None) for n in p.nodes)
    return dataclasses.replace(p, nodes=nodes)


def slaac(p: Plan, node: str, net: ipaddress.IPv6Network) -> ipaddress.IPv6Address:
    (addr,) = [a.ip for a in p.node(node).interfaces[0].ipv6_slaac if a.ip in net]
    return addr


# -- records ---------------------------------------------------------------------------


def test_records_per_node_in_plan_order_ipv6_first() -> None:
    p = plan()
    records = lab_records(p)
    assert [(r.name, str(r.address)) for r in records] == [
        ("router.palm.example", "2001:db8:ebbd:2084::1"),
        ("router.palm.example", "fd12:3456:789a:1::1"),
        ("router.palm.example", "192.0.2.1"),
        ("web.palm.example", str(slaac(p, "web", GUA))),
        ("web.palm.example", str(slaac(p, "web", ULA))),
        ("web.palm.example", "192.0.2.10"),
        ("db.palm.example", str(slaac(p, "db", GUA))),
        ("db.palm.example", str(slaac(p, "db", ULA))),
    ]
    assert lab_records(plan()) == records  # deterministic


def test_no_link_local_in_records() -> None:
    p = plan()
    link_locals = {i.link_local.ip for n in p.nodes for i in n.interfaces}
    assert link_locals
    assert not link_locals & {r.address for r in lab_records(p)}


def test_dhcp_leases_bridge_ports_and_duplicates() -> None:
    p = plan()
    db = p.node("db")
    eth0 = db.interfaces[0]
    lease = ipaddress.IPv4Interface("192.0.2.20/24")
    ula = eth0.ipv6_slaac[1]
    port = dataclasses.replace(
        eth0, name="eth1", master="br-lan", ipv4_static=(ipaddress.IPv4Interface("10.0.0.1/8"),)
    )
    twin = dataclasses.replace(eth0, name="eth2", ipv6_slaac=(ula,), ipv4_dhcp=())
    db = dataclasses.replace(
        db, interfaces=(dataclasses.replace(eth0, ipv4_dhcp=(lease,)), port, twin)
    )
    p = dataclasses.replace(p, nodes=tuple(db if n.name == "db" else n for n in p.nodes))
    addresses = records_by_name(lab_records(p))["db.palm.example"]
    # the lease is named; the bridge port is not; the ULA on two interfaces once
    assert addresses == (slaac(p, "db", GUA), ula.ip, lease.ip)


def test_records_by_name_groups_in_order() -> None:
    grouped = records_by_name(lab_records(plan()))
    assert list(grouped) == ["router.palm.example", "web.palm.example", "db.palm.example"]
    assert [str(a) for a in grouped["router.palm.example"]] == [
        "2001:db8:ebbd:2084::1",
        "fd12:3456:789a:1::1",
        "192.0.2.1",
    ]


# -- zones -----------------------------------------------------------------------------


def test_zone_names_forward_then_reverse_per_64_and_24() -> None:
    assert list(render_zones(plan())) == [FORWARD, GUA_ZONE, ULA_ZONE, V4_ZONE]


def test_forward_zone_has_every_record_and_nothing_else() -> None:
    p = plan()
    zone = dns.zone.from_text(render_zones(p)[FORWARD], origin=FORWARD, relativize=False)
    found = {
        (name.to_text(omit_final_dot=True), ipaddress.ip_address(rdata.address))
        for name, _ttl, rdata in zone.iterate_rdatas()
        if isinstance(rdata, (AAAA, A))
    }
    assert found == {(r.name, r.address) for r in lab_records(p)}


def test_reverse_names_match_dnspython() -> None:
    p = plan()
    zones = render_zones(p)
    ptrs: set[tuple[dns.name.Name, str]] = set()
    for name, text in zones.items():
        if name == FORWARD:
            continue
        zone = dns.zone.from_text(text, origin=name, relativize=False)
        for owner, _ttl, rdata in zone.iterate_rdatas(dns.rdatatype.PTR):
            assert isinstance(rdata, PTR)
            ptrs.add((owner, rdata.target.to_text(omit_final_dot=True)))
    expected = {(dns.reversename.from_address(str(r.address)), r.name) for r in lab_records(p)}
    assert ptrs == expected


def test_ns_is_localhost_without_a_dns_server() -> None:
    p = without_dns(plan())
    assert name_server(p, lab_records(p)) == NO_NAME_SERVER
    for name, text in render_zones(p).items():
        zone = dns.zone.from_text(text, origin=name)
        assert zone.get_soa().mname == NO_NAME_SERVER
        (ns,) = zone.find_rdataset("@", "NS")
        assert ns.target == NO_NAME_SERVER


def test_ns_is_the_first_router_serving_dns() -> None:
    p = with_dns_on(plan(), "router")
    router = dns.name.from_text("router.palm.example")
    assert name_server(p, lab_records(p)) == router
    zone = dns.zone.from_text(render_zones(p)[FORWARD], origin=FORWARD, relativize=False)
    (ns,) = zone.find_rdataset(FORWARD + ".", "NS")
    assert ns.target == router
    # a host serving DNS is not taken for the lab's name server
    assert name_server(with_dns_on(plan(), "web"), lab_records(p)) == NO_NAME_SERVER


def test_serial_is_stable_follows_content_and_can_be_given() -> None:
    p = without_dns(plan())

    def serials(zones: dict[str, str]) -> dict[str, int]:
        return {n: dns.zone.from_text(t, origin=n).get_soa().serial for n, t in zones.items()}

    first = serials(render_zones(p))
    assert first == serials(render_zones(without_dns(plan())))
    assert all(0 < s < 2**32 for s in first.values())
    changed = serials(render_zones(without_dns(plan(LAB.replace("192.0.2.10", "192.0.2.11")))))
    assert changed[V4_ZONE] != first[V4_ZONE]
    assert changed[GUA_ZONE] == first[GUA_ZONE]
    assert set(serials(render_zones(p, serial=2024010101)).values()) == {2024010101}
    with pytest.raises(InputError):
        render_zones(p, serial=2**32)


def test_empty_lab_still_has_a_valid_forward_zone() -> None:
    text = "name: bare\nnetworks: {lan: {}}\nnodes:\n  h: {interfaces: {eth0: {network: lan}}}\n"
    zones = render_zones(plan(text))
    assert list(zones) == ["bare.lab"]
    dns.zone.from_text(zones["bare.lab"], origin="bare.lab").check_origin()


NAMED_CHECKZONE = shutil.which("named-checkzone")


@pytest.mark.skipif(NAMED_CHECKZONE is None, reason="named-checkzone (bind9-utils) missing")
@pytest.mark.parametrize("dns_node", [None, "router"])
def test_named_checkzone_accepts_every_zone(tmp_path: Path, dns_node: str | None) -> None:
    p = with_dns_on(plan(), dns_node) if dns_node else without_dns(plan())
    assert NAMED_CHECKZONE is not None
    for name, text in render_zones(p).items():
        path = tmp_path / f"db.{name}"
        path.write_text(text)
        # -k/-n fail: bad owner names and NS targets given as addresses are errors too
        result = subprocess.run(
            [NAMED_CHECKZONE, "-k", "fail", "-n", "fail", name, str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip().endswith("OK"), result.stdout


# -- CLI -------------------------------------------------------------------------------


def app() -> typer.Typer:
    """The real palmnet app, with `dns` added until it is in VERB_MODULES."""
    from palmnet.cli import app as app_module

    built = app_module.build_app()
    if not any(g.name == "dns" for g in built.registered_groups):
        dns_cli.register(built)
        app_module._guard(built)  # InputError -> exit 2, as for every verb
    return built


@pytest.fixture
def lab_file(tmp_path: Path) -> Path:
    path = tmp_path / "palm.yaml"
    path.write_text(LAB)
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(app(), ["dns", "zone", *args])


def test_cli_topology_prints_every_zone(lab_file: Path) -> None:
    result = run("--topology", str(lab_file))
    assert result.exit_code == 0, result.output
    zones = render_zones(plan())
    expected = "\n".join(f"; zone {n}\n{t}" for n, t in zones.items())
    assert result.output == expected
    heads = [line for line in result.output.splitlines() if line.startswith("; zone ")]
    assert heads == [f"; zone {n}" for n in zones]


def test_cli_out_writes_db_files(lab_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "zones"
    result = run("--topology", str(lab_file), "--out", str(out), "--serial", "7")
    assert result.exit_code == 0, result.output
    zones = render_zones(plan(), serial=7)
    assert result.output.splitlines() == [str(out / f"db.{n}") for n in zones]
    for name, text in zones.items():
        assert (out / f"db.{name}").read_text() == text


def test_cli_json_prints_the_records(lab_file: Path) -> None:
    result = run("--topology", str(lab_file), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data[0] == {
        "name": "router.palm.example",
        "type": "AAAA",
        "address": "2001:db8:ebbd:2084::1",
    }
    assert [DnsRecord(d["name"], ipaddress.ip_address(d["address"])) for d in data] == list(
        lab_records(plan())
    )
    assert {d["type"] for d in data} == {"AAAA", "A"}


@pytest.mark.parametrize(
    "args",
    [
        ["palm", "--topology", "palm.yaml"],
        ["palm", "--lab", "other"],
        ["--topology", "palm.yaml", "--format", "json", "--out", "x"],
        ["--topology", "missing.yaml"],
    ],
)
def test_cli_bad_input_exits_2(
    args: list[str], lab_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(lab_file.parent)
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
