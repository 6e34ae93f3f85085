"""Prefix delegation end to end: kea, dhcpcd, radvd and the kernel in real labs.

One lab is a copy of examples/cascade.yaml (ISP /48 as /56s -> r1 /56, LAN
share /57 -> r2 /60 -> /64 LANs) with short lease lifetimes (T1 10 s, valid
30 s) so that renumbered addresses run out within the test; DAD stays on.
The tests run in file order on that one lab: what the plan printed is what
the hosts hold, routes follow the leases, renumbering reaches every host and
deprecates the old prefix at once, a restarted router gets its prefix back.
A second small lab has a pool with room for two routers and three asking.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from palmnet.lab import plan_file
from palmnet.plan.model import Plan
from tests.integration.labs import ip_json, node_exec, run, service_host_path, traces, up

pytestmark = pytest.mark.root

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NEW_POOL = "2001:db8:beef::/48"
LIFETIMES = "t1: 10, t2: 16, preferred: 20, valid: 30"
VALID = 30
ROUTE_PROTO = 250


def _name(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def _wait(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.2)  # poll: addresses and routes of another namespace, read by `ip`


def _addrs(lab: str, node: str, dev: str = "eth0") -> dict[str, dict]:
    """Global IPv6 addresses of a node's interface: address -> ip's addr_info."""
    out = {}
    for link in ip_json(lab, node, "-6", "addr", "show", "dev", dev, "scope", "global"):
        for a in link.get("addr_info", []):
            if "local" in a:
                out[a["local"]] = a
    return out


def _usable(info: dict) -> bool:
    return not info.get("tentative") and not info.get("deprecated")


@pytest.fixture(scope="module")
def cascade(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[tuple[str, Path]]:
    work = tmp_path_factory.mktemp("cascade")
    for folder in ("cascade-r1", "cascade-r2"):
        shutil.copytree(EXAMPLES / folder, work / folder)
    lab = _name("pdc")
    text = (EXAMPLES / "cascade.yaml").read_text()
    text = text.replace("name: cascade", f"name: {lab}", 1)
    text = text.replace(
        "delegate: {pool: 2001:db8:ebbd::/48, length: 56}",
        f"delegate: {{pool: 2001:db8:ebbd::/48, length: 56, {LIFETIMES}}}",
    )
    assert LIFETIMES in text
    path = work / "cascade.yaml"
    path.write_text(text)
    up(path, backend, timeout=180)
    try:
        yield lab, path
    finally:
        run("down", lab, check=False)
    assert traces(lab, backend) == []


def _plan(path: Path) -> Plan:
    return plan_file(path)


def test_hosts_hold_the_planned_nested_delegations(cascade: tuple[str, Path]) -> None:
    lab, path = cascade
    plan = _plan(path)
    pool = plan.node("isp").pd_servers[0].pools[0]
    r1, r2 = plan.node("r1").pd_client, plan.node("r2").pd_client
    assert r1 is not None and r2 is not None
    assert r1.delegated is not None and r2.delegated is not None
    assert r2.delegated.subnet_of(r1.delegated) and r1.delegated.subnet_of(pool)
    for host, router in (("h2", r2), ("h1", r1)):
        planned = {
            str(a.ip) for a in plan.node(host).interface("eth0").ipv6_slaac
            if a.ip in router.delegated  # type: ignore[operator]
        }  # fmt: skip
        assert planned, f"{host} has no planned address in {router.delegated}"
        live = _addrs(lab, host)
        for address in planned:
            assert address in live and _usable(live[address]), f"{host}: {address} {live}"
    from palmnet.cli.isp import prefix_rows

    rows = {r["name"]: r for r in prefix_rows(lab)}
    assert rows["r1"]["delegated"] == str(r1.delegated) and rows["r1"]["state"] == "ok"
    assert rows["r2"]["lans"] == [f"br-lan {r2.assignments[0].lan}"]


def test_routes_to_delegations_via_link_locals(cascade: tuple[str, Path]) -> None:
    lab, path = cascade
    plan = _plan(path)
    for server, client in (("isp", "r1"), ("r1", "r2")):
        pd = plan.node(client).pd_client
        assert pd is not None
        routes = ip_json(lab, server, "-6", "route", "show", "proto", str(ROUTE_PROTO))
        via = {r["dst"]: r.get("gateway") for r in routes}
        assert via.get(str(pd.delegated)) == str(plan.node(client).interface("eth1").link_local.ip)


def test_host_behind_r2_reaches_the_isp_link_and_back(cascade: tuple[str, Path]) -> None:
    lab, path = cascade
    plan = _plan(path)
    web = str(plan.node("web").interface("eth0").ipv6_slaac[0].ip)
    h2 = next(
        str(a.ip)
        for a in plan.node("h2").interface("eth0").ipv6_slaac
        if a.ip not in ipaddress.IPv6Network("fc00::/7")
    )
    node_exec(lab, "h2", "ping", "-6", "-c1", "-W2", web)
    node_exec(lab, "web", "ping", "-6", "-c1", "-W2", h2)


def test_renumbering_reaches_every_host(cascade: tuple[str, Path]) -> None:
    lab, path = cascade
    old = _plan(path)
    old_h2 = {a: i for a, i in _addrs(lab, "h2").items() if a.startswith("2001:db8:ebbd:")}
    ula_h2 = {a for a in _addrs(lab, "h2") if a.startswith("fd")}
    assert old_h2 and ula_h2
    proc = run("isp", "renumber", "--lab", lab, "isp", NEW_POOL, "--format", "json", timeout=90)
    result = json.loads(proc.stdout)
    assert set(result["hosts"]) == {"h1", "h2"}
    assert all(s is not None and s < 10 for s in result["hosts"].values()), result
    live = _addrs(lab, "h2")
    new = [a for a in live if a.startswith("2001:db8:beef:c610:")]
    assert new and all(_usable(live[a]) for a in new)
    for address in old_h2:  # deprecated at once, still valid
        assert address in live and live[address]["preferred_life_time"] == 0
        assert live[address]["valid_life_time"] <= VALID
    assert ula_h2 <= set(live) and all(_usable(live[a]) for a in ula_h2)  # ULA untouched

    domain = old.domain

    # r2 no longer holds its old LAN address: its RA withdrew it as a DNS server
    # (lifetime 0), in the same RA that brought the new prefix. rdnssd rewrites
    # resolv.conf on its own after the kernel has taken the addresses.
    def resolvers() -> list[str]:
        text = node_exec(lab, "h2", "cat", "/etc/resolv.conf").stdout
        return [line.split()[1] for line in text.splitlines() if line.startswith("nameserver")]

    _wait(
        lambda: not any(r.startswith("2001:db8:ebbd:") for r in resolvers()),
        3,
        "h2's resolv.conf drops r2's old address 2001:db8:ebbd:c610::1",
    )
    assert "2001:db8:beef:c610::1" in resolvers()

    # `renumber` returns once the lab's DNS answers the new addresses: asked right
    # away, from h2 through its router, as any client would, and answered at once.
    dig = node_exec(lab, "h2", "dig", "+short", "+tries=1", "AAAA", f"h2.{domain}")
    assert "timed out" not in dig.stdout, dig.stdout
    answer = [ipaddress.ip_address(line) for line in dig.stdout.split()]
    assert any(a in ipaddress.ip_network(NEW_POOL) for a in answer), answer
    assert not any(str(a).startswith("2001:db8:ebbd:") for a in answer), answer
    assert result["dns_seconds"] >= max(result["hosts"].values()), result
    web = str(old.node("web").interface("eth0").ipv6_slaac[0].ip)
    route = ip_json(lab, "h2", "-6", "route", "get", web)
    assert route[0]["prefsrc"].startswith("2001:db8:beef:c610:")
    node_exec(lab, "h2", "ping", "-6", "-c1", "-W2", web)  # a new connection, new source

    isp_routes = {
        r["dst"] for r in ip_json(lab, "isp", "-6", "route", "show", "proto", str(ROUTE_PROTO))
    }
    assert isp_routes == {"2001:db8:beef:c600::/56"}  # the old route went with the old lease


def test_old_addresses_go_when_their_valid_lifetime_ends(cascade: tuple[str, Path]) -> None:
    lab, _ = cascade

    def gone() -> bool:
        return not any(a.startswith("2001:db8:ebbd:") for a in _addrs(lab, "h2"))

    _wait(gone, VALID + 15, "h2's old addresses removed")


def test_restarted_router_gets_its_prefix_back(cascade: tuple[str, Path]) -> None:
    lab, _ = cascade
    from palmnet.cli.isp import prefix_rows

    before = {r["name"]: r["delegated"] for r in prefix_rows(lab)}
    run("stop", "--lab", lab, "r1")  # waits until r1's ports have left the switch
    run("start", "--lab", lab, "r1")
    rows = _wait(
        lambda: [r for r in prefix_rows(lab) if r["name"] == "r1" and r["state"] == "ok"],
        15,
        "r1 delegated again",
    )
    assert rows[0]["delegated"] == before["r1"] == "2001:db8:beef:c600::/56"
    assert service_host_path(lab, "r1", "dhcpcd", "pd-state.json").exists()


def test_exhausted_pool_leaves_one_router_without_a_prefix(tmp_path: Path, backend: str) -> None:
    lab = _name("pdx")
    (tmp_path / "router").mkdir()
    network = (EXAMPLES / "cascade-r2" / "network").read_text()
    network = network.replace("'fd11:2233:4402::/48'", "'auto'").replace("'60'", "'56'")
    network = network.replace("option ip6assign '56'", "option ip6assign '64'")
    (tmp_path / "router" / "network").write_text(network)
    routers = "".join(
        f"  r{i}:\n    kind: openwrt\n    uci: router\n"
        f"    interfaces: {{eth0: {{network: l{i}}}, eth1: {{network: isp}}}}\n"
        for i in (1, 2, 3)
    )
    (tmp_path / "lab.yaml").write_text(
        f"name: {lab}\nnetworks:\n  isp: {{}}\n  l1: {{}}\n  l2: {{}}\n  l3: {{}}\nnodes:\n"
        "  isp:\n    kind: isp\n    delegate: {pool: 2001:db8:ebbd::/55, length: 56}\n"
        "    interfaces:\n      eth0: {network: isp, ipv6: [2001:db8:ebb0::1/64], ra: true}\n"
        + routers
    )
    plan = plan_file(tmp_path / "lab.yaml")
    starved = [n.name for n in plan.nodes if n.pd_client and n.pd_client.delegated is None]
    assert len(starved) == 1
    up(tmp_path / "lab.yaml", backend, timeout=180)
    try:
        from palmnet.cli.isp import NO_PREFIX, prefix_rows

        rows = {r["name"]: r for r in prefix_rows(lab)}
        assert rows[starved[0]]["state"] == NO_PREFIX
        assert all(r["state"] == "ok" for n, r in rows.items() if n != starved[0])
        nodes = json.loads(run("ls", lab, "--format", "json").stdout)
        assert {n["state"] for n in nodes} == {"RUNNING"}
        log = service_host_path(lab, starved[0], "dhcpcd", "dhcpcd.log")
        _wait(lambda: "no prefixes" in log.read_text(), 10, "dhcpcd logs the refusal")
    finally:
        run("down", lab, check=False)
    assert traces(lab, backend) == []


def test_malformed_pool_is_bad_input(tmp_path: Path) -> None:
    for pool, length in (("2001:db8:ebbd::/56", 56), ("2001:db8:zz::/48", 56)):
        path = tmp_path / "bad.yaml"
        path.write_text(
            "name: pdbad\nnetworks:\n  isp: {}\nnodes:\n  isp:\n    kind: isp\n"
            f"    delegate: {{pool: '{pool}', length: {length}}}\n"
            "    interfaces:\n      eth0: {network: isp, ipv6: [2001:db8:ebb0::1/64], ra: true}\n"
        )
        for verb in ("plan", "up"):
            proc = run(verb, str(path), check=False)
            assert proc.returncode == 2, (verb, pool, proc.stderr)
            assert "Traceback" not in proc.stderr
    proc = run("isp", "renumber", "--lab", "pdnone", "isp", "2001:db8::/48", check=False)
    assert proc.returncode == 2
