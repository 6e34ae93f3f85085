"""Issue 12.3/12.4 in the plan: DHCPv6 leases reserved per DUID and named in DNS,
DHCPv6-only LANs (`ra_slaac '0'`), address sources, and the unreachable ULA /48
an openwrt router holds (netifd's), which its routing protocol announces."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

import pytest

from palmnet.backends.live import IFA_F_PERMANENT, source
from palmnet.errors import InputError
from palmnet.plan.build import plan_lab
from palmnet.plan.dns import lab_records, records_by_name
from palmnet.plan.pd import duid_ll
from palmnet.services.dnsmasq import dhcp_hosts_file
from palmnet.services.radvd import render_radvd_config
from palmnet.topology.loader import load_lab

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

DHCP_ONLY = """\
config dnsmasq
\toption domainneeded '1'

config dhcp 'lan'
\toption interface 'lan'
\toption start '100'
\toption limit '150'
\toption leasetime '12h'
\toption dhcpv6 'server'
\toption ra 'server'
\toption ra_slaac '{slaac}'
\tlist ra_flags 'managed-config'
\tlist ra_flags 'other-config'
"""


def _cascade(tmp_path: Path, dhcp: str | None = None, extra_host: bool = False) -> Path:
    """examples/cascade.yaml in tmp_path, r1 with its own dhcp file if given."""
    for folder in ("cascade-r1", "cascade-r2"):
        shutil.copytree(EXAMPLES / folder, tmp_path / folder)
    if dhcp is not None:
        (tmp_path / "cascade-r1" / "dhcp").write_text(dhcp)
    text = (EXAMPLES / "cascade.yaml").read_text()
    if extra_host:
        text += "  h3:\n    interfaces:\n      eth0: {network: home}\n"
    path = tmp_path / "cascade.yaml"
    path.write_text(text)
    return path


def test_dhcpv6_lease_is_reserved_for_the_hosts_duid(tmp_path: Path) -> None:
    plan = plan_lab(load_lab(_cascade(tmp_path)))
    h1 = plan.node("h1")
    eth0 = h1.interface("eth0")
    assert h1.dhcp_duid == duid_ll(eth0.mac)
    (lease,) = eth0.ipv6_dhcp
    lan = next(lan for lan in plan.node("r1").lans if lan.interface == "br-lan")
    assert lan.dhcp6_range is not None
    first, last = lan.dhcp6_range
    assert lease.network.prefixlen == 128 and first <= lease.ip <= last
    assert (h1.dhcp_duid, lease.ip, "h1") in lan.hosts6
    hosts_file = dhcp_hosts_file(plan.node("r1"))
    colons = ":".join(h1.dhcp_duid[i : i + 2] for i in range(0, len(h1.dhcp_duid), 2))
    assert f"id:{colons},[{lease.ip}],h1" in hosts_file.splitlines()
    assert eth0.source_of(lease) == "dhcpv6"


def test_dhcpv6_lease_is_named_in_dns_and_stays_when_hosts_are_added(tmp_path: Path) -> None:
    plan = plan_lab(load_lab(_cascade(tmp_path)))
    (lease,) = plan.node("h1").interface("eth0").ipv6_dhcp
    names = records_by_name(lab_records(plan))
    assert lease.ip in names["h1.cascade.example"]
    again = tmp_path / "again"
    again.mkdir()
    grown = plan_lab(load_lab(_cascade(again, extra_host=True)))
    assert grown.node("h1").interface("eth0").ipv6_dhcp == (lease,)
    (other,) = grown.node("h3").interface("eth0").ipv6_dhcp
    assert other != lease


def test_ra_slaac_off_makes_a_dhcpv6_only_lan(tmp_path: Path) -> None:
    plan = plan_lab(load_lab(_cascade(tmp_path, DHCP_ONLY.format(slaac="0"))))
    eth0 = plan.node("h1").interface("eth0")
    assert eth0.ipv6_slaac == ()
    (lease,) = eth0.ipv6_dhcp
    globals_ = [a for a in eth0.ipv6 if not a.is_link_local]
    assert globals_ == [lease]
    radvd = render_radvd_config(plan.node("r1"))
    assert "AdvAutonomous off;" in radvd and "AdvAutonomous on;" not in radvd
    assert "AdvManagedFlag on;" in radvd
    # r2's WAN is on that LAN too: no SLAAC address there either
    assert plan.node("r2").interface("eth1").ipv6_slaac == ()
    # and a LAN that says so keeps SLAAC
    on = tmp_path / "on"
    on.mkdir()
    with_slaac = plan_lab(load_lab(_cascade(on, DHCP_ONLY.format(slaac="1"))))
    assert with_slaac.node("h1").interface("eth0").ipv6_slaac != ()


def test_bad_ra_slaac_is_refused_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        plan_lab(load_lab(_cascade(tmp_path, DHCP_ONLY.format(slaac="maybe"))))
    err = info.value
    assert err.key == "lan.ra_slaac" and err.line == 11
    assert "is not a boolean" in str(err)


def test_openwrt_router_holds_its_ula_48_unreachable(tmp_path: Path) -> None:
    plan = plan_lab(load_lab(_cascade(tmp_path)))
    unreachable = [r for r in plan.node("r1").routes if r.kind == "unreachable"]
    assert [(str(r.to), r.via) for r in unreachable] == [("fd11:2233:4401::/48", None)]
    assert not [r for r in plan.node("h1").routes if r.kind == "unreachable"]


@pytest.mark.parametrize(
    ("address", "flags", "expected"),
    [
        ("fe80::1/64", IFA_F_PERMANENT, "link-local"),
        ("2001:db8::1/64", IFA_F_PERMANENT, "static"),
        ("2001:db8::216:3eff:fe00:1/64", 0, "slaac"),
        ("2001:db8::1cca/128", 0, "dhcpv6"),
        ("198.51.100.150/24", 0, "dhcpv4"),
    ],
)
def test_source_of_an_address_the_plan_lacks(address: str, flags: int, expected: str) -> None:
    assert source(None, address, flags) == expected


def test_source_of_planned_addresses_follows_the_plan(tmp_path: Path) -> None:
    plan = plan_lab(load_lab(_cascade(tmp_path)))
    eth0 = plan.node("h1").interface("eth0")
    for address in eth0.ipv6_slaac:
        assert source(eth0, str(address), 0) == "slaac"
    r1 = plan.node("r1").interface("br-lan")
    ula = next(a for a in r1.ipv6_static if a.ip in ipaddress.IPv6Network("fc00::/7"))
    assert source(r1, str(ula), IFA_F_PERMANENT) == "static"
    for delegated in r1.ipv6_delegated:
        assert source(r1, str(delegated), 0) == "delegated"
