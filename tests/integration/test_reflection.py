"""NAT reflection (hairpin NAT) on a real openwrt router, judged by what curl gets.

The router forwards WAN tcp 8080 to a LAN web server. From the WAN that is a
plain port forward. A LAN host that uses the router's WAN address must reach
the same server: fw4's reflection rules DNAT its request in dstnat_lan and
SNAT it to the router's LAN address, so the server answers through the
router (its page then says the client came from 198.51.100.1). With
`option reflection '0'` the request is the router's own business: nothing
listens on 8080 there, so the LAN host is refused. Reflection is NAT44 in
fw4 (the wan zone masquerades IPv4 only), so the test speaks IPv4.

On a host with br_netfilter loaded (Docker hosts, this CI machine) a new
network namespace starts with net.bridge.bridge-nf-call-iptables = 1, so the
frames the router's br-lan bridges pass the IP hooks; OpenWrt has no
br_netfilter. A reflected connection is then bridged right after its DNAT
(br_netfilter's "DNAT to the same bridge" shortcut) and never meets the SNAT
in postrouting: the server answers the client directly and the client
resets. So every node turns it off (plan/sysctls.py), and
test_lan_bridge_skips_the_ip_hooks_as_on_openwrt checks that it did.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.labs import lab_traces, node_exec, run, run_json, write_lab

pytestmark = pytest.mark.root

WAN_ADDRESS = "203.0.113.2"
LAN_ADDRESS = "198.51.100.1"
UPSTREAM = "203.0.113.1"
PORT = 8080
BRIDGE_NF = "net.bridge.bridge-nf-call-iptables"

NETWORK = f"""\
config interface 'loopback'
\toption device 'lo'
\toption proto 'static'
\toption ipaddr '127.0.0.1'
\toption netmask '255.0.0.0'

config device
\toption name 'br-lan'
\toption type 'bridge'
\tlist ports 'eth0'

config interface 'lan'
\toption device 'br-lan'
\toption proto 'static'
\toption ipaddr '{LAN_ADDRESS}'
\toption netmask '255.255.255.0'

config interface 'wan'
\toption device 'eth1'
\toption proto 'static'
\toption ipaddr '{WAN_ADDRESS}'
\toption netmask '255.255.255.0'
\toption gateway '{UPSTREAM}'
"""

FIREWALL = """\
config defaults
\toption input 'REJECT'
\toption output 'ACCEPT'
\toption forward 'REJECT'

config zone
\toption name 'lan'
\tlist network 'lan'
\toption input 'ACCEPT'
\toption output 'ACCEPT'
\toption forward 'ACCEPT'

config zone
\toption name 'wan'
\tlist network 'wan'
\toption input 'REJECT'
\toption output 'ACCEPT'
\toption forward 'REJECT'
\toption masq '1'
\toption mtu_fix '1'

config forwarding
\toption src 'lan'
\toption dest 'wan'

config redirect
\toption name 'web-server'
\toption src 'wan'
\toption src_dport '{port}'
\toption dest 'lan'
\toption dest_ip '{server}'
\toption dest_port '80'
\toption proto 'tcp'
\toption target 'DNAT'
{extra}"""

LAB = """\
name: {name}
domain: refl.example
networks:
  wan: {{}}
  lan: {{}}
nodes:
  up:
    kind: router
    interfaces:
      eth0: {{network: wan, ipv4: [{upstream}/24]}}
  router:
    kind: openwrt
    uci: router
    interfaces:
      eth0: {{network: lan}}
      eth1: {{network: wan}}
  srv:
    service: http
    interfaces:
      eth0: {{network: lan}}
  client:
    interfaces:
      eth0: {{network: lan}}
"""


def _ipv4(nodes: list[dict], node: str) -> str:
    """The node's one IPv4 address (the plan's DHCPv4 reservation for a LAN host)."""
    (found,) = [a for n in nodes if n["name"] == node for i in n["interfaces"] for a in i["ipv4"]]
    return found.split("/")[0]


def _firewall(server: str, extra: str = "") -> str:
    return FIREWALL.format(port=PORT, server=server, extra=extra)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    folder: Path = tmp_path_factory.mktemp("reflection")
    (folder / "router").mkdir()
    (folder / "router" / "network").write_text(NETWORK)
    name = f"refl{os.getpid() % 100000}"
    path = write_lab(folder / "lab.yaml", LAB.format(name=name, upstream=UPSTREAM))
    # The server's address is planned before the lab exists: the port forward can name it.
    server = _ipv4(run_json("plan", str(path)), "srv")  # type: ignore[arg-type]
    (folder / "router" / "firewall").write_text(_firewall(server))
    run("up", str(path))
    yield name, server, _bridge_nf(name)
    run("down", name, check=False)
    assert lab_traces(name) == []


def _bridge_nf(lab: str) -> str | None:
    """The router's bridge-nf-call-iptables as the lab left it (None: no br_netfilter)."""
    proc = node_exec(lab, "router", "sysctl", "-n", BRIDGE_NF, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _get(lab: str, node: str, url: str) -> subprocess.CompletedProcess[str]:
    """curl's exit status and the page (0 and the page, or e.g. 7: refused)."""
    return node_exec(lab, node, "curl", "-sS", "--max-time", "5", url, check=False)


def _load_firewall(lab: str, text: str) -> None:
    node_exec(lab, "router", "sh", "-c", f"cat > /etc/config/firewall <<'EOF'\n{text}EOF")
    node_exec(lab, "router", "/etc/init.d/firewall", "restart")


def test_port_forward_from_the_wan(lab) -> None:
    """The forward itself: the WAN side reaches the server with its own address."""
    name, _, _ = lab
    page = _get(name, "up", f"http://{WAN_ADDRESS}:{PORT}/")
    assert page.returncode == 0, page.stderr
    assert "This is node <b>srv</b>" in page.stdout
    assert f"You came from <b>{UPSTREAM}</b>" in page.stdout


def test_lan_host_reaches_the_lan_server_through_the_wan_address(lab) -> None:
    name, server, _ = lab
    table = run("firewall", "show", "--lab", name, "router").stdout
    assert f"dnat ip to {server}:80" in table or f"dnat to {server}:80" in table
    assert "web-server (reflection)" in table
    page = _get(name, "client", f"http://{WAN_ADDRESS}:{PORT}/")
    assert page.returncode == 0, page.stderr
    assert "This is node <b>srv</b>" in page.stdout
    # SNAT to the router's LAN address: the server answers through the router.
    assert f"You came from <b>{LAN_ADDRESS}</b>" in page.stdout


def test_reflection_0_leaves_the_lan_host_at_the_router(lab) -> None:
    name, server, _ = lab
    _load_firewall(name, _firewall(server, "\toption reflection '0'\n"))
    try:
        table = run("firewall", "show", "--lab", name, "router").stdout
        assert "(reflection)" not in table
        refused = _get(name, "client", f"http://{WAN_ADDRESS}:{PORT}/")
        assert refused.returncode == 7, refused  # the router's own port 8080: refused
        assert "This is node" not in refused.stdout
        assert _get(name, "up", f"http://{WAN_ADDRESS}:{PORT}/").returncode == 0
    finally:
        _load_firewall(name, _firewall(server))
    assert _get(name, "client", f"http://{WAN_ADDRESS}:{PORT}/").returncode == 0


def test_lan_bridge_skips_the_ip_hooks_as_on_openwrt(lab) -> None:
    _, _, bridge_nf = lab
    if bridge_nf is None:
        pytest.skip("no br_netfilter on this host: bridged frames never meet the IP hooks")
    assert bridge_nf == "0"
