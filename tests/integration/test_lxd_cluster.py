"""The LXD backend on a real two-member LXD cluster, built on this machine.

The module builds the test cluster once (scripts/lxd-test-cluster.sh: two system
containers of the host LXD with security.nesting, each running LXD 5.0 from
Debian, joined by palmnet's own `lxd cluster init|add|join`) and removes it at
the end. It skips only where the host LXD or the nested members cannot start,
with the script's own error; palmnet failing to form the cluster is a failure.

palmnet talks to member 1 (LXD_DIR through /proc/PID/root); the lab networks
cross the members in LXD's VXLAN tunnels over the members' underlay bridge.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import labs
from tests.integration.labs import ip_json, lxd_reason, node_exec, run, run_json, write_lab
from tests.integration.test_routing import (
    PROFILES,
    neighbors_json,
    ring_copy,
    route_json,
    wait_for,
)
from tests.integration.test_spine import _addresses, _reversed_nodes

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "lxd-test-cluster.sh"
PREFIX = "pncl"
M1, M2 = f"{PREFIX}-m1", f"{PREFIX}-m2"
FIRST = "198.51.100.11"  # member 1's address on the underlay (the script's)


def _host_lxd_env() -> dict[str, str]:
    """The environment of a command for the host's own LXD (not the cluster's)."""
    return {k: v for k, v in os.environ.items() if k != "LXD_DIR"}


def member_pid(member: str) -> int:
    """The host pid of a member container's init (asked of the host LXD)."""
    out = subprocess.run(
        ["lxc", "query", f"/1.0/instances/{member}/state"],
        capture_output=True,
        text=True,
        env=_host_lxd_env(),
        check=True,
    ).stdout
    return int(json.loads(out)["pid"])


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A two-member test cluster; LXD_DIR points palmnet at member 1."""
    reason = lxd_reason()
    if reason is not None:
        pytest.skip(reason)
    env = {**_host_lxd_env(), "PALMNET_PYTHON": sys.executable, "PNCL_PREFIX": PREFIX}
    proc = subprocess.run(
        [str(SCRIPT), "up", "2"], capture_output=True, text=True, env=env, timeout=900
    )
    if proc.returncode != 0:
        subprocess.run([str(SCRIPT), "down"], capture_output=True, env=env, timeout=300)
        why = proc.stderr.strip()[-800:]
        if proc.returncode == 3:  # the nested members cannot run here
            pytest.skip(f"the test cluster's members cannot start: {why}")
        raise AssertionError(f"palmnet could not form the test cluster: {why}")
    lxd_dir = proc.stdout.strip().splitlines()[-1].removeprefix("LXD_DIR=")
    saved = {k: os.environ.get(k) for k in ("LXD_DIR", "PALMNET_LXD_TUNNEL_INTERFACE")}
    os.environ["LXD_DIR"] = lxd_dir
    os.environ["PALMNET_LXD_TUNNEL_INTERFACE"] = "eth0"  # the members' underlay
    try:
        yield lxd_dir
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        down = subprocess.run([str(SCRIPT), "down"], capture_output=True, text=True, env=env)
        assert down.returncode == 0, down.stderr


def member_links(member: str) -> set[str]:
    """Every interface name in a member's network namespace (its bridges, tunnels,
    container NIC host ends)."""
    from pyroute2.iproute.linux import IPRoute

    from palmnet.kernel import nsfs

    with nsfs.netns(f"/proc/{member_pid(member)}/ns/net"):
        ipr = IPRoute()
    try:
        return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
    finally:
        ipr.close()


def lab_links(lab: str, path: Path) -> set[str]:
    """The kernel names a lab's bridges, tunnels and ports have on a member."""
    from palmnet.backends.lxd.instances import port_name
    from palmnet.backends.lxd.networks import TUNNEL, bridge_name
    from palmnet.lab import plan_file

    plan = plan_file(path)
    names = {bridge_name(lab, n.name) for n in plan.networks}
    names |= {f"{b}-{TUNNEL}" for b in set(names)}
    names |= {port_name(lab, n.name, i.name) for n in plan.nodes for i in n.veths}
    return names


def assert_gone(lab: str, path: Path) -> None:
    """Nothing of the lab in LXD (any member) nor in any member's kernel."""
    assert labs.lxd_traces(lab) == []
    assert not (Path("/run/palmnet") / lab).exists()
    mine = lab_links(lab, path)
    for member in (M1, M2):
        assert member_links(member) & mine == set(), member


FARM = """\
name: {name}
backend: lxd
placement: spread
networks:
  lan: {{}}
nodes:
  r:
    kind: router
    member: {m1}
    interfaces:
      eth0: {{network: lan, ipv6: [2001:db8:c1::1/64], ra: true}}
  w:
    count: 4
    interfaces:
      eth0: {{network: lan}}
"""


def _gua(node: dict, prefix: str) -> str:
    return next(
        a.split("/")[0] for i in node["interfaces"] for a in i["ipv6"] if a.startswith(prefix)
    )


def _link_local(node: dict) -> str:
    return next(
        a.split("/")[0] for i in node["interfaces"] for a in i["ipv6"] if a.startswith("fe80:")
    )


def test_stable_addresses_slaac_and_pings_across_members(cluster: str, tmp_path: Path) -> None:
    """Router on member 1, hosts spread over both: plan == live, MTU 1450 everywhere;
    a host on member 2 has its SLAAC address from member 1's router and reaches a host
    on member 1 by GUA, by link-local with zone, and with a full 1450-byte packet;
    after down nothing is left on any member; up again in reverse order: the same."""
    name = f"{PREFIX}s"
    path = write_lab(tmp_path / "farm.yaml", FARM.format(name=name, m1=M1))
    plan = run("plan", str(path))
    assert "MTU 1450" in plan.stderr
    planned = run_json("plan", str(path))
    try:
        live = run_json("up", str(path))
        assert _addresses(live) == _addresses(planned)
        where = {n["name"]: n["member"] for n in live}
        assert where == {"r": M1, "w1": M2, "w2": M1, "w3": M2, "w4": M1}
        assert "MEMBER" in run("ls", name).stdout
        for node in ("r", "w1", "w2"):
            assert ip_json(name, node, "link", "show", "eth0")[0]["mtu"] == 1450

        far = next(n for n in live if n["name"] == "w1")  # member 2
        near = next(n for n in live if n["name"] == "w2")  # member 1
        gua = _gua(far, "2001:db8:c1:")
        assert far["interfaces"][0]["sources"][f"{gua}/64"] == "slaac"
        # SLAAC from the router's RA on member 1: its default route is that router's
        routes = ip_json(name, "w1", "-6", "route", "show", "default")
        router_ll = _link_local(next(n for n in live if n["name"] == "r"))
        assert [r["gateway"] for r in routes] == [router_ll]
        near_gua, near_ll = _gua(near, "2001:db8:c1:"), _link_local(near)
        node_exec(name, "w1", "ping", "-c", "1", "-W", "3", near_gua)
        node_exec(name, "w1", "ping", "-c", "1", "-W", "3", f"{near_ll}%eth0")
        # 1402 bytes of data + 8 ICMPv6 + 40 IPv6 = 1450: the tunnel carries a full frame
        node_exec(name, "w1", "ping", "-c", "1", "-W", "3", "-s", "1402", near_gua)

        run("down", name)
        assert_gone(name, path)
        reversed_path = write_lab(tmp_path / "rev.yaml", _reversed_nodes(path.read_text()))
        again = run_json("up", str(reversed_path))
        assert _addresses(again) == _addresses(planned)
        assert {n["name"]: n["member"] for n in again}["r"] == M1
    finally:
        run("down", name, check=False)
    assert_gone(name, path)


# FARM and a plain host pinned to member 2, with a static address and a static route
FAR_FARM = (
    FARM
    + """\
  s:
    member: {m2}
    interfaces:
      eth0: {{network: lan, ipv6: [2001:db8:c1::53/64]}}
    routes:
      - {{to: 2001:db8:c9::/48, via: r}}
"""
)


def kernel_ip(lab: str, node: str, *argv: str) -> list[dict]:
    """`ip -j` of this machine in the node's network namespace, found by the test
    itself (the member is on this machine, whatever palmnet was told): the kernel's
    own answer, not palmnet's."""
    from palmnet.backends.lxd import client
    from palmnet.backends.lxd.instances import init_pid, instance_name

    pid = init_pid(client.connect(require_pool=False), instance_name(lab, node))
    assert pid, f"{node}: no init found on this machine"
    out = subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-j", *argv],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out or "[]")


def test_plain_hosts_on_a_member_elsewhere_through_lxds_api_alone(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Member 2 driven as a member on another machine (PALMNET_LXD_FAR_MEMBERS): palmnet
    reaches its nodes through LXD's API only (far.py). The router stays on member 1;
    plain hosts go to member 2 too: their static address and route are set by `ip`
    inside them, `up` waits until their addresses are out of DAD in their own kernel,
    `ls` reads them from LXD. Checked in the kernel: plan == live, a far host's SLAAC
    address from the router's RA and its static address and route, pings across the
    members by GUA and link-local; `launch` places a copy there and `stop`/`start`
    bring a far host back with its static address and route; what needs a node's
    namespaces says it runs elsewhere; a router pinned there is exit 2 with nothing
    made; down leaves nothing."""
    monkeypatch.setenv("PALMNET_LXD_FAR_MEMBERS", M2)
    name = f"{PREFIX}f"
    path = write_lab(tmp_path / "far.yaml", FAR_FARM.format(name=name, m1=M1, m2=M2))
    planned = run_json("plan", str(path))
    try:
        proc = run("up", str(path), "--format", "json")
        assert f"cluster members {M2} run on other machines: they take plain hosts" in proc.stderr
        live = json.loads(proc.stdout)
        assert _addresses(live) == _addresses(planned)
        where = {n["name"]: n["member"] for n in live}
        assert where["r"] == M1 and where["s"] == M2
        far_hosts = sorted(n for n, m in where.items() if m == M2)
        assert len(far_hosts) >= 3, where  # s and two of the four spread hosts
        assert _addresses(run_json("ls", name)) == _addresses(planned)

        by_name = {n["name"]: n for n in live}
        router_ll = _link_local(by_name["r"])
        far = next(h for h in far_hosts if h != "s")
        near = next(n for n, m in where.items() if m == M1 and n != "r")
        gua = _gua(by_name[far], "2001:db8:c1:")
        assert by_name[far]["interfaces"][0]["sources"][f"{gua}/64"] == "slaac"
        held = {
            (a["local"], "tentative" in a)
            for link in kernel_ip(name, far, "-6", "addr", "show", "dev", "eth0")
            for a in link["addr_info"]
        }
        assert (gua, False) in held, held  # in its kernel, out of DAD when `up` returned
        static = kernel_ip(name, "s", "-6", "addr", "show", "dev", "eth0")[0]["addr_info"]
        assert any(a["local"] == "2001:db8:c1::53" and "tentative" not in a for a in static)
        routes = kernel_ip(name, "s", "-6", "route", "show", "2001:db8:c9::/48")
        assert [r["gateway"] for r in routes] == [router_ll]
        defaults = kernel_ip(name, far, "-6", "route", "show", "default")
        assert [r["gateway"] for r in defaults] == [router_ll]  # from the RA on member 1

        near_gua, near_ll = _gua(by_name[near], "2001:db8:c1:"), _link_local(by_name[near])
        node_exec(name, far, "ping", "-c", "1", "-W", "3", near_gua)
        node_exec(name, far, "ping", "-c", "1", "-W", "3", f"{near_ll}%eth0")
        node_exec(name, "s", "ping", "-c", "1", "-W", "3", "2001:db8:c1::1")

        # launch grows the lab there too (placed over the whole plan: w6 lands far)
        grown = {n["name"]: n for n in run_json("launch", "--lab", name, "w", "w5", "w6")}
        assert grown["w6"]["member"] == M2 and grown["w5"]["member"] == M1
        w6 = _gua(grown["w6"], "2001:db8:c1:")
        held6 = {
            a["local"]
            for a in kernel_ip(name, "w6", "-6", "addr", "show", "dev", "eth0")[0]["addr_info"]
        }
        assert w6 in held6, held6
        node_exec(name, "w6", "ping", "-c", "1", "-W", "3", _gua(grown["w5"], "2001:db8:c1:"))
        # a stopped far host comes back with its static address and route
        run("stop", "--lab", name, "s")
        assert {n["name"]: n["state"] for n in run_json("ls", name)}["s"] == "STOPPED"
        run("start", "--lab", name, "s")
        routes = kernel_ip(name, "s", "-6", "route", "show", "2001:db8:c9::/48")
        assert [r["gateway"] for r in routes] == [router_ll]
        node_exec(name, "s", "ping", "-c", "1", "-W", "3", "2001:db8:c1::1")

        # what stands in a node's namespaces from this machine says where it runs
        route = run("route", far, "--lab", name, check=False)
        assert route.returncode != 0 and f"runs on cluster member {M2}" in route.stderr
        impair = run("link", "impair", "r:s", "--blackhole", "--lab", name, check=False)
        assert impair.returncode != 0 and "on another machine" in impair.stderr, impair.stderr
        assert json.loads(run("link", "show", "--lab", name, "--format", "json").stdout) == []

        pinned = write_lab(
            tmp_path / "router-far.yaml",
            FARM.format(name=f"{PREFIX}g", m1=M2),
        )
        refused = run("up", str(pinned), check=False)
        assert refused.returncode == 2, refused.stderr
        assert f"member: r on {M2} (it routes" in refused.stderr
        assert labs.lxd_traces(f"{PREFIX}g") == []
    finally:
        run("down", name, check=False)
    assert_gone(name, path)


def test_unknown_member_exits_2_and_makes_nothing(cluster: str, tmp_path: Path) -> None:
    name = f"{PREFIX}u"
    path = write_lab(tmp_path / "lab.yaml", FARM.format(name=name, m1=f"{PREFIX}-m9"))
    proc = run("up", str(path), check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"{PREFIX}-m9 is not a member of this LXD cluster (members: {M1}, {M2})" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert_gone(name, path)


def test_ripng_ring_across_members(cluster: str, tmp_path: Path) -> None:
    """examples/ring.yaml spread over the members: every ring link crosses them
    (r1, r3 on member 1, r2, r4 on member 2); RIPng converges and the laptop behind
    r1 reaches the dns host behind r3; a link between members fails at both ends
    (carrier loss, then a blackhole) and heals."""
    from ruamel.yaml import YAML

    name = f"{PREFIX}r"
    path = ring_copy(tmp_path, name, "ripng", PROFILES["ripng"])  # update 1 s
    yaml = YAML()
    data = yaml.load(path.read_text())
    data["backend"] = "lxd"
    data["placement"] = "spread"
    with path.open("w") as f:
        yaml.dump(data, f)
    try:
        live = run_json("up", str(path))
        where = {n["name"]: n["member"] for n in live}
        assert [where[r] for r in ("r1", "r2", "r3", "r4")] == [M1, M2, M1, M2]
        dns = _gua(next(n for n in live if n["name"] == "dns"), "2001:db8:ebbd:2083:")

        def reaches() -> bool:
            ping = node_exec(name, "laptop", "ping", "-c1", "-W1", dns, check=False)
            return ping.returncode == 0

        wait_for("laptop (member 1) reaches dns (member 2) over RIPng", reaches)
        routes = {r["prefix"]: r for r in route_json(name, "r1")}
        dmz = routes["2001:db8:ebbd:2083::/64"]
        assert dmz["source"] == "rip" and dmz["via"].startswith("fe80::")

        # both of r1's RIPng neighbours (r2 and r4) run on member 2
        def both_neighbours() -> list[dict] | None:
            rows = neighbors_json(name, "r1")
            return rows if len(rows) == 2 else None

        rows = wait_for("two neighbours on r1", both_neighbours)
        assert sorted(r["interface"] for r in rows) == ["eth0", "eth1"]

        # link failures act on both ends, each in its own member's namespace
        run("link", "down", "r1:r2", "--lab", name)
        for node, iface in (("r1", "eth0"), ("r2", "eth1")):  # r1 on member 1, r2 on 2
            flags = ip_json(name, node, "link", "show", iface)[0]["flags"]
            assert "NO-CARRIER" in flags, (node, flags)
        shown = json.loads(run("link", "show", "--lab", name, "--format", "json").stdout)
        assert [(r["link"], r["state"]) for r in shown] == [("r1:r2", "down")]
        wait_for("laptop reaches dns the other way round (via r4)", reaches)
        run("link", "clear", "r1:r2", "--lab", name)
        run("link", "impair", "r1:r4", "--blackhole", "--lab", name)
        shown = json.loads(run("link", "show", "--lab", name, "--format", "json").stdout)
        assert [(r["link"], r["state"]) for r in shown] == [("r1:r4", "blackhole")]
        assert sorted(shown[0]["impaired"]) == ["r1", "r4"]  # r4's end on member 2
        run("link", "clear", "--all", "--lab", name)
        assert json.loads(run("link", "show", "--lab", name, "--format", "json").stdout) == []
    finally:
        run("down", name, check=False)
    assert_gone(name, path)


def test_cluster_status_local_and_remote_with_trust_token(cluster: str, tmp_path: Path) -> None:
    """`lxd cluster status` on the local socket, then from member 2's network over TLS
    to member 1 with a trust token (first contact), then with the pinned certificate."""
    status = run_json("lxd", "cluster", "status")
    assert status["clustered"] is True
    assert [(m["name"], m["status"], m["here"]) for m in status["members"]] == [
        (M1, "Online", True),
        (M2, "Online", True),
    ]
    token = run("lxd", "cluster", "trust", f"{PREFIX}-test").stdout.strip()
    env = {
        **os.environ,
        "PALMNET_LXD_CONFIG": str(tmp_path / "remote"),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    env.pop("LXD_DIR")
    remote = f"https://{FIRST}:8443"

    def status_from_member_2(
        *extra: str, elsewhere: bool = False
    ) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "palmnet", "lxd", "cluster", "status", "--remote", remote]
        # elsewhere: in a pid namespace of its own, with its own /proc, palmnet sees no
        # process of the members, as on another machine
        alone = ["unshare", "--pid", "--fork", "--mount-proc"] if elsewhere else []
        enter = ["nsenter", f"--net=/proc/{member_pid(M2)}/ns/net"]
        return subprocess.run(
            [*enter, *alone, *argv, *extra, "--format", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    first = status_from_member_2()
    assert first.returncode == 2 and "first contact needs --token" in first.stderr
    trusted = status_from_member_2("--token", token)
    assert trusted.returncode == 0, trusted.stderr
    assert [m["name"] for m in json.loads(trusted.stdout)["members"]] == [M1, M2]
    again = status_from_member_2()
    assert again.returncode == 0, again.stderr
    assert [m["here"] for m in json.loads(again.stdout)["members"]] == [True, True]
    away = status_from_member_2(elsewhere=True)
    assert away.returncode == 0, away.stderr
    assert [m["here"] for m in json.loads(away.stdout)["members"]] == [False, False]
    assert (tmp_path / "remote" / "servers" / f"{FIRST}_8443.crt").exists()
