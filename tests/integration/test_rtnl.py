"""palmnet's rtnetlink client against the kernel, checked with `ip -j`.

Two namespaces of the test's own (pnrtnl-*): a switch holding a bridge and
the outer ends of 50 veth pairs, and a node holding their peers, made there
directly with the MACs asked for. Half the pairs are made one request at a
time, half pipelined. Nothing outside those namespaces is touched.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from palmnet.kernel import namespaces, nsfs, rtnl
from palmnet.kernel.rtnl import IFA_F_NODAD, Rtnl

PAIRS = 50

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
]


@dataclass
class Pair:
    sw: str
    node: str

    def path(self, ns: str) -> str:
        return nsfs.netns_path(ns)


@pytest.fixture
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    tag = secrets.token_hex(3)
    made: list[str] = []

    def cleanup() -> None:
        for name in made:
            namespaces.delete_netns(name)

    request.addfinalizer(cleanup)
    for role in ("sw", "node"):
        name = f"pnrtnl-{tag}-{role}"
        namespaces.create_netns(name)
        made.append(name)
    yield Pair(*made)


def _ip_json(ns: str, *args: str) -> list[dict]:
    out = subprocess.run(
        ["ip", "-j", "-n", ns, *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)


def _mac(i: int) -> str:
    return f"02:00:5e:00:01:{i:02x}"


def _addresses(link: dict) -> dict[str, dict]:
    return {f"{a['local']}/{a['prefixlen']}": a for a in link.get("addr_info", [])}


def test_bridge_veths_addresses(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtnl, "WINDOW", 8)  # pipelines flush several times midway
    fd = os.open(pair.path(pair.node), os.O_RDONLY)
    try:
        with Rtnl.open(pair.path(pair.sw)) as sw, Rtnl.open(pair.path(pair.node)) as node:
            br = sw.add_bridge("br0")
            for i in range(PAIRS // 2):
                sw.add_veth(f"v{i:02d}", f"e{i}", fd, _mac(i), br, up=True)
            with sw.pipeline():
                for i in range(PAIRS // 2, PAIRS):
                    sw.add_veth(f"v{i:02d}", f"e{i}", fd, _mac(i), br, up=True)
            node.set_up(index=1)  # lo, by index
            with node.pipeline():
                for i in range(PAIRS):
                    node.set_up(f"e{i}")  # by name, no lookup
            index = {i: node.index_of(f"e{i}") for i in range(PAIRS)}
            for i in range(PAIRS):
                node.add_address(index[i], f"2001:db8:{i:x}::1", 64, IFA_F_NODAD)
            with node.pipeline():
                for i in range(PAIRS):
                    node.add_address(index[i], f"10.{i}.0.1", 24)
    finally:
        os.close(fd)

    bridge = _ip_json(pair.sw, "-d", "link", "show", "br0")[0]
    assert bridge["ifindex"] == br
    assert "UP" in bridge["flags"]
    assert bridge["linkinfo"]["info_kind"] == "bridge"
    assert bridge["linkinfo"]["info_data"]["stp_state"] == 0
    assert bridge["linkinfo"]["info_data"]["forward_delay"] == 0

    outer = {link["ifname"]: link for link in _ip_json(pair.sw, "link", "show")}
    inner = {link["ifname"]: link for link in _ip_json(pair.node, "link", "show")}
    addrs = {link["ifname"]: link for link in _ip_json(pair.node, "addr", "show")}
    assert set(outer) == {"lo", "br0"} | {f"v{i:02d}" for i in range(PAIRS)}
    assert set(inner) == {"lo"} | {f"e{i}" for i in range(PAIRS)}
    assert "UP" in inner["lo"]["flags"]
    for i in range(PAIRS):
        v, e = outer[f"v{i:02d}"], inner[f"e{i}"]
        assert v["master"] == "br0"
        assert "UP" in v["flags"]
        assert "LOWER_UP" in v["flags"]  # carrier: its peer is up too (operstate may lag)
        assert e["address"] == _mac(i)
        assert e["ifindex"] == index[i]
        assert {"UP", "LOWER_UP"} <= set(e["flags"])
        assert e["link_index"] == v["ifindex"]
        got = _addresses(addrs[f"e{i}"])
        v6 = got[f"{ipaddress.ip_address(f'2001:db8:{i:x}::1')}/64"]
        assert v6["family"] == "inet6"
        assert v6.get("nodad") is True
        assert not v6.get("tentative")
        assert got[f"10.{i}.0.1/24"]["family"] == "inet"


def test_errors_name_the_object(pair: Pair) -> None:
    fd = os.open(pair.path(pair.node), os.O_RDONLY)
    try:
        with Rtnl.open(pair.path(pair.sw)) as sw:
            br = sw.add_bridge("br0", up=False)
            sw.add_veth("v1a2b3", "eth0", fd, _mac(1), br, up=True)

            with pytest.raises(OSError) as exc:
                sw.add_veth("v1a2b3", "eth1", fd, _mac(2), br, up=True)
            assert exc.value.errno == errno.EEXIST
            assert str(exc.value.strerror).startswith("add veth v1a2b3 (peer eth1): File exists")

            with pytest.raises(OSError) as exc:  # the peer's name is taken in the node
                sw.add_veth("v9", "eth0", fd, None, None, up=False)
            assert exc.value.errno == errno.EEXIST
            assert "add veth v9 (peer eth0)" in str(exc.value)

            with pytest.raises(OSError) as exc:
                sw.add_bridge("br0")
            assert exc.value.errno == errno.EEXIST
            assert "add bridge br0" in str(exc.value)

            with pytest.raises(OSError) as exc:
                sw.index_of("nosuch0")
            assert exc.value.errno == errno.ENODEV
            assert "look up link nosuch0" in str(exc.value)

            # pipelined: every request is made, the first failure is raised at the end
            with pytest.raises(OSError) as exc, sw.pipeline():
                sw.add_veth("v2", "eth2", fd, None, br, up=False)
                sw.add_veth("v1a2b3", "eth3", fd, None, br, up=False)
                sw.add_veth("v4", "eth4", fd, None, br, up=False)
                sw.add_veth("v2", "eth5", fd, None, br, up=False)
            assert exc.value.errno == errno.EEXIST
            assert "add veth v1a2b3 (peer eth3)" in str(exc.value)
            assert "1 more failed request" in str(exc.value)
            assert sw.index_of("v4") > 0  # the socket is still in step

            sw.delete_link("v1a2b3")
            with pytest.raises(OSError) as exc:
                sw.delete_link("v1a2b3")
            assert exc.value.errno == errno.ENODEV
            assert "delete link v1a2b3" in str(exc.value)
    finally:
        os.close(fd)
    names = {link["ifname"] for link in _ip_json(pair.node, "link", "show")}
    assert names == {"lo", "eth2", "eth4"}  # eth0 went with v1a2b3


def test_address_errors(pair: Pair) -> None:
    with Rtnl.open(pair.path(pair.node)) as node:
        node.add_address(1, "2001:db8::1", 128, IFA_F_NODAD)
        with pytest.raises(OSError) as exc:
            node.add_address(1, "2001:db8::1", 128, IFA_F_NODAD)
        assert exc.value.errno == errno.EEXIST
        assert "add address 2001:db8::1/128 on link #1" in str(exc.value)
        with pytest.raises(OSError) as exc:
            node.add_address(999, "192.0.2.1", 24)
        assert exc.value.errno == errno.ENODEV
        with pytest.raises(ValueError):
            node.set_up()


def test_open_in_current_namespace(pair: Pair) -> None:
    with nsfs.netns(pair.path(pair.node)):
        rt = Rtnl.open(None)  # this thread's namespace, here the node's
    with rt:
        rt.set_up("lo")
    assert "UP" in _ip_json(pair.node, "link", "show", "lo")[0]["flags"]
