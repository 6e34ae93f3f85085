"""External networks (issue 16): lab nodes on a "home LAN" the test builds itself.

Never the machine's real interfaces: the home LAN is a bridge `pnextbr0` in the host
namespace (IPv6 off on it: it is a switch) and a namespace `pnext-home` on it running
a home router (radvd with 2001:db8:ebbd:2080::/64, dnsmasq as DHCPv4 server for
192.0.2.0/24); tests/integration/homelan.py makes and removes them. Lab names start
with `ext`. The VLAN guard test needs no home router: its bridge and lab are its own
(`xetag...`).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.homelan import (
    HOME_GUA,
    HOME_PREFIX,
    Capture,
    HomeLan,
    bridge_state,
    dhcp_probes,
)
from tests.integration.labs import lab_traces, node_tool, run, run_json, write_lab

pytestmark = pytest.mark.root

BRIDGE = "pnextbr0"

SLAAC = """\
name: {name}
networks:
  home:
    external: {{bridge: {bridge}{prefix}}}
nodes:
  a:
    interfaces:
      eth0: {{network: home}}
  b:
    interfaces:
      eth0: {{network: home}}
"""


@pytest.fixture
def home() -> Iterator[HomeLan]:
    lan = HomeLan(bridge=BRIDGE).open()
    try:
        yield lan
    finally:
        lan.close()


def _lab_name(tag: str) -> str:
    return f"ext{tag}{os.getpid() % 1000}"


def _gua(addresses: list[str]) -> list[str]:
    home = ipaddress.IPv6Network(HOME_PREFIX)
    return sorted(a for a in addresses if ipaddress.IPv6Interface(a).ip in home)


def _ls_gua(lab: str) -> dict[str, list[str]]:
    nodes = run_json("ls", lab)
    assert isinstance(nodes, list)
    return {n["name"]: _gua([a for i in n["interfaces"] for a in i["ipv6"]]) for n in nodes}


def _plan_gua(path: Path) -> dict[str, list[str]]:
    nodes = run_json("plan", str(path))
    assert isinstance(nodes, list)
    return {n["name"]: _gua([a for i in n["interfaces"] for a in i["ipv6"]]) for n in nodes}


def _wait_lease(lab: str, node: str, deadline: float = 30) -> str:
    """The node's IPv4 lease from the home router's DHCP server (its dhcpcd asks)."""
    import time

    end = time.monotonic() + deadline
    while time.monotonic() < end:
        nodes = run_json("ls", lab)
        assert isinstance(nodes, list)
        found = [a for n in nodes if n["name"] == node for i in n["interfaces"] for a in i["ipv4"]]
        if found:
            assert ipaddress.IPv4Interface(found[0]).ip in ipaddress.IPv4Network("192.0.2.0/24")
            return str(found[0])
        time.sleep(0.2)  # poll: dhcpcd's DISCOVER, dnsmasq's ping check of the address
    raise AssertionError(f"{node} got no DHCPv4 lease from the home router in {deadline} s")


def test_slaac_from_home_router_as_planned_and_stable(home: HomeLan, tmp_path: Path) -> None:
    """GUAs from the home router's RA equal what `plan` printed with `prefix:`, stay
    the same across down/up; the home host and the nodes reach each other by GUA;
    down leaves the bridge exactly as it was (ports, addresses, sysctls)."""
    name = _lab_name("s")
    prefix = f", prefix: {HOME_PREFIX}"
    path = write_lab(tmp_path / "lab.yaml", SLAAC.format(name=name, bridge=BRIDGE, prefix=prefix))
    planned = _plan_gua(path)
    assert all(len(v) == 1 for v in planned.values()), planned
    chunk = run("dns", "zone", "--topology", str(path), "--external").stdout
    assert chunk.splitlines() == [f"{n}  IN  AAAA    {a[:-3]}" for n, (a,) in planned.items()]
    before = bridge_state(BRIDGE)
    try:
        for round_ in range(2):
            run("up", str(path))
            assert len(bridge_state(BRIDGE)["ports"]) == len(before["ports"]) + 2  # type: ignore[arg-type]
            assert _ls_gua(name) == planned, f"round {round_}"
            for node, (gua,) in planned.items():
                address = gua.split("/")[0]
                assert home.ping(address), f"home host cannot reach {node} at {address}"
                reply = run("exec", "--lab", name, node, "--", "ping", "-c1", "-W2", HOME_GUA)
                assert "1 received" in reply.stdout, reply.stdout
                _wait_lease(name, node)
            run("down", name)
            assert bridge_state(BRIDGE) == before, f"down changed {BRIDGE} (round {round_})"
    finally:
        run("down", name, check=False)
    assert lab_traces(name) == []


def test_prefix_learnt_at_up(home: HomeLan, tmp_path: Path) -> None:
    """Without `prefix:`, plan prints the interface identifiers; up takes whatever
    the home router advertises, and the addresses end in those identifiers."""
    name = _lab_name("l")
    path = write_lab(tmp_path / "lab.yaml", SLAAC.format(name=name, bridge=BRIDGE, prefix=""))
    shown = run("plan", str(path))
    assert "prefix learnt at up" in shown.stdout
    planned = run_json("plan", str(path))
    assert isinstance(planned, list)
    iids = {n["name"]: n["interfaces"][0]["interface_id"] for n in planned}
    offline = run("dns", "zone", "--topology", str(path), "--external", check=False)
    assert offline.returncode == 2 and "learnt at up" in offline.stderr
    try:
        run("up", str(path))
        home_prefix = ipaddress.IPv6Network(HOME_PREFIX)
        chunk = []
        for node, iid in iids.items():
            want = ipaddress.IPv6Address(int(home_prefix.network_address) | int(
                ipaddress.IPv6Address(iid)))  # fmt: skip
            assert home.ping(str(want)), f"{node} has no {want} from the home router's RA"
            chunk.append(f"{node}  IN  AAAA    {want}")
        # the field notes' zone chunk, for the home LAN's own DNS server
        assert run("dns", "zone", name, "--external").stdout.splitlines() == chunk
        # a guard deleted inside a node: `up` again puts it back (repair)
        table = f"palmnet_{name}_guard"
        run("exec", "--lab", name, "b", "--", "nft", "delete", "table", "netdev", table)
        again = run("up", str(path))
        assert "the guard of b" in again.stderr, again.stderr
        listed = run("exec", "--lab", name, "b", "--", "nft", "list", "table", "netdev", table)
        assert "nd-router-advert" in listed.stdout
        # stop takes the node's port off the bridge; start puts it back, same address
        ports = bridge_state(BRIDGE)["ports"]
        run("stop", "--lab", name, "a")
        assert len(bridge_state(BRIDGE)["ports"]) == len(ports) - 1  # type: ignore[arg-type]
        run("start", "--lab", name, "a")
        assert len(bridge_state(BRIDGE)["ports"]) == len(ports)  # type: ignore[arg-type]
        assert home.ping(chunk[0].split()[-1]), "a lost its address across stop/start"
    finally:
        run("down", name, check=False)


BAD_BRIDGE = """\
name: {name}
networks:
  home:
    external: {{{key}}}
nodes:
  a:
    interfaces:
      eth0: {{network: home}}
"""


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("bridge: pnextnone0", "this machine has no interface pnextnone0"),
        ("bridge: lo", "lo is the machine's loopback, not a LAN"),
        ("bridge: pnextv0", "pnextv0 is not a bridge"),
        ("macvlan: pnextnone0", "this machine has no interface pnextnone0"),
        ("prefix: 2001:db8:ebbd:2080::/64", "names exactly one host interface, neither given"),
    ],
)
def test_refused_with_exit_2_and_nothing_made(key: str, says: str, tmp_path: Path) -> None:
    name = _lab_name("x")
    path = write_lab(tmp_path / "lab.yaml", BAD_BRIDGE.format(name=name, key=key))
    subprocess.run(["ip", "link", "add", "pnextv0", "type", "veth", "peer", "pnextv1"], check=True)
    try:
        links = _ours()
        proc = run("up", str(path), check=False)
    finally:
        subprocess.run(["ip", "link", "del", "pnextv0"], check=True)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr
    assert "lab.yaml:4: networks.home.external" in proc.stderr
    assert lab_traces(name) == []
    assert _ours() == [n for n in links if n not in ("pnextv0", "pnextv1")]


def _ours() -> list[str]:
    """Host links that palmnet's external ports or these tests would make (other
    labs' links come and go on a shared machine)."""
    return sorted(n for n in os.listdir("/sys/class/net") if n.startswith(("pnx", "pnext")))


# -- guards ---------------------------------------------------------------------------
GUARDS = Path(__file__).parent / "external_guards.yaml"
ROGUES = {  # node -> the guard rules its daemons must have hit (nft comments)
    "rogue": {"ra"},
    "rogue2": {"ra", "dhcpv6-server", "dhcpv4-server"},
    "rip": {"ripng"},
    "osp": {"ospf6"},
    "r1": {"babel"},
}


def _dropped(lab: str, node: str) -> set[str]:
    """The guard rules of `node` that dropped something (their comments)."""
    import json

    proc = subprocess.run(
        ["ip", "netns", "exec", f"palmnet-{lab}.{node}", "nft", "-j", "list", "table",
         "netdev", f"palmnet_{lab}_guard"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    hit = set()
    for item in json.loads(proc.stdout)["nftables"]:
        rule = item.get("rule")
        if rule is None:
            continue
        counter = next((e["counter"] for e in rule["expr"] if "counter" in e), None)
        if counter and counter["packets"] > 0:
            hit.add(rule.get("comment", "?"))
    return hit


def _macs(lab: str) -> dict[str, str]:
    nodes = run_json("ls", lab)
    assert isinstance(nodes, list)
    return {i["mac"]: f"{n['name']}:{i['name']}" for n in nodes for i in n["interfaces"]}


def _wait_ping(lab: str, node: str, address: str, deadline: float = 30) -> None:
    import time

    end = time.monotonic() + deadline
    said = ""
    while time.monotonic() < end:
        proc = run("exec", "--lab", lab, node, "--", "ping", "-c1", "-W1", address, check=False)
        if proc.returncode == 0:
            return
        said = proc.stdout + proc.stderr
    raise AssertionError(f"{node} never reached {address} within {deadline} s: {said}")


def test_guards_keep_the_lab_off_the_lan(home: HomeLan, tmp_path: Path) -> None:
    """A capture in the home namespace during up, a renumber and a converge run sees
    no RA, DHCP server reply, RIPng, Babel or OSPF from the lab, while the node with
    `advertise: true` is seen; the lab's daemons did send (the guards' counters), and
    the home router's RA still reaches the lab's nodes."""
    name = _lab_name("g")
    path = write_lab(tmp_path / "lab.yaml", GUARDS.read_text().replace("NAME", name))
    shutil.copytree(Path(__file__).parent / "external_rogue2", tmp_path / "rogue2")
    before = bridge_state(BRIDGE)
    capture = Capture().start()
    try:
        run("up", str(path), timeout=240)
        dhcp_probes()
        nodes = run_json("ls", name)
        assert isinstance(nodes, list)
        (h2,) = (
            a.split("/")[0]
            for n in nodes
            if n["name"] == "h2"
            for a in n["interfaces"][0]["ipv6"]
            if a.startswith("2001:db8:ebbd:2092:")
        )
        _wait_ping(name, "h1", h2)
        result = run(
            "converge", "--lab", name, "--from", "h1", "--to", "h2", "--fail", "r1:r2",
            "--duration", "4", "--format", "json", timeout=120,
        )  # fmt: skip
        assert '"restored": true' in result.stdout
        run("isp", "renumber", "--lab", name, "rogue", "2001:db8:e100::/48", timeout=120)
        # OpenWrt's firewall restart (fw4 flushes its own table only) keeps the guard
        run("exec", "--lab", name, "rogue2", "--", "/etc/init.d/firewall", "restart")
        dhcp_probes()
        for node, rules in ROGUES.items():
            missing = rules - _dropped(name, node)
            if missing:  # a daemon's period: wait for it, bounded
                import time

                end = time.monotonic() + 20
                while missing and time.monotonic() < end:
                    time.sleep(0.5)  # poll the counters: RAs and hellos are periodic
                    missing = rules - _dropped(name, node)
            assert not missing, f"{node}'s guard never dropped {missing}: did it send at all?"
        macs = _macs(name)
        # the home router's RA still reaches the lab's nodes (through their guards'
        # ingress side: a guard is egress only), and only adv's lab prefix does too
        learnt = _ls_gua(name)
        for node in ("hh", "r1", "r2", "r3", "rip", "osp"):
            assert len(learnt[node]) == 1, f"{node} has no address from the home router"
        hh = next(n for n in run_json("ls", name) if n["name"] == "hh")  # type: ignore[union-attr]
        prefixes = {str(ipaddress.IPv6Interface(a).network) for a in hh["interfaces"][0]["ipv6"]}
        assert prefixes == {"fe80::/64", HOME_PREFIX, "2001:db8:ebbd:2099::/64"}, prefixes
    finally:
        seen = capture.stop()
        run("down", name, check=False)
    from_lab = {(macs[mac], kind) for mac, kind in seen if mac in macs}
    assert from_lab == {("adv:eth0", "ra")}, f"the home LAN heard from the lab: {from_lab}"
    assert capture.frames > 0
    assert bridge_state(BRIDGE) == before
    assert lab_traces(name) == []


# -- tagged frames: a lab port on the real LAN is an untagged access port ----------
TAGGED_LAB = """\
name: {name}
networks:
  home:
    external: {{bridge: {bridge}}}
nodes:
  a:
    interfaces:
      eth0: {{network: home}}
"""
END_MARK = b"palmnet-guard-end"
# Run inside node a (the venv's scapy). `raw`: an RA in an 802.1Q tag and one in QinQ
# (802.1ad outside, 802.1Q inside), written whole by a packet socket. `device`: an RA
# through a VLAN device on eth0 (the kernel puts that tag in the frame's metadata, not
# its bytes). Then an ordinary untagged datagram, which must pass: once the bridge
# heard it, it heard everything sent before it.
TAGGED_SENDER = """
import errno, subprocess, sys
from scapy.all import Dot1AD, Dot1Q, Ether, ICMPv6ND_RA, IPv6, UDP, conf, get_if_hwaddr, sendp
conf.verb = 0
eth = Ether(src=get_if_hwaddr("eth0"), dst="33:33:00:00:00:01")
ra = IPv6(src="fe80::1", dst="ff02::1", hlim=255) / ICMPv6ND_RA()
def send(frame, iface="eth0"):
    try:
        sendp(frame, iface=iface)
    except OSError as exc:  # ENOBUFS: the egress hook dropped it
        assert exc.errno == errno.ENOBUFS, exc
if sys.argv[1] == "raw":
    send(eth / Dot1Q(vlan=5) / ra)
    send(eth.copy() / Dot1AD(vlan=7) / Dot1Q(vlan=5) / ra)
else:
    add = ["ip", "link", "add", "link", "eth0", "name", "eth0.9", "type", "vlan", "id", "9"]
    if subprocess.run(add).returncode != 0:
        sys.exit(3)  # no 802.1Q devices in this kernel (CONFIG_VLAN_8021Q)
    subprocess.run(["sysctl", "-qw", "net.ipv6.conf.eth0/9.disable_ipv6=1"], check=True)
    subprocess.run(["ip", "link", "set", "eth0.9", "up"], check=True)
    send(eth / ra, iface="eth0.9")
send(eth / IPv6(src="fe80::1", dst="ff02::1") / UDP(sport=9, dport=9) / END_MARK)
""".replace("END_MARK", repr(END_MARK))
SOL_PACKET = 263
PACKET_AUXDATA = 8  # struct tpacket_auxdata with each frame
TP_STATUS_VLAN_VALID = 0x10


@pytest.fixture
def tag_bridge() -> Iterator[str]:
    """A bridge of the test's own, IPv6 off, no port to a real interface."""
    bridge = f"xetagbr{os.getpid() % 1000}"
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    try:
        subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{bridge}.disable_ipv6=1"], check=True)
        subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
        yield bridge
    finally:
        subprocess.run(["ip", "link", "del", bridge], check=False)


def _bridge_listener(bridge: str) -> socket.socket:
    """A packet socket on the bridge that hands over each frame's VLAN tag, which
    the kernel takes out of the frame into the auxiliary data."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    sock.bind((bridge, 0))
    return sock


def _heard_until_end(sock: socket.socket, mac: bytes, deadline: float) -> list[str]:
    """The frames from `mac` the bridge heard before the end mark, described (tagged
    ones with their tag); fails if the end mark does not come within `deadline`."""
    heard = []
    end = time.monotonic() + deadline
    while (left := end - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, ancillary, _, _ = sock.recvmsg(65535, 256)
        except TimeoutError:
            break
        if data[6:12] != mac:
            continue
        if END_MARK in data:
            return heard
        tag = ""
        for level, kind, aux in ancillary:
            if (level, kind) == (SOL_PACKET, PACKET_AUXDATA):
                status, _, _, _, _, tci, tpid = struct.unpack("IIIHHHH", aux[:20])
                if status & TP_STATUS_VLAN_VALID:
                    tag = f"tag {tpid:#06x} vlan {tci & 0xFFF} "
        heard.append(f"{tag}ethertype {data[12:14].hex()} {data[14:70].hex()}")
    raise AssertionError(f"the untagged end mark never reached the bridge; heard {heard}")


def _counters(lab: str, node: str) -> dict[str, int]:
    """Packets each guard rule of `node` dropped, by its comment."""
    import json

    proc = node_tool(lab, node, "nft", "-j", "list", "table", "netdev", f"palmnet_{lab}_guard")
    out = {}
    for item in json.loads(proc.stdout)["nftables"]:
        rule = item.get("rule")
        counter = rule and next((e["counter"] for e in rule["expr"] if "counter" in e), None)
        if counter:
            out[rule.get("comment", "?")] = counter["packets"]
    return out


@pytest.mark.parametrize("how", ["raw", "device"])
def test_guard_drops_vlan_tagged_frames(how: str, tag_bridge: str, tmp_path: Path) -> None:
    """RAs in 802.1Q and QinQ tags, sent raw from inside the node or through a VLAN
    device on its port, never reach the outside bridge; an untagged datagram sent
    after them does, and the guard's `tagged` rule counted the tagged frames."""
    name = f"xetag{os.getpid() % 1000}"
    path = write_lab(tmp_path / "lab.yaml", TAGGED_LAB.format(name=name, bridge=tag_bridge))
    sock = _bridge_listener(tag_bridge)
    try:
        run("up", str(path))
        (iface,) = next(n for n in run_json("ls", name) if n["name"] == "a")["interfaces"]  # type: ignore[union-attr]
        mac = bytes.fromhex(iface["mac"].replace(":", ""))
        sent = run("exec", "--lab", name, "a", "--", sys.executable, "-c", TAGGED_SENDER, how,
                   check=False)  # fmt: skip
        if sent.returncode == 3:
            pytest.skip("this kernel has no 802.1Q devices (CONFIG_VLAN_8021Q)")
        assert sent.returncode == 0, sent.stderr
        heard = _heard_until_end(sock, mac, deadline=10)
        tagged = [h for h in heard if h.startswith("tag") or h.split()[1] in ("8100", "88a8")]
        assert not tagged, f"tagged frames left the lab: {tagged}"
        dropped = _counters(name, "a")
        assert dropped.get("tagged", 0) >= (2 if how == "raw" else 1), dropped
    finally:
        sock.close()
        run("down", name, check=False)
    assert lab_traces(name) == []


# -- an OpenWrt router with its WAN on the real LAN ----------------------------------
GATEWAY = """\
name: {name}
networks:
  home:
    external: {{bridge: {bridge}, prefix: {prefix}}}
  farm: {{}}
nodes:
  gw:
    kind: openwrt
    uci: gw
    interfaces:
      eth0: {{network: farm}}
      eth1: {{network: home}}
  w:
    count: 2
    interfaces:
      eth0: {{network: farm}}
"""


def _home_link_local() -> str:
    from palmnet.addressing.eui64 import link_local
    from tests.integration.homelan import HOME_MAC

    return str(link_local(HOME_MAC))


def test_openwrt_wan_on_the_home_lan(home: HomeLan, tmp_path: Path) -> None:
    """The WAN takes its address and default route from the home router (and an IPv4
    lease from its DHCP server); the farm behind it reaches the home host through it
    (its LAN has only its ULA: the UCI firewall's masq6 on the wan zone)."""
    import json
    import time

    name = _lab_name("w")
    path = write_lab(
        tmp_path / "lab.yaml", GATEWAY.format(name=name, bridge=BRIDGE, prefix=HOME_PREFIX)
    )
    shutil.copytree(Path(__file__).parent / "external_gw", tmp_path / "gw")
    planned = _plan_gua(path)
    try:
        run("up", str(path), timeout=240)
        assert _ls_gua(name)["gw"] == planned["gw"] and len(planned["gw"]) == 1
        gw = f"palmnet-{name}.gw"
        routes = json.loads(
            subprocess.run(
                ["ip", "-n", gw, "-j", "-6", "route", "show", "default"],
                capture_output=True, text=True, check=True,
            ).stdout
        )  # fmt: skip
        assert [(r["gateway"], r["dev"]) for r in routes] == [(_home_link_local(), "eth1")]
        lease, end = [], time.monotonic() + 30
        while not lease and time.monotonic() < end:
            out = subprocess.run(
                ["ip", "-n", gw, "-j", "-4", "addr", "show", "dev", "eth1"],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            lease = [a["local"] for i in json.loads(out) for a in i["addr_info"]]
            time.sleep(0.2)  # poll: dhcpcd's lease from the home router's dnsmasq
        assert lease and ipaddress.IPv4Address(lease[0]) in ipaddress.IPv4Network("192.0.2.0/24"), (
            f"gw has no DHCPv4 lease from the home router: {lease}"
        )
        for host in ("w1", "w2"):
            for target in (HOME_GUA, "192.0.2.1"):
                _wait_ping(name, host, target, deadline=15)
    finally:
        run("down", name, check=False)
    assert lab_traces(name) == []


# -- macvlan --------------------------------------------------------------------------
PARENT = "pnextd0"  # the test's own veth end as the "NIC" (never a real one)


@pytest.fixture
def home_on_macvlan() -> Iterator[HomeLan]:
    lan = HomeLan(macvlan_parent=PARENT).open()
    try:
        yield lan
    finally:
        lan.close()


def test_macvlan_on_a_host_interface(home_on_macvlan: HomeLan, tmp_path: Path) -> None:
    """Nodes as macvlans (bridge mode) of a host interface: SLAAC from the home router
    as planned, home host and nodes reach each other, the nodes reach each other; down
    leaves the interface as it was."""
    name = _lab_name("m")
    text = SLAAC.format(name=name, bridge=BRIDGE, prefix=f", prefix: {HOME_PREFIX}")
    path = write_lab(tmp_path / "lab.yaml", text.replace(f"bridge: {BRIDGE}", f"macvlan: {PARENT}"))
    planned = _plan_gua(path)
    before = bridge_state(PARENT)
    try:
        run("up", str(path))
        assert _ls_gua(name) == planned
        for node, (gua,) in planned.items():
            assert home_on_macvlan.ping(gua.split("/")[0]), f"home host cannot reach {node}"
        reply = run("exec", "--lab", name, "a", "--", "ping", "-c1", "-W2", HOME_GUA)
        assert "1 received" in reply.stdout
        reply = run("exec", "--lab", name, "a", "--", "ping", "-c1", "-W2", planned["b"][0][:-3])
        assert "1 received" in reply.stdout
    finally:
        run("down", name, check=False)
    assert bridge_state(PARENT) == before
    assert lab_traces(name) == []
    assert not home_on_macvlan.ping(planned["a"][0][:-3], deadline=2), "a still answers"


def test_down_after_kill_9_removes_the_ports(home: HomeLan, tmp_path: Path) -> None:
    """A crash of `up` after the ports exist: `down` from the journal removes exactly
    them, and the bridge is as it was."""
    name = _lab_name("k")
    path = write_lab(tmp_path / "lab.yaml", SLAAC.format(name=name, bridge=BRIDGE, prefix=""))
    before = bridge_state(BRIDGE)
    crashed = run("up", str(path), check=False, env={"PALMNET_CRASH_AT": "hosts"})
    assert crashed.returncode == -9, crashed.stderr
    assert len(bridge_state(BRIDGE)["ports"]) == len(before["ports"]) + 2  # type: ignore[arg-type]
    run("down", name)
    assert bridge_state(BRIDGE) == before
    assert lab_traces(name) == []


def test_up_checks_the_ra_brought_the_prefix(home: HomeLan, tmp_path: Path) -> None:
    """A `prefix:` the home router does not advertise: up fails naming it, removes what
    it made, and the bridge is as it was."""
    name = _lab_name("p")
    wrong = ", prefix: 2001:db8:ebbd:2081::/64"
    path = write_lab(tmp_path / "lab.yaml", SLAAC.format(name=name, bridge=BRIDGE, prefix=wrong))
    before = bridge_state(BRIDGE)
    proc = run("up", str(path), check=False, env={"PALMNET_READY_TIMEOUT": "4"})
    assert proc.returncode == 1, proc.stderr
    assert "2001:db8:ebbd:2081:" in proc.stderr and "absent" in proc.stderr
    assert "advertises 2001:db8:ebbd:2081::/64; no such RA came" in proc.stderr
    assert bridge_state(BRIDGE) == before
    assert lab_traces(name) == []


# -- the LXD backend: the field notes' extbridge profile ------------------------------
@pytest.mark.parametrize("how", ["bridge", "macvlan"])
def test_lxd_nics_on_the_real_lan(how: str, tmp_path: Path) -> None:
    """On the LXD backend each NIC on the external network is `nictype: bridged,
    parent: BRIDGE` (or `nictype: macvlan`) with the planned MAC: the GUAs from the
    home router's RA are the planned ones, the guard is loaded in the container, down
    leaves the bridge (or the macvlans' parent) as it was."""
    from tests.integration.labs import lxd_reason, traces

    reason = lxd_reason()
    if reason is not None:
        pytest.skip(reason)
    name = _lab_name("x" + how[0])
    prefix = f", prefix: {HOME_PREFIX}"
    text = SLAAC.format(name=name, bridge=BRIDGE, prefix=prefix)
    parent = BRIDGE if how == "bridge" else PARENT
    if how == "macvlan":
        text = text.replace(f"bridge: {BRIDGE}", f"macvlan: {PARENT}")
    path = write_lab(tmp_path / "lab.yaml", text)
    home = HomeLan(bridge=BRIDGE, macvlan_parent=None if how == "bridge" else PARENT).open()
    try:
        _lxd_round(name, path, parent, home)
    finally:
        home.close()
    assert traces(name, "lxd") == []


def _lxd_round(name: str, path: Path, parent: str, home: HomeLan) -> None:
    from tests.integration.labs import node_tool

    planned = _plan_gua(path)
    before = bridge_state(parent)
    try:
        run("up", "--backend", "lxd", str(path), timeout=300)
        assert _ls_gua(name) == planned
        for node, (gua,) in planned.items():
            assert home.ping(gua.split("/")[0]), f"home host cannot reach {node}"
            _wait_ping(name, node, HOME_GUA, deadline=10)
            guard = node_tool(name, node, "nft", "list", "table", "netdev", f"palmnet_{name}_guard")
            assert 'hook egress device "eth0"' in guard.stdout, guard.stderr
    finally:
        run("down", name, check=False, timeout=300)
    assert bridge_state(parent) == before
