"""Prefix delegation without root: the adapters' files, the hooks' decisions.

The plan of examples/cascade.yaml (ISP /48 as /56s -> r1 /56, LAN share /57 ->
r2 /60 -> /64 LANs) drives everything here. The PD hook (pd/hook.py) runs
in-process on a temp dir with dhcpcd's environment; radvd and kea are absent
(the hook must not wait for them), so what is checked is what it writes. The
daemons themselves read these files in tests/integration/test_pd.py.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from palmnet.lab import plan_file
from palmnet.lab.renumber import levels, new_addresses
from palmnet.pd import hook, kea_route
from palmnet.plan.model import Plan
from palmnet.services.dhcpcd import Dhcpcd
from palmnet.services.kea import Kea, duid_colons, render_kea_config, subnet_id
from palmnet.services.radvd import DelegatedPrefix, Radvd, ra_spec, render_ra
from palmnet.services.registry import services_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cascade.yaml"
Net = ipaddress.IPv6Network


@pytest.fixture(scope="module")
def plan() -> Plan:
    return plan_file(EXAMPLE)


def nodes_dir(tmp: Path) -> Path:
    return tmp / "nodes"


# -- adapters ------------------------------------------------------------------------------
def test_kea_runs_where_the_plan_delegates(plan: Plan) -> None:
    assert Kea in services_for(plan.node("isp"))
    assert Kea in services_for(plan.node("r1"))
    assert Kea not in services_for(plan.node("r2"))  # nobody below r2
    isp = Kea(plan, plan.node("isp"), Path("/s/isp"))
    r1 = Kea(plan, plan.node("r1"), Path("/s/r1"))
    assert isp.reloads  # palmnet renumbers the ISP's pool
    assert not r1.reloads  # the PD hook owns a router's config after its first lease


def test_kea_config_reserves_the_planned_prefix(plan: Plan) -> None:
    svc = Kea(plan, plan.node("isp"), Path("/s/isp"))
    conf = json.loads(svc.render()[svc.conf])["Dhcp6"]
    subnet = conf["subnet6"][0]
    assert subnet["interface"] == "eth0"
    assert subnet["subnet"] == "2001:db8:ebb0::/64"
    assert subnet["rapid-commit"] is True
    assert subnet["pd-pools"] == [
        {"prefix": "2001:db8:ebbd::", "prefix-len": 48, "delegated-len": 56}
    ]
    r1 = plan.node("r1").pd_client
    assert r1 is not None
    assert subnet["reservations"] == [
        {"duid": duid_colons(r1.duid), "hostname": "r1", "prefixes": [str(r1.delegated)]}
    ]
    assert (subnet["renew-timer"], subnet["rebind-timer"]) == (30, 48)
    assert conf["lease-database"]["name"] == "/s/isp/kea/leases6.csv"
    assert conf["data-directory"] == "/s/isp/kea"
    assert conf["control-socket"]["socket-name"] == "/s/isp/kea/kea.sock"
    assert conf["interfaces-config"]["service-sockets-max-retries"] > 0
    hooks = conf.get("hooks-libraries", [])
    if hooks:
        assert hooks[0]["parameters"]["name"] == "/s/isp/kea/route-hook"
    assert svc.argv()[:3] == [
        "/usr/bin/env",
        "KEA_PIDFILE_DIR=/s/isp/kea",
        "KEA_LOCKFILE_DIR=/s/isp/kea",
    ]


def test_kea_route_wrapper_starts_python_only_for_its_hook_points(plan: Plan) -> None:
    svc = Kea(plan, plan.node("isp"), Path("/s/isp"))
    script = svc.render()[svc.hook]
    assert script.startswith("#!/bin/sh")
    assert "leases6_committed|lease6_release|lease6_expire) ;;" in script
    assert "-m palmnet.pd.kea_route" in script


def test_dhcpcd_requests_the_prefix_and_hands_out_the_lan(plan: Plan) -> None:
    svc = Dhcpcd(plan, plan.node("r1"), Path("/s/r1"))
    files = svc.render()
    conf = files[svc.conf]
    assert "interface eth1\n    ipv6only\n    ia_pd 1/::/56 br-lan/0/64/1\n" in conf
    for line in ("nodev", "nodelay", "option rapid_commit", "noipv6rs"):
        assert f"\n{line}\n" in conf
    assert (
        files[svc.dir / "db" / "duid"]
        == "00:03:00:01:" + plan.node("r1").interface("eth1").mac + "\n"
    )
    argv = svc.argv()
    assert argv[-3:] == ["-6", "eth1", "br-lan"]  # dhcpcd only delegates where it runs
    assert argv[0] == "/bin/sh" and argv[4] == "/s/isp/kea/kea.sock"  # waits for its server
    r2 = Dhcpcd(plan, plan.node("r2"), Path("/s/r2"))
    assert r2.argv()[4] == "/s/r1/kea/kea.sock"
    hook_text = files[svc.hook]
    assert '[ "$interface" = "eth1" ] || exit 0' in hook_text
    assert "-m palmnet.pd.hook /s/r1/dhcpcd/pd.json" in hook_text


def test_radvd_starts_without_the_delegated_prefix(plan: Plan) -> None:
    r1 = plan.node("r1")
    conf = Radvd(plan, r1, Path("/s/r1")).render()[Path("/s/r1/radvd/radvd.conf")]
    assert "2001:db8:ebbd:c600" not in conf  # not held yet: the hook adds it
    assert "prefix fd11:2233:4401::/64" in conf
    assert "RDNSS fd11:2233:4401::1 {" in conf
    (spec,) = ra_spec(r1)
    assert spec.delegated and spec.rdnss_delegated


def test_radvd_current_and_stale_delegations(plan: Plan) -> None:
    spec = ra_spec(plan.node("r1"))
    conf = render_ra(
        "r1",
        spec,
        {
            "br-lan": [
                DelegatedPrefix("2001:db8:beef:c600::/64", 60, 90, router="2001:db8:beef:c600::1"),
                DelegatedPrefix("2001:db8:ebbd:c600::/64", stale=True),
            ]
        },
    )
    current = conf.index("prefix 2001:db8:beef:c600::/64")
    stale = conf.index("prefix 2001:db8:ebbd:c600::/64")
    assert (
        "AdvValidLifetime 90;\n        AdvPreferredLifetime 60;\n        DecrementLifetimes on;"
        in (conf[current:stale])
    )
    assert "AdvValidLifetime 0;\n        AdvPreferredLifetime 0;" in conf[stale:]
    assert "RDNSS 2001:db8:beef:c600::1 fd11:2233:4401::1 {" in conf
    # the router's address in the old /64 is gone: hosts must stop asking it at once
    assert "RDNSS 2001:db8:ebbd:c600::1 {\n        AdvRDNSSLifetime 0;" in conf


# -- the PD hook ---------------------------------------------------------------------------
def lab_files(plan: Plan, node: str, tmp: Path) -> dict[str, Any]:
    """The node's adapters rendered into tmp (as the backend would), its pd.json read back."""
    nodes = nodes_dir(tmp)
    for cls in services_for(plan.node(node)):
        svc = cls(plan, plan.node(node), nodes / node)
        for path, text in svc.render().items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
    return dict(json.loads((nodes / node / "dhcpcd" / "pd.json").read_text()))


def lease_env(reason: str, *prefixes: tuple[str, int, int]) -> dict[str, str]:
    env = {"reason": reason, "interface": "eth1"}
    for n, (prefix, preferred, valid) in enumerate(prefixes, 1):
        net = Net(prefix)
        key = f"new_dhcp6_ia_pd1_prefix{n}"
        env[key] = str(net.network_address)
        env[f"{key}_length"] = str(net.prefixlen)
        env[f"{key}_pltime"] = str(preferred)
        env[f"{key}_vltime"] = str(valid)
    return env


def test_delegation_picks_the_prefix_still_valid() -> None:
    env = lease_env(
        "RENEW6", ("2001:db8:ebbd:c600::/56", 0, 0), ("2001:db8:beef:c600::/56", 60, 90)
    )
    assert hook.delegation(env, 1) == (Net("2001:db8:beef:c600::/56"), 60, 90)
    assert hook.delegation({"reason": "RENEW6"}, 1) is None
    assert hook.delegation(lease_env("RENEW6", ("2001:db8:1::/56", 0, 0)), 1) is None


def test_hook_first_lease_keeps_the_planned_kea_config(plan: Plan, tmp_path: Path) -> None:
    params = lab_files(plan, "r1", tmp_path)
    kea_conf = Path(params["kea"]["conf"])
    before = kea_conf.read_text()
    log = hook.handle(params, lease_env("BOUND6", ("2001:db8:ebbd:c600::/56", 60, 90)), 1000.0, 0)
    assert "kea config unchanged" in log  # the hook and the adapter render alike
    assert kea_conf.read_text() == before
    radvd = Path(params["radvd"]["conf"]).read_text()
    assert "prefix 2001:db8:ebbd:c600::/64 {" in radvd
    assert "DecrementLifetimes on;" in radvd
    state = json.loads(Path(params["state"]).read_text())
    assert state["prefix"] == "2001:db8:ebbd:c600::/56"
    assert state["lans"] == {"br-lan": "2001:db8:ebbd:c600::/64"}
    assert state["kea_prefix"] == "2001:db8:ebbd:c600::/56"
    assert state["valid_until"] == 1090.0


def test_hook_renumbering_moves_radvd_and_kea(plan: Plan, tmp_path: Path) -> None:
    params = lab_files(plan, "r1", tmp_path)
    hook.handle(params, lease_env("BOUND6", ("2001:db8:ebbd:c600::/56", 60, 90)), 1000.0, 0)
    env = lease_env(
        "RENEW6", ("2001:db8:ebbd:c600::/56", 0, 0), ("2001:db8:beef:c600::/56", 60, 90)
    )
    log = hook.handle(params, env, 1010.0, 0)
    assert any("replaced by 2001:db8:beef:c600::/56" in line for line in log)
    radvd = Path(params["radvd"]["conf"]).read_text()
    new, old = radvd.index("2001:db8:beef:c600::/64"), radvd.index("2001:db8:ebbd:c600::/64")
    assert new < old
    assert "AdvValidLifetime 0;\n        AdvPreferredLifetime 0;" in radvd[old:]
    assert "RDNSS 2001:db8:beef:c600::1 fd11:2233:4401::1" in radvd
    assert "RDNSS 2001:db8:ebbd:c600::1 {\n        AdvRDNSSLifetime 0;" in radvd
    kea = json.loads(Path(params["kea"]["conf"]).read_text())["Dhcp6"]
    (subnet,) = kea["subnet6"]
    assert subnet["subnet"] == "2001:db8:beef:c600::/64"
    assert subnet["id"] == subnet_id(Net("2001:db8:beef:c600::/64"), "br-lan")
    # r2 keeps its place inside r1's LAN share (c610 of c600::/57)
    assert subnet["reservations"][0]["prefixes"] == ["2001:db8:beef:c610::/60"]
    pools = [f"{p['prefix']}/{p['prefix-len']}" for p in subnet["pd-pools"]]
    assert pools == [
        "2001:db8:beef:c610::/60",
        "2001:db8:beef:c620::/59",
        "2001:db8:beef:c640::/58",
    ]
    state = json.loads(Path(params["state"]).read_text())
    assert state["stale"] == [
        {"interface": "br-lan", "lan": "2001:db8:ebbd:c600::/64", "until": 1090.0}
    ]
    # kea was not running: the config waits for it, and the state says kea lags
    assert state["kea_prefix"] == "2001:db8:ebbd:c600::/56"
    # a later renewal after the old lease ran out forgets the stale prefix
    hook.handle(params, lease_env("RENEW6", ("2001:db8:beef:c600::/56", 60, 90)), 1100.0, 0)
    assert "2001:db8:ebbd:c600" not in Path(params["radvd"]["conf"]).read_text()


def test_hook_expiry_deprecates_and_stops_delegating(plan: Plan, tmp_path: Path) -> None:
    params = lab_files(plan, "r1", tmp_path)
    hook.handle(params, lease_env("BOUND6", ("2001:db8:ebbd:c600::/56", 60, 90)), 1000.0, 0)
    log = hook.handle(params, {"reason": "EXPIRE6", "interface": "eth1"}, 1090.0, 0)
    assert "EXPIRE6: no prefix delegated" in log
    radvd = Path(params["radvd"]["conf"]).read_text()
    assert "prefix 2001:db8:ebbd:c600::/64 {" in radvd
    assert "AdvPreferredLifetime 0;" in radvd
    kea = json.loads(Path(params["kea"]["conf"]).read_text())["Dhcp6"]
    assert kea["subnet6"] == []


def test_hook_lan_share_follows_the_hint(plan: Plan, tmp_path: Path) -> None:
    params = lab_files(plan, "r1", tmp_path)
    params["assignments"] = [{"interface": "br-lan", "length": 60, "hint": 0x30}]
    lans = hook.lan_shares(params, Net("2001:db8:1:ff00::/56"))
    assert lans == {"br-lan": (Net("2001:db8:1:ff30::/60"), Net("2001:db8:1:ff30::/64"))}


# -- kea's route hook ----------------------------------------------------------------------
def committed_env(query: str, leases: list[tuple[str, int]]) -> dict[str, str]:
    env = {
        "QUERY6_TYPE": query,
        "QUERY6_REMOTE_ADDR": "fe80::216:3eff:fe00:1",
        "QUERY6_IFACE_NAME": "eth0",
        "LEASES6_SIZE": str(len(leases)),
    }
    for i, (prefix, valid) in enumerate(leases):
        net = Net(prefix)
        env[f"LEASES6_AT{i}_TYPE"] = "IA_PD"
        env[f"LEASES6_AT{i}_ADDRESS"] = str(net.network_address)
        env[f"LEASES6_AT{i}_PREFIX_LEN"] = str(net.prefixlen)
        env[f"LEASES6_AT{i}_VALID_LIFETIME"] = str(valid)
    return env


def test_kea_route_replaces_what_kea_never_reports() -> None:
    existing = [
        {"dst": "2001:db8:ebbd:c600::/56", "gateway": "fe80::216:3eff:fe00:1", "dev": "eth0"},
        {"dst": "2001:db8:ebbd:100::/56", "gateway": "fe80::216:3eff:fe00:2", "dev": "eth0"},
    ]
    add, remove = kea_route.plan_committed(
        committed_env("RENEW", [("2001:db8:beef:c600::/56", 90)]), existing
    )
    assert add == ["2001:db8:beef:c600::/56"]
    assert remove == ["2001:db8:ebbd:c600::/56"]  # the other client's route stays


def test_kea_route_drops_zeroed_and_ignores_partial_queries() -> None:
    env = committed_env("RENEW", [("2001:db8:ebbd:c600::/56", 0), ("2001:db8:beef:c600::/56", 90)])
    add, remove = kea_route.plan_committed(env, [])
    assert (add, remove) == (["2001:db8:beef:c600::/56"], ["2001:db8:ebbd:c600::/56"])
    add, remove = kea_route.plan_committed(committed_env("RELEASE", []), [
        {"dst": "2001:db8:ebbd:c600::/56", "gateway": "fe80::216:3eff:fe00:1", "dev": "eth0"}
    ])  # fmt: skip
    assert (add, remove) == ([], [])


# -- renumbering, offline parts ------------------------------------------------------------
def test_levels_follow_the_delegation_chain(plan: Plan) -> None:
    assert [[n.name for n in level] for level in levels(plan, "isp")] == [["r1"], ["r2"]]
    assert levels(plan, "isp", skip=["r1"]) == []


def test_new_addresses_are_the_renumbered_guas(plan: Plan, tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace("2001:db8:ebbd::/48", "2001:db8:beef::/48")
    for folder in ("cascade-r1", "cascade-r2"):
        src = EXAMPLE.parent / folder
        (tmp_path / folder).mkdir()
        for f in src.iterdir():
            (tmp_path / folder / f.name).write_text(f.read_text())
    (tmp_path / "cascade.yaml").write_text(text)
    moved = plan_file(tmp_path / "cascade.yaml")
    fresh = new_addresses(plan, moved, ["h1", "h2", "web"])
    assert set(fresh) == {"h1", "h2"}  # web is on the ISP's own link
    (h2,) = fresh["h2"]
    assert h2.startswith("2001:db8:beef:c610:")
    assert all(not a.startswith("fd") for addrs in fresh.values() for a in addrs)  # ULA stays


def test_kea_config_for_no_links_is_valid_json(tmp_path: Path) -> None:
    conf = json.loads(render_kea_config([], tmp_path, tmp_path / "h", tmp_path / "l"))
    assert conf["Dhcp6"]["subnet6"] == []
