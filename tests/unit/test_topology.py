"""Topology loader: overlay, count expansion, inheritance, the DESIGN.md example."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from textwrap import dedent

import pytest

from palmnet.errors import InputError
from palmnet.topology.loader import load_lab, load_lab_text
from palmnet.topology.model import Lab

TOPOLOGY = Path(__file__).resolve().parents[1] / "golden" / "topology"


def lab(text: str) -> Lab:
    return load_lab_text(dedent(text), "palm.yaml")


def test_design_example_loads() -> None:
    result = load_lab(TOPOLOGY / "design.yaml")
    assert result.name == "palm"
    assert result.domain == "palm.example"
    assert result.dad is True
    assert list(result.networks) == ["br0", "lxdbr0"]
    assert list(result.nodes) == ["up", "alpine"] + [f"w{i}" for i in range(1, 11)]
    up = result.nodes["up"]
    assert up.kind == "router"
    assert up.interfaces["eth0"].ipv6 == [ipaddress.IPv6Interface("2001:db8:ebbd:2080::1/64")]
    assert up.interfaces["eth1"].ra is True
    # extbridge's eth0 overrides default's eth0
    assert result.nodes["alpine"].interfaces["eth0"].network == "br0"
    assert result.nodes["alpine"].kind == "host"
    w7 = result.nodes["w7"]
    assert (w7.template, w7.line, w7.service) == ("w", 21, "http")
    assert w7.interfaces["eth0"].network == "lxdbr0"


BASE = """\
name: palm
networks: {br0: {}, br1: {}, br2: {}}
profiles:
  default:
    kind: router
    interfaces:
      eth0: {network: br0, ipv6: [2001:db8::1/64], ra: true}
      eth1: {network: br0}
  second:
    service: http
    interfaces:
      eth0: {network: br1}
      eth2: {network: br2}
"""


def test_overlay_later_profile_wins_and_replaces_interface_entirely() -> None:
    result = lab(BASE + "nodes:\n  a: {profiles: [default, second]}\n")
    a = result.nodes["a"]
    assert a.kind == "router"  # second does not name kind: default's stays
    assert a.service == "http"
    assert list(a.interfaces) == ["eth0", "eth1", "eth2"]
    # eth0 redefined by `second`: no ipv6, no ra left over from `default`
    assert a.interfaces["eth0"].network == "br1"
    assert a.interfaces["eth0"].ipv6 == []
    assert a.interfaces["eth0"].ra is False


def test_overlay_order_is_the_listed_order() -> None:
    result = lab(BASE + "nodes:\n  a: {profiles: [second, default]}\n")
    assert result.nodes["a"].interfaces["eth0"].network == "br0"
    assert result.nodes["a"].interfaces["eth0"].ra is True


def test_node_keys_come_last() -> None:
    text = BASE + dedent("""\
        nodes:
          a:
            profiles: [default, second]
            kind: host
            interfaces:
              eth2: {network: br0, ipv4: [192.0.2.1/24]}
        """)
    a = lab(text).nodes["a"]
    assert a.kind == "host"
    assert a.interfaces["eth2"].network == "br0"
    assert a.interfaces["eth2"].ipv4 == [ipaddress.IPv4Interface("192.0.2.1/24")]


def test_default_profile_applies_implicitly_but_not_to_empty_list() -> None:
    result = lab(BASE + "nodes:\n  a: {}\n  b:\n  c: {profiles: []}\n")
    assert list(result.nodes["a"].interfaces) == ["eth0", "eth1"]
    assert result.nodes["b"].kind == "router"  # an empty entry is `{}`
    assert result.nodes["c"].interfaces == {}
    assert result.nodes["c"].kind == "host"


def test_no_default_profile_means_no_profile() -> None:
    result = lab("name: palm\nprofiles: {other: {kind: router}}\nnodes: {a: {}}\n")
    assert result.nodes["a"].kind == "host"


def test_count_expansion() -> None:
    text = """\
    name: palm
    networks: {br0: {}}
    nodes:
      solo: {}
      w:
        count: 3
        interfaces: {eth0: {network: br0}}
    """
    result = lab(text)
    assert list(result.nodes) == ["solo", "w1", "w2", "w3"]
    assert {n.template for n in result.nodes.values()} == {"solo", "w"}
    assert result.nodes["w3"].line == 5
    assert result.nodes["solo"].line == 4
    assert result.nodes["w2"].interfaces["eth0"].network == "br0"


@pytest.mark.parametrize(
    ("lab_dad", "profile_dad", "node_dad", "expected"),
    [
        ("", "", "", True),
        ("dad: false\n", "", "", False),
        ("dad: false\n", "dad: true", "", True),
        ("", "dad: false", "", False),
        ("", "dad: false", "dad: true", True),
        ("dad: true\n", "", "dad: false", False),
    ],
)
def test_dad_inheritance(lab_dad: str, profile_dad: str, node_dad: str, expected: bool) -> None:
    text = (
        f"name: palm\n{lab_dad}"
        f"profiles:\n  default: {{{profile_dad}}}\n"
        f"nodes:\n  a: {{{node_dad}}}\n"
    )
    result = lab(text)
    assert result.dad is (lab_dad != "dad: false\n")
    assert result.nodes["a"].dad is expected


def test_domain_defaults_to_lab_name() -> None:
    assert lab("name: palm\n").domain == "palm.lab"
    assert lab("name: palm\ndomain: Palm.Example.\n").domain == "palm.example"


def test_null_sections_and_networks() -> None:
    result = lab("name: palm\nnetworks:\n  br0:\nprofiles:\nnodes:\n")
    assert list(result.networks) == ["br0"]
    assert result.nodes == {}


def test_yaml12_reads_unquoted_address_as_string() -> None:
    text = """\
    name: palm
    networks: {br0: {}}
    nodes:
      a:
        interfaces:
          eth0: {network: br0, ipv6: [2001:10:20:30:40:50:1:2/64]}
    """
    iface = lab(text).nodes["a"].interfaces["eth0"]
    assert iface.ipv6 == [ipaddress.IPv6Interface("2001:10:20:30:40:50:1:2/64")]


def test_errors_name_the_file_as_given() -> None:
    with pytest.raises(InputError) as info:
        load_lab_text("name: palm\nnodes: {a: {kind: switch}}\n", "labs/x.yaml")
    assert info.value.file == "labs/x.yaml"
    assert (info.value.line, info.value.key) == (2, "nodes.a.kind")


def test_several_errors_sorted_by_line() -> None:
    text = "name: palm\nnodes:\n  b: {kind: bad}\n  a: {count: 0}\nextra: 1\n"
    with pytest.raises(InputError) as info:
        lab(text)
    lines = str(info.value).splitlines()
    assert [line.split(":")[1] for line in lines] == ["3", "4", "5"]
    assert info.value.line == 3


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InputError) as info:
        load_lab(missing)
    assert str(info.value) == f"{missing}: no such file"


def test_empty_file() -> None:
    with pytest.raises(InputError, match=r"palm\.yaml:1: the lab file is empty"):
        lab("")
