"""Daemon adapters without root: the config text says what the plan says.

The plans are small and built here by hand: a router `r1` serving one LAN
(`lan0`: RA with RDNSS/DNSSL and M/O flags, DHCPv4 with a reservation,
stateful DHCPv6, DNS for the lab's names) and a host `h1` on it (DHCP client,
resolver from RAs, web server). Whole files are pinned by goldens under
tests/golden/services/; the real daemons read the same text in
tests/integration/test_daemons.py. PALMNET_UPDATE_GOLDEN=1 rewrites the goldens.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from palmnet.plan.model import (
    DnsRecord,
    DnsServerPlan,
    InterfacePlan,
    LanService,
    NodePlan,
    Plan,
)
from palmnet.services.base import Service
from palmnet.services.dhcpcd import Dhcpcd, duid_ll
from palmnet.services.dnsmasq import TCP_LISTEN, UDP_UNCONNECTED, Dnsmasq, owns_socket
from palmnet.services.httpd import Httpd
from palmnet.services.radvd import DNS_LIFETIME, MAX_RA_INTERVAL, Radvd
from palmnet.services.rdnssd import Rdnssd
from palmnet.services.registry import SERVICES, service_named, services_for

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "services"
UPDATE = os.environ.get("PALMNET_UPDATE_GOLDEN") == "1"
STATE = Path("/run/palmnet/svc/nodes")

A = ipaddress.ip_address
R_MAC = "00:16:3e:00:00:01"
H_MAC = "00:16:3e:00:00:02"
PREFIX = ipaddress.IPv6Network("2001:db8:5::/64")
R_GUA = A("2001:db8:5::1")
H_GUA = A("2001:db8:5:0:216:3eff:fe00:2")
H_DHCP4 = A("192.0.2.42")
H_DHCP6 = A("2001:db8:5::1000")


def lan_service(**changes: object) -> LanService:
    lan = LanService(
        interface="lan0",
        rdnss=(R_GUA,),
        dnssl=("svc.example",),
        managed=True,
        other=True,
        dhcp4_range=(A("192.0.2.100"), A("192.0.2.150")),
        dhcp4_router=A("192.0.2.1"),
        dhcp6_range=(H_DHCP6, H_DHCP6),
        lease_time=3600,
        hosts=((H_MAC, H_DHCP4, "h1"),),
    )
    return replace(lan, **changes)  # type: ignore[arg-type]


def dns_plan(**changes: object) -> DnsServerPlan:
    dns = DnsServerPlan(
        domain="svc.example",
        interfaces=("lan0",),
        records=(
            DnsRecord("r1.svc.example", R_GUA),
            DnsRecord("r1.svc.example", A("192.0.2.1")),
            DnsRecord("h1.svc.example", H_GUA),
            DnsRecord("h1.svc.example", H_DHCP4),
        ),
        upstream=("192.0.2.53",),
    )
    return replace(dns, **changes)  # type: ignore[arg-type]


def router_node(**changes: object) -> NodePlan:
    lan0 = InterfacePlan(
        name="lan0",
        network="lan",
        mac=R_MAC,
        link_local=ipaddress.IPv6Interface("fe80::216:3eff:fe00:1/64"),
        ipv6_static=(ipaddress.IPv6Interface(f"{R_GUA}/64"),),
        ipv4_static=(ipaddress.IPv4Interface("192.0.2.1/24"),),
        ra_prefixes=(PREFIX,),
    )
    node = NodePlan(
        name="r1",
        kind="router",
        interfaces=(lan0,),
        lans=(lan_service(),),
        dns=dns_plan(),
    )
    return replace(node, **changes)  # type: ignore[arg-type]


def host_node(**changes: object) -> NodePlan:
    eth0 = InterfacePlan(
        name="eth0",
        network="lan",
        mac=H_MAC,
        link_local=ipaddress.IPv6Interface("fe80::216:3eff:fe00:2/64"),
        ipv6_slaac=(ipaddress.IPv6Interface(f"{H_GUA}/64"),),
        ipv4_dhcp=(ipaddress.IPv4Interface(f"{H_DHCP4}/24"),),
    )
    node = NodePlan(
        name="h1",
        kind="host",
        interfaces=(eth0,),
        dhcp_client=("eth0",),
        resolver_from_ra=True,
        service="http",
    )
    return replace(node, **changes)  # type: ignore[arg-type]


def lab_plan(router: NodePlan | None = None, host: NodePlan | None = None) -> Plan:
    return Plan(
        lab="svc",
        domain="svc.example",
        source="",
        networks=(),
        nodes=(router or router_node(), host or host_node()),
    )


def adapter(cls: type[Service], node: NodePlan, plan: Plan | None = None) -> Service:
    plan = plan or lab_plan(*((node, None) if node.kind != "host" else (None, node)))
    return cls(plan, node, STATE / node.name)


def text(svc: Service, name: str) -> str:
    return svc.render()[svc.dir / name]


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
    assert actual == path.read_text(), f"{name} differs; PALMNET_UPDATE_GOLDEN=1 to accept"


# -- registry -------------------------------------------------------------------------


def test_router_runs_radvd_and_dnsmasq_host_runs_its_clients() -> None:
    assert services_for(router_node()) == [Radvd, Dnsmasq]
    assert service_named("dnsmasq") is Dnsmasq
    assert services_for(host_node()) == [Rdnssd, Dhcpcd, Httpd]


def test_service_names_are_unique() -> None:
    names = [s.name for s in SERVICES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("cls", SERVICES, ids=lambda c: c.name)
def test_every_file_and_path_is_under_the_adapters_own_dir(cls: type[Service]) -> None:
    """/run, /var and /tmp are the host's: nothing may land outside self.dir."""
    for node in (router_node(), host_node()):
        if not cls.wanted(node):
            continue
        svc = adapter(cls, node)
        for path in svc.render():
            assert path.is_relative_to(svc.dir), path
        own = str(svc.dir)
        launcher = shlex.split(svc.python)  # the interpreter a Python daemon runs with
        for arg in svc.argv()[1:]:
            if arg in launcher:
                continue
            if arg.startswith("/") and arg not in ("/etc/resolv.conf",):
                assert arg.startswith(own), arg
        assert svc.log.is_relative_to(svc.dir)


# -- radvd ----------------------------------------------------------------------------


def test_radvd_golden() -> None:
    check_golden("r1.radvd.conf", text(adapter(Radvd, router_node()), "radvd.conf"))


def test_radvd_carries_rdnss_dnssl_with_explicit_lifetimes() -> None:
    conf = text(adapter(Radvd, router_node()), "radvd.conf")
    assert "RDNSS 2001:db8:5::1 {" in conf
    assert "DNSSL svc.example {" in conf
    assert f"AdvRDNSSLifetime {DNS_LIFETIME};" in conf
    assert f"AdvDNSSLLifetime {DNS_LIFETIME};" in conf
    assert DNS_LIFETIME >= 3 * MAX_RA_INTERVAL  # RFC 8106 §5.1
    assert "AdvManagedFlag on;" in conf
    assert "AdvOtherConfigFlag on;" in conf


def test_radvd_keeps_unicast_answers_and_finite_prefix_lifetimes() -> None:
    conf = text(adapter(Radvd, router_node()), "radvd.conf")
    assert "AdvRASolicitedUnicast on;" in conf
    assert "AdvValidLifetime 86400;" in conf
    assert "infinity" not in conf


def test_radvd_flags_follow_the_lan() -> None:
    node = router_node(lans=(lan_service(managed=False, other=False),))
    conf = text(adapter(Radvd, node), "radvd.conf")
    assert "AdvManagedFlag" not in conf
    assert "AdvOtherConfigFlag" not in conf


def test_radvd_without_lan_service_sends_plain_ra() -> None:
    conf = text(adapter(Radvd, router_node(lans=())), "radvd.conf")
    assert "prefix 2001:db8:5::/64 {" in conf
    for option in ("RDNSS", "DNSSL", "AdvManagedFlag", "AdvOtherConfigFlag"):
        assert option not in conf


def test_radvd_splits_more_than_three_dns_servers() -> None:
    servers = tuple(A(f"2001:db8:5::{i}") for i in range(1, 5))
    conf = text(adapter(Radvd, router_node(lans=(lan_service(rdnss=servers),))), "radvd.conf")
    assert "RDNSS 2001:db8:5::1 2001:db8:5::2 2001:db8:5::3 {" in conf
    assert "RDNSS 2001:db8:5::4 {" in conf


def test_radvd_skips_a_lan_with_ra_off() -> None:
    node = router_node(lans=(lan_service(ra=False),))
    assert "interface lan0" not in text(adapter(Radvd, node), "radvd.conf")
    assert not Radvd.wanted(node)  # nothing left to advertise: radvd would refuse to start


def test_radvd_argv_is_foreground_with_own_files() -> None:
    svc = adapter(Radvd, router_node())
    assert svc.argv() == [
        "/usr/sbin/radvd",
        "--nodaemon",
        "--config",
        f"{STATE}/r1/radvd/radvd.conf",
        "--pidfile",
        f"{STATE}/r1/radvd/radvd.pid",
        "--logmethod",
        "logfile",
        "--logfile",
        f"{STATE}/r1/radvd/radvd.log",
    ]


# -- dnsmasq --------------------------------------------------------------------------


def test_dnsmasq_golden() -> None:
    svc = adapter(Dnsmasq, router_node())
    check_golden("r1.dnsmasq.conf", text(svc, "dnsmasq.conf"))
    check_golden("r1.dnsmasq.hosts", text(svc, "hosts"))
    check_golden("r1.dnsmasq.dhcp-hosts", text(svc, "dhcp-hosts"))
    check_golden("r1.dnsmasq.servers", text(svc, "servers"))


def test_dnsmasq_wanted_for_dns_or_dhcp() -> None:
    assert Dnsmasq.wanted(router_node())
    assert Dnsmasq.wanted(router_node(lans=()))  # DNS only
    assert Dnsmasq.wanted(router_node(dns=None))  # DHCP only
    no_dhcp = lan_service(dhcp4_range=None, dhcp6_range=None)
    assert not Dnsmasq.wanted(router_node(dns=None, lans=(no_dhcp,)))  # RA only: radvd's
    assert not Dnsmasq.wanted(host_node())


def test_dnsmasq_never_sends_ra() -> None:
    conf = text(adapter(Dnsmasq, router_node()), "dnsmasq.conf")
    assert "enable-ra" not in conf
    assert "ra-" not in conf
    assert "constructor" not in conf


def test_dnsmasq_reads_nothing_from_etc_and_keeps_files_in_its_dir() -> None:
    svc = adapter(Dnsmasq, router_node())
    lines = text(svc, "dnsmasq.conf").splitlines()
    for option in ("no-resolv", "no-hosts", "bind-dynamic", "user=root"):
        assert option in lines
    assert f"pid-file={svc.dir}/dnsmasq.pid" in lines
    assert f"dhcp-leasefile={svc.dir}/dnsmasq.leases" in lines
    assert f"log-facility={svc.log}" in lines
    assert svc.argv() == [
        "/usr/sbin/dnsmasq",
        "--keep-in-foreground",
        f"--conf-file={svc.dir}/dnsmasq.conf",
    ]


def test_dnsmasq_names_every_record_in_a_file_it_rereads() -> None:
    svc = adapter(Dnsmasq, router_node())
    lines = text(svc, "dnsmasq.conf").splitlines()
    for line in ("domain=svc.example", "local=/svc.example/", "expand-hosts"):
        assert line in lines
    assert f"addn-hosts={svc.dir}/hosts" in lines
    assert f"servers-file={svc.dir}/servers" in lines
    assert text(svc, "hosts").splitlines()[1:] == [
        "2001:db8:5::1 r1.svc.example",
        "192.0.2.1 r1.svc.example",
        f"{H_GUA} h1.svc.example",
        f"{H_DHCP4} h1.svc.example",
    ]
    assert "server=192.0.2.53" in text(svc, "servers").splitlines()
    assert Dnsmasq.reloads  # the backend rewrites these files and sends SIGHUP


def test_dnsmasq_keeps_a_names_addresses_together() -> None:
    records = (
        DnsRecord("a.svc.example", A("2001:db8:5::a")),
        DnsRecord("b.svc.example", A("2001:db8:5::b")),
        DnsRecord("a.svc.example", A("192.0.2.10")),
    )
    svc = adapter(Dnsmasq, router_node(dns=dns_plan(records=records)))
    assert [line.split()[1] for line in text(svc, "hosts").splitlines()[1:]] == [
        "a.svc.example",
        "a.svc.example",
        "b.svc.example",
    ]


def test_dnsmasq_dhcp_is_the_planned_leases() -> None:
    svc = adapter(Dnsmasq, router_node())
    lines = text(svc, "dnsmasq.conf").splitlines()
    assert "dhcp-range=set:lan0,192.0.2.100,192.0.2.150,3600" in lines
    assert "dhcp-option=tag:lan0,option:router,192.0.2.1" in lines
    assert f"dhcp-hostsfile={svc.dir}/dhcp-hosts" in lines
    assert f"{H_MAC},{H_DHCP4},h1" in text(svc, "dhcp-hosts").splitlines()
    assert f"dhcp-range=set:lan0,{H_DHCP6},{H_DHCP6},64,3600" in lines
    assert "dhcp-option=tag:lan0,option6:dns-server,[2001:db8:5::1]" in lines
    assert "dhcp-option=tag:lan0,option6:domain-search,svc.example" in lines
    assert "dhcp-authoritative" in lines


def test_dnsmasq_listens_on_lo_and_each_dns_and_dhcp_interface_once() -> None:
    dns = dns_plan(interfaces=("lan0", "lan1"))
    lines = text(adapter(Dnsmasq, router_node(dns=dns)), "dnsmasq.conf").splitlines()
    assert [line for line in lines if line.startswith("interface=")] == [
        "interface=lo",
        "interface=lan0",
        "interface=lan1",
    ]


def test_dnsmasq_dns_only_has_no_dhcp() -> None:
    svc = adapter(Dnsmasq, router_node(lans=()))
    conf = text(svc, "dnsmasq.conf")
    assert "dhcp-" not in conf.replace("dhcp-leasefile", "")
    assert "port=0" not in conf
    assert svc.dir / "dhcp-hosts" not in svc.render()


def test_dnsmasq_dhcp_only_turns_dns_off() -> None:
    svc = adapter(Dnsmasq, router_node(dns=None))
    lines = text(svc, "dnsmasq.conf").splitlines()
    assert "port=0" in lines
    assert not any(line.startswith(("domain=", "addn-hosts=", "servers-file=")) for line in lines)
    assert "interface=lan0" in lines
    assert set(svc.render()) == {svc.dir / "dnsmasq.conf", svc.dir / "dhcp-hosts"}


@pytest.mark.parametrize(
    ("node", "logged", "done"),
    [
        (router_node(), ["hosts - 3 names"], False),  # the reservations not yet
        (router_node(), ["hosts - 3 names", "dhcp-hosts"], True),
        (router_node(dns=None), ["dhcp-hosts"], True),
        (router_node(lans=()), ["hosts - 3 names"], True),
        (router_node(lans=()), [], False),
    ],
)
def test_dnsmasq_is_reloaded_once_it_logged_reading_each_file_it_rereads(
    tmp_path: Path, node: NodePlan, logged: list[str], done: bool
) -> None:
    svc = Dnsmasq(lab_plan(), node, tmp_path / "r1")
    svc.dir.mkdir(parents=True)
    old = (
        f"dnsmasq[7]: read {svc.dir}/hosts - 2 names\ndnsmasq-dhcp[7]: read {svc.dir}/dhcp-hosts\n"
    )
    svc.log.write_text(old + "".join(f"dnsmasq[7]: read {svc.dir}/{x}\n" for x in logged))
    assert svc.reloaded(len(old)) is done  # what came before the SIGHUP does not count


def test_dnsmasq_dhcp4_without_router_option_leaves_dnsmasqs_default() -> None:
    node = router_node(lans=(lan_service(dhcp4_router=None, dhcp6_range=None),))
    conf = text(adapter(Dnsmasq, node), "dnsmasq.conf")
    assert "option:router" not in conf
    assert ",64," not in conf


# -- sockets (readiness seen from outside the node) -----------------------------------


def test_owns_socket_sees_a_bound_udp_socket_of_the_process() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
        assert owns_socket(os.getpid(), ("udp6",), port, UDP_UNCONNECTED)
        assert not owns_socket(os.getpid(), ("udp6",), port, TCP_LISTEN)
        assert not owns_socket(os.getpid(), ("udp",), port, UDP_UNCONNECTED)
    assert not owns_socket(os.getpid(), ("udp6",), port, UDP_UNCONNECTED)


def test_owns_socket_sees_a_listening_tcp_socket() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
        assert not owns_socket(os.getpid(), ("tcp6",), port, TCP_LISTEN)
        s.listen()
        assert owns_socket(os.getpid(), ("tcp6",), port, TCP_LISTEN)


def test_owns_socket_of_a_gone_process_is_false() -> None:
    assert not owns_socket(2**22 + 1, ("udp6",), 53, UDP_UNCONNECTED)


# -- rdnssd ---------------------------------------------------------------------------


def test_rdnssd_writes_the_nodes_resolv_conf_as_root_without_hook() -> None:
    svc = adapter(Rdnssd, host_node())
    assert Rdnssd.wanted(host_node())
    assert not Rdnssd.wanted(host_node(resolver_from_ra=False))
    assert svc.render() == {}
    assert svc.argv() == [
        "/usr/sbin/rdnssd",
        "-f",
        "-u",
        "root",
        "-r",
        "/etc/resolv.conf",
        "-p",
        f"{STATE}/h1/rdnssd/rdnssd.pid",
    ]
    assert "-H" not in svc.argv()


def test_rdnssd_starts_before_the_links_come_up() -> None:
    assert Rdnssd.starts == "early"
    assert {s.starts for s in SERVICES if s is not Rdnssd} == {"up"}


def test_rdnssd_ready_is_alive() -> None:
    svc = adapter(Rdnssd, host_node())
    assert svc.ready(os.getpid())
    assert not svc.ready(2**22 + 1)


# -- dhcpcd ---------------------------------------------------------------------------


def test_dhcpcd_golden() -> None:
    svc = adapter(Dhcpcd, host_node())
    check_golden("h1.dhcpcd.conf", text(svc, "dhcpcd.conf"))
    check_golden("h1.dhcpcd.hook", text(svc, "hook"))


def test_dhcpcd_private_mounts_map_its_compiled_in_dirs_to_its_own() -> None:
    svc = adapter(Dhcpcd, host_node())
    assert svc.private_mounts() == {
        "/run/dhcpcd": svc.dir / "run",
        "/var/lib/dhcpcd": svc.dir / "db",
    }
    assert adapter(Radvd, router_node()).private_mounts() == {}


def test_dhcpcd_duid_is_stable_and_goes_to_its_private_var_lib() -> None:
    svc = adapter(Dhcpcd, host_node())
    duid_file = svc.private_mounts()["/var/lib/dhcpcd"] / "duid"
    assert svc.render()[duid_file] == "00:03:00:01:00:16:3e:00:00:02\n"
    assert duid_ll("00:16:3E:AA:BB:CC") == "00:03:00:01:00:16:3e:aa:bb:cc"
    assert adapter(Dhcpcd, host_node()).render() == svc.render()


def test_dhcpcd_hook_only_logs() -> None:
    svc = adapter(Dhcpcd, host_node())
    hook = text(svc, "hook")
    assert hook.startswith("#!/bin/sh\n")
    assert f">> {svc.dir}/hook.log" in hook
    assert "resolv" not in hook.split("\n", 3)[3]  # past the comment: nothing but the log line
    # The backend makes `#!` files without a suffix executable: dhcpcd execs the hook.
    assert not svc.hook.suffix


def test_dhcpcd_leaves_ra_to_the_kernel_and_reads_only_its_config() -> None:
    svc = adapter(Dhcpcd, host_node())
    lines = text(svc, "dhcpcd.conf").splitlines()
    for option in ("noipv6rs", "noipv4ll", "allowinterfaces eth0", "clientid"):
        assert option in lines
    argv = svc.argv()
    assert argv[:2] == ["/usr/sbin/dhcpcd", "--nobackground"]
    assert argv[argv.index("-f") + 1] == str(svc.dir / "dhcpcd.conf")
    assert argv[argv.index("-c") + 1] == str(svc.dir / "hook")
    assert argv[argv.index("-j") + 1] == str(svc.log)
    assert argv[-1] == "eth0"


def test_dhcpcd_asks_for_what_the_lan_offers() -> None:
    both = adapter(Dhcpcd, host_node())
    assert "-4" not in both.argv() and "-6" not in both.argv()
    assert "ia_na 1" in text(both, "dhcpcd.conf")

    v4_router = router_node(lans=(lan_service(managed=False, dhcp6_range=None),))
    v4 = adapter(Dhcpcd, host_node(), lab_plan(router=v4_router))
    assert "-4" in v4.argv()
    assert "ia_na" not in text(v4, "dhcpcd.conf")

    v6_router = router_node(lans=(lan_service(dhcp4_range=None),))
    v6 = adapter(Dhcpcd, host_node(), lab_plan(router=v6_router))
    assert "-6" in v6.argv()
    assert "interface eth0\n    ia_na 1" in text(v6, "dhcpcd.conf")


def test_dhcpcd_mixed_networks_ask_each_for_its_own() -> None:
    """eth0 on a DHCPv6-only LAN, eth1 on a DHCPv4-only one: no -4/-6, per-interface say."""
    v6_lan = replace(router_node(lans=(lan_service(dhcp4_range=None),)), name="r1")
    v4_if = replace(router_node().interfaces[0], name="lan1", network="lan4")
    v4_lan = replace(
        router_node(
            interfaces=(v4_if,),
            lans=(lan_service(interface="lan1", managed=False, dhcp6_range=None),),
        ),
        name="r2",
    )
    eth1 = replace(host_node().interfaces[0], name="eth1", network="lan4", mac="00:16:3e:00:00:03")
    host = host_node(interfaces=(*host_node().interfaces, eth1), dhcp_client=("eth0", "eth1"))
    plan = replace(lab_plan(v6_lan, host), nodes=(v6_lan, v4_lan, host))
    svc = adapter(Dhcpcd, host, plan)
    assert not {"-4", "-6"} & set(svc.argv())
    assert svc.argv()[-2:] == ["eth0", "eth1"]
    conf = text(svc, "dhcpcd.conf")
    assert "allowinterfaces eth0 eth1" in conf
    assert conf.endswith("interface eth0\n    ia_na 1\n    ipv6only\n")


def test_dhcpcd_on_a_network_without_server_asks_for_dhcpv4() -> None:
    svc = adapter(Dhcpcd, host_node(), lab_plan(router=router_node(lans=())))
    assert "-4" in svc.argv()


def test_dhcpcd_skips_the_arp_probe_only_when_the_lab_skips_dad() -> None:
    assert "noarp" not in text(adapter(Dhcpcd, host_node()), "dhcpcd.conf")
    assert "noarp" in text(adapter(Dhcpcd, host_node(dad=False)), "dhcpcd.conf")


def test_dhcpcd_wanted_only_with_client_interfaces() -> None:
    assert Dhcpcd.wanted(host_node())
    assert not Dhcpcd.wanted(host_node(dhcp_client=()))


# -- httpd ----------------------------------------------------------------------------


def test_httpd_serves_its_own_dir_on_port_80_dual_stack() -> None:
    svc = adapter(Httpd, host_node())
    assert Httpd.wanted(host_node())
    assert not Httpd.wanted(host_node(service=None))
    launcher = shlex.split(svc.python)
    argv = svc.argv()
    assert argv[: len(launcher)] == launcher
    argv = argv[len(launcher) - 1 :]
    assert argv[1:4] == ["-m", "palmnet.httpd", f"{svc.dir}/www"]
    assert argv[4:] == [
        "--port",
        "80",
        "--bind",
        "::",
        "--log",
        f"{svc.dir}/access.log",
        "--name",
        "h1",
    ]
    assert os.path.isabs(launcher[0])


def test_httpd_node_txt_names_the_node_and_its_addresses() -> None:
    svc = adapter(Httpd, host_node())
    node_txt = svc.render()[svc.dir / "www" / "node.txt"]
    assert node_txt.splitlines()[0] == "node h1"
    assert f"eth0 {H_GUA}/64" in node_txt
    assert f"eth0 {H_DHCP4}/24" in node_txt
    assert not any(p.name == "index.html" for p in svc.render())  # the node page is the index
