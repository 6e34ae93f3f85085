"""The OpenWrt router in front of the farm, end to end on real daemons.

fw4 semantics are judged by what really arrives (listener counts, curl's
outcome), RA options by rdisc6 on a LAN host, DNS by dig against the
router's dnsmasq, the resolver by getent inside a host.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from palmnet.kernel import processes
from palmnet.state.paths import node_dir
from tests.integration.labs import lab_traces, node_exec, run, run_json, write_lab

pytestmark = pytest.mark.root

NETWORK = """\
config interface 'loopback'
\toption device 'lo'
\toption proto 'static'
\toption ipaddr '127.0.0.1'
\toption netmask '255.0.0.0'

config globals 'globals'
\toption ula_prefix 'fd6a:c19d:b07::/48'

config device
\toption name 'br-lan'
\toption type 'bridge'
\tlist ports 'eth0'

config interface 'lan'
\toption device 'br-lan'
\toption proto 'static'
\toption ipaddr '198.51.100.1'
\toption netmask '255.255.255.0'
\toption ip6addr '2001:db8:ebbd:2084::1/64'
\toption ip6assign '64'
\toption ip6hint '2084'

config interface 'wan'
\toption device 'eth1'
\toption proto 'static'
\toption ipaddr '192.0.2.2'
\toption netmask '255.255.255.0'
\toption gateway '192.0.2.1'

config interface 'wan6'
\toption device '@wan'
\toption proto 'dhcpv6'
"""

LAB = """\
name: {name}
domain: palm.example
networks:
  br0: {{}}
  lxdbr0: {{}}
nodes:
  up:
    kind: router
    interfaces:
      eth0: {{network: br0, ipv6: [2001:db8:ebbd:2080::1/64], ipv4: [192.0.2.1/24], ra: true}}
    routes:
      - {{to: 2001:db8:ebbd:2084::/64, via: router}}
      - {{to: 198.51.100.0/24, via: router}}
  router:
    kind: openwrt
    uci: router
    service: http
    interfaces:
      eth0: {{network: lxdbr0}}
      eth1: {{network: br0}}
  laptop:
    interfaces:
      eth0: {{network: br0}}
  w:
    count: 3
    service: http
    interfaces:
      eth0: {{network: lxdbr0}}
"""

EXT_WEB = """
config rule
\toption name 'ext_web'
\toption src 'wan'
\toption proto 'tcp'
\toption dest_port '80'
\toption target 'ACCEPT'
"""

EXT_WEB_LAN = """
config rule
\toption name 'ext_web_lan'
\toption src 'wan'
\toption dest 'lan'
\toption proto 'tcp'
\toption dest_port '80'
\toption target 'ACCEPT'
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("openwrt")
    (folder / "router").mkdir()
    (folder / "router" / "network").write_text(NETWORK)
    name = f"o{os.getpid() % 100000}"
    path = write_lab(folder / "lab.yaml", LAB.format(name=name))
    nodes = {n["name"]: n for n in run_json("up", str(path))}
    yield name, nodes, path
    run("down", name, check=False)
    assert lab_traces(name) == []


def _addr(nodes: dict, node: str, iface: str, prefix: str) -> str:
    """The node's address in `prefix`: its stable SLAAC one if it has one."""
    for i in nodes[node]["interfaces"]:
        if i["name"] == iface:
            found = [a for a in (*i["ipv6"], *i["ipv4"]) if a.startswith(prefix)]
            found.sort(key=lambda a: ":216:3eff:" not in a)
            if found:
                return found[0].split("/")[0]
    raise AssertionError(f"{node} {iface} has no address starting {prefix}")


def _curl(name: str, node: str, url: str, timeout: float = 3) -> subprocess.CompletedProcess[str]:
    return node_exec(
        name,
        node,
        "curl",
        "-sS",
        "-g",
        "--max-time",
        str(timeout),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        url,
        check=False,
    )


def _add_rule(name: str, text: str) -> None:
    node_exec(name, "router", "sh", "-c", f"cat >> /etc/config/firewall <<'EOF'\n{text}EOF")
    node_exec(name, "router", "/etc/init.d/firewall", "restart")


def test_ls_shows_router_like_lxc_ls(lab) -> None:
    name, nodes, _ = lab
    router = {i["name"]: i for i in nodes["router"]["interfaces"]}
    assert set(router) == {"eth0", "eth1", "br-lan"}
    assert router["eth0"]["ipv6"] == [] and router["eth0"]["ipv4"] == []  # a br-lan port
    assert any(a.startswith("2001:db8:ebbd:2080:216:3eff:fe") for a in router["eth1"]["ipv6"])
    assert "2001:db8:ebbd:2084::1/64" in router["br-lan"]["ipv6"]
    assert "fd6a:c19d:b07:2084::1/64" in router["br-lan"]["ipv6"]
    assert "198.51.100.1/24" in router["br-lan"]["ipv4"]
    w1 = nodes["w1"]["interfaces"][0]
    assert any(a.startswith("198.51.100.") for a in w1["ipv4"])  # DHCPv4 lease
    assert any(a.startswith("fd6a:c19d:b07:2084:216:3eff:") for a in w1["ipv6"])  # ULA
    table = run("ls", name).stdout
    assert "(br-lan)" in table and "(eth1)" in table


def test_fw4_input_and_forward_rules_end_to_end(lab) -> None:
    name, nodes, _ = lab
    wan = _addr(nodes, "router", "eth1", "2001:db8:ebbd:2080:")
    w1 = _addr(nodes, "w1", "eth0", "2001:db8:ebbd:2084:")
    start = time.monotonic()
    refused = _curl(name, "laptop", f"http://[{wan}]/", timeout=5)
    assert refused.returncode == 7, refused  # connection refused: a TCP reset, not a hang
    assert time.monotonic() - start < 2.5

    _add_rule(name, EXT_WEB)
    assert _curl(name, "laptop", f"http://[{wan}]/").stdout == "200"
    # wan -> lan falls through to the defaults' forward REJECT, as in fw4
    refused = _curl(name, "laptop", f"http://[{w1}]/", timeout=2)
    assert refused.returncode == 7, refused

    _add_rule(name, EXT_WEB_LAN)
    assert _curl(name, "laptop", f"http://[{w1}]/").stdout == "200"
    laptop = _addr(nodes, "laptop", "eth0", "2001:db8:ebbd:2080:")
    log = node_exec(name, "w1", "sh", "-c", "cat /run/palmnet/*/nodes/w1/httpd/access.log").stdout
    assert laptop in log

    # An IPv4 client with a DHCPv4 lease from the router, to the same server.
    w2v4 = _addr(nodes, "w2", "eth0", "198.51.100.")
    w1v4 = _addr(nodes, "w1", "eth0", "198.51.100.")
    assert _curl(name, "w2", f"http://{w1v4}/").stdout == "200"
    log = node_exec(name, "w1", "sh", "-c", "cat /run/palmnet/*/nodes/w1/httpd/access.log").stdout
    assert w2v4 in log


def test_ra_options_and_dns(lab) -> None:
    name, nodes, _ = lab
    ra = node_exec(name, "w3", "rdisc6", "-1", "eth0").stdout
    assert "2001:db8:ebbd:2084::/64" in ra
    assert "Recursive DNS server" in ra and "2001:db8:ebbd:2084::1" in ra
    assert "DNS search list" in ra and "palm.example" in ra
    w3 = _addr(nodes, "w3", "eth0", "2001:db8:ebbd:2084:")
    dig = node_exec(
        name, "w1", "dig", "+short", "AAAA", "w3.palm.example", "@2001:db8:ebbd:2084::1"
    )
    assert w3 in dig.stdout.split()
    # The resolver came from the RA (rdnssd), so plain names resolve in the node.
    getent = node_exec(name, "w1", "getent", "ahosts", "w2")
    assert _addr(nodes, "w2", "eth0", "2001:db8:ebbd:2084:") in getent.stdout
    resolv = node_exec(name, "w1", "cat", "/etc/resolv.conf").stdout
    assert "nameserver" in resolv and "palm.example" in resolv


def test_dns_zone_matches_answers(lab, tmp_path: Path) -> None:
    name, _, _ = lab
    out = tmp_path / "zones"
    run("dns", "zone", name, "--out", str(out))
    forward = out / "db.palm.example"
    subprocess.run(
        ["named-checkzone", "palm.example", str(forward)], check=True, capture_output=True
    )
    for zone in out.iterdir():
        origin = zone.name.removeprefix("db.")
        subprocess.run(["named-checkzone", origin, str(zone)], check=True, capture_output=True)
    records = json.loads(run("dns", "zone", name, "--format", "json").stdout)
    for rec in records[:8]:
        kind = "AAAA" if ":" in rec["address"] else "A"
        answer = node_exec(name, "w1", "dig", "+short", kind, rec["name"], "@2001:db8:ebbd:2084::1")
        assert rec["address"] in answer.stdout.split(), (rec, answer.stdout)


def test_firewall_bad_files(lab) -> None:
    name, _, _ = lab
    before = run("firewall", "show", "--lab", name, "router").stdout
    node_exec(
        name,
        "router",
        "sh",
        "-c",
        "cp /etc/config/firewall /tmp/fw.bak && printf \"\\nconfig rule\\n\\toption src 'wan'"
        "\\n\\toption dest_port '99-1'\\n\\toption target 'ACCEPT'\\n\" >> /etc/config/firewall",
    )
    restart = node_exec(name, "router", "/etc/init.d/firewall", "restart", check=False)
    assert "/etc/config/firewall:" in restart.stderr  # a warning with file and line
    check = run("firewall", "check", "--lab", name, "router", check=False)
    assert check.returncode == 2 and "/etc/config/firewall:" in check.stderr
    node_exec(name, "router", "sh", "-c", 'echo "config rule \'x" >> /etc/config/firewall')
    broken = node_exec(name, "router", "/etc/init.d/firewall", "restart", check=False)
    assert broken.returncode == 2
    after = run("firewall", "show", "--lab", name, "router").stdout
    assert after.count("chain") == before.count("chain")
    node_exec(name, "router", "sh", "-c", "cp /tmp/fw.bak /etc/config/firewall")
    node_exec(name, "router", "/etc/init.d/firewall", "reload")


def test_launch_adds_a_named_copy(lab) -> None:
    name, _, _ = lab
    grown = {n["name"]: n for n in run_json("launch", "--lab", name, "w", "w4")}
    w4 = _addr(grown, "w4", "eth0", "2001:db8:ebbd:2084:")
    dig = node_exec(
        name, "w1", "dig", "+short", "AAAA", "w4.palm.example", "@2001:db8:ebbd:2084::1"
    )
    assert w4 in dig.stdout.split()
    planned = run_json("plan", str(lab[2]))
    assert "w4" not in {n["name"] for n in planned}
    # A name the lab has is refused, as `lxc launch` refuses one, not re-templated
    # under the running node; a name given twice too, before anything is made.
    again = run("launch", "--lab", name, "laptop", "w4", check=False)
    assert again.returncode == 2 and "node 'w4' already exists" in again.stderr
    twice = run("launch", "--lab", name, "w", "w5", "w5", check=False)
    assert twice.returncode == 2 and "node 'w5' is given twice" in twice.stderr
    after = {n["name"]: n for n in run_json("ls", "--lab", name, "--format", "json")}
    assert "w5" not in after
    assert _addr(after, "w4", "eth0", "2001:db8:ebbd:2084:") == w4


def test_up_of_the_file_adds_and_removes_hosts_behind_the_router(lab) -> None:
    """Hosts come and go live behind an openwrt router: its DHCP reservations and DNS
    records follow (its dnsmasq is reloaded); the router itself is not "changed"."""
    name, _, path = lab
    text = path.read_text()
    # its own pid file: `pidof` in a namespace node sees every lab's dnsmasq
    pid_file = node_dir(name, "router") / "dnsmasq" / "dnsmasq.pid"
    router_pid = pid_file.read_text()
    fewer = write_lab(path.with_name("fewer.yaml"), text.replace("count: 3", "count: 2"))
    shrunk = run("up", str(fewer))
    assert "removed w3" in shrunk.stderr + shrunk.stdout
    live = {n["name"] for n in run_json("ls", "--lab", name, "--format", "json")}
    assert "w3" not in live and {"w1", "w2", "router"} <= live
    grown = run("up", str(path))
    assert "added w3" in grown.stderr + grown.stdout
    nodes = {n["name"]: n for n in run_json("ls", "--lab", name, "--format", "json")}
    assert _addr(nodes, "w3", "eth0", "2001:db8:ebbd:2084:")
    # the router kept its daemons: reloaded, not restarted
    assert pid_file.read_text() == router_pid
    assert processes.alive(int(router_pid))
