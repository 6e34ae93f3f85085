"""zone_devices: UCI interfaces -> kernel devices, as netifd reports them to fw4."""

from __future__ import annotations

from palmnet.openwrt import defaults
from palmnet.openwrt.fw4 import compile_firewall
from palmnet.openwrt.uci import parse
from palmnet.openwrt.zones import zone_devices

ULA = "fd12:3456:789a::/48"


def devices(text: str) -> dict[str, list[str]]:
    return zone_devices(parse(text, "network"))


def test_stock_network():
    got = zone_devices(defaults.stock_network(ULA, ("eth0", "eth2")))
    # the bridge is the device, not its ports; wan6 rides on wan's device; no loopback
    assert got == {"lan": ["br-lan"], "wan": ["eth1"], "wan6": ["eth1"]}


def test_stock_network_compiles_to_the_stock_devices():
    result = compile_firewall(defaults.stock_firewall(), zone_devices(defaults.stock_network(ULA)))
    assert 'define lan_devices = { "br-lan" }' in result.nft_text
    assert 'define wan_devices = { "eth1" }' in result.nft_text
    assert not [w for w in result.warnings if not w.notice]


def test_old_ifname_and_bridge_type():
    text = """
config interface 'loopback'
\toption ifname 'lo'
\toption proto 'static'
config interface 'lan'
\toption type 'bridge'
\toption ifname 'eth0 eth2'
config interface 'wan'
\toption ifname 'eth1'
config interface 'guest'
\toption ifname 'eth3 eth4'
"""
    assert devices(text) == {"lan": ["br-lan"], "wan": ["eth1"], "guest": ["eth3"]}


def test_device_wins_over_ifname_and_vlan_devices_are_kept():
    text = """
config interface 'wan'
\toption device 'eth1.7'
\toption ifname 'eth9'
"""
    assert devices(text) == {"wan": ["eth1.7"]}


def test_alias_chains_unknown_targets_and_loops():
    text = """
config interface 'wan'
\toption device 'eth1'
config interface 'wan6'
\toption device '@wan'
config interface 'wan6b'
\toption device '@wan6'
config interface 'dangling'
\toption device '@nowhere'
config interface 'a'
\toption device '@b'
config interface 'b'
\toption device '@a'
"""
    assert devices(text) == {"wan": ["eth1"], "wan6": ["eth1"], "wan6b": ["eth1"]}


def test_protocols_with_their_own_device():
    text = """
config interface 'wan'
\toption device 'eth1'
\toption proto 'pppoe'
config interface 'wan6'
\toption device '@wan'
\toption proto 'dhcpv6'
config interface 'henet'
\toption proto '6in4'
config interface 'wg0'
\toption proto 'wireguard'
"""
    assert devices(text) == {
        "wan": ["pppoe-wan"],
        "wan6": ["pppoe-wan"],
        "henet": ["6in4-henet"],
        "wg0": ["wg0"],
    }


def test_disabled_deviceless_and_non_interface_sections_are_left_out():
    text = """
config device
\toption name 'br-lan'
\toption type 'bridge'
\tlist ports 'eth0'
config interface 'lan'
\toption device 'br-lan'
config interface 'off'
\toption device 'eth5'
\toption disabled '1'
config interface 'placeholder'
\toption proto 'none'
config interface 'alias_of_off'
\toption device '@off'
config interface
\toption device 'eth6'
"""
    assert devices(text) == {"lan": ["br-lan"]}


def test_empty_network():
    assert devices("") == {}


def addresses(text: str) -> dict[str, list[str]]:
    return zone_devices(parse(text, "network")).addresses


def test_static_addresses_as_netifd_reports_them():
    text = """
config globals 'globals'
\toption ula_prefix 'fd12:3456:789a::/48'
config interface 'lan'
\toption device 'br-lan'
\toption proto 'static'
\toption ipaddr '198.51.100.1'
\toption netmask '255.255.255.128'
\toption ip6addr '2001:db8:1::1'
\toption ip6assign '60'
\toption ip6hint '20'
config interface 'wan'
\toption device 'eth1'
\toption proto 'static'
\tlist ipaddr '203.0.113.2/24'
\tlist ipaddr '203.0.113.3'
config interface 'wan6'
\toption device '@wan'
\toption proto 'dhcpv6'
config interface 'bad'
\toption device 'eth2'
\toption proto 'static'
\toption ipaddr '192.0.2.1'
\toption netmask 'nonsense'
"""
    # no netmask: /32; no ip6addr length: /128; the ULA share is ip6assign long
    # and its ::1 (hint 20 in a /60 share: the share at 20); dhcpv6 learns its
    # addresses at run time; netifd refuses a bad netmask and sets no IPv4.
    assert addresses(text) == {
        "lan": ["198.51.100.1/25", "2001:db8:1::1/128", "fd12:3456:789a:20::1/60"],
        "wan": ["203.0.113.2/24", "203.0.113.3/32"],
    }


def test_ula_auto_has_no_address_in_any_file():
    text = """
config globals 'globals'
\toption ula_prefix 'auto'
config interface 'lan'
\toption device 'br-lan'
\toption proto 'static'
\toption ip6assign '64'
"""
    assert addresses(text) == {}


def test_zone_devices_give_the_compiler_the_addresses_for_reflection():
    """The path a lab takes: compile_firewall(firewall, zone_devices(network))."""
    forward = """
config redirect
\toption name 'web'
\toption src 'wan'
\toption dest 'lan'
\toption proto 'tcp'
\toption src_dport '8080'
\toption dest_ip '192.168.1.10'
\toption dest_port '80'
"""
    dhcp, static = "\toption proto 'dhcp'\n", "\toption proto 'static'\n"
    network = defaults.network_text(ULA).replace(
        dhcp, f"{static}\toption ipaddr '203.0.113.2/24'\n"
    )
    firewall = parse(defaults.FIREWALL + forward, "firewall")
    text = compile_firewall(firewall, zone_devices(parse(network, "network"))).nft_text
    assert "define lan_subnets = { 192.168.1.0/24, fd12:3456:789a::/60 }" in text
    assert (
        "ip saddr 192.168.1.0/24 ip daddr 203.0.113.2 tcp dport 8080 dnat 192.168.1.10:80"
        ' comment "!fw4: web (reflection)"'
    ) in text
    assert (
        "ip saddr 192.168.1.0/24 ip daddr 192.168.1.10 tcp dport 80 snat 192.168.1.1"
        ' comment "!fw4: web (reflection)"'
    ) in text
