"""The stock /etc/config files of OpenWrt 24.10, for a fresh `openwrt` node.

A new node starts from what a user finds on a freshly flashed OpenWrt 24.10
router, so that instructions written for OpenWrt (open a port on the WAN,
add a zone) apply unchanged. The content and its meaning follow the 24.10
release: the firewall file shipped by the firewall4 package
(openwrt/firewall4, root/etc/config/firewall, with 24.10's change of the wan
zone's forward policy from REJECT to DROP), the network file that
/bin/config_generate writes for a two-port device (lan on the bridge br-lan,
wan on eth1 by DHCP, wan6 on the same device by DHCPv6, a ULA prefix in
`globals`), and the dhcp file of dnsmasq with the lines odhcpd adds. The
text is written for palmnet in its own words and layout; only option names
and values are OpenWrt's, as they must be.

Two things the firmware decides at first boot are parameters here: the ULA
/48 (random on OpenWrt; palmnet's plan derives it so addresses are stable)
and the LAN bridge's ports.
"""

from __future__ import annotations

from palmnet.openwrt.uci import UciPackage, parse, quote

RELEASE = "24.10"

FIREWALL = """\
# Stock firewall of OpenWrt 24.10 (firewall4), as a palmnet openwrt node starts.
# Edit it, then run /etc/init.d/firewall restart.

config defaults
\toption syn_flood '1'
\toption input 'REJECT'
\toption output 'ACCEPT'
\toption forward 'REJECT'

# The inside: everything allowed, between LAN hosts and towards the router.
config zone
\toption name 'lan'
\tlist network 'lan'
\toption input 'ACCEPT'
\toption output 'ACCEPT'
\toption forward 'ACCEPT'

# The outside: nothing comes in unless a rule below lets it; IPv4 is
# masqueraded and TCP MSS clamped to the path MTU.
config zone
\toption name 'wan'
\tlist network 'wan'
\tlist network 'wan6'
\toption input 'REJECT'
\toption output 'ACCEPT'
\toption forward 'DROP'
\toption masq '1'
\toption mtu_fix '1'

config forwarding
\toption src 'lan'
\toption dest 'wan'

# DHCPv4 renewals are unicast to the router, so no conntrack entry waits for them.
config rule
\toption name 'Allow-DHCP-Renew'
\toption src 'wan'
\toption proto 'udp'
\toption dest_port '68'
\toption target 'ACCEPT'
\toption family 'ipv4'

config rule
\toption name 'Allow-Ping'
\toption src 'wan'
\toption proto 'icmp'
\toption icmp_type 'echo-request'
\toption family 'ipv4'
\toption target 'ACCEPT'

config rule
\toption name 'Allow-IGMP'
\toption src 'wan'
\toption proto 'igmp'
\toption family 'ipv4'
\toption target 'ACCEPT'

# DHCPv6 replies come from a link-local server to our link-local address.
config rule
\toption name 'Allow-DHCPv6'
\toption src 'wan'
\toption proto 'udp'
\toption dest_ip 'fe80::/10'
\toption dest_port '546'
\toption family 'ipv6'
\toption target 'ACCEPT'

# Multicast listener queries, reports and done messages (MLDv1 and v2).
config rule
\toption name 'Allow-MLD'
\toption src 'wan'
\toption proto 'icmp'
\toption src_ip 'fe80::/10'
\tlist icmp_type '130/0'
\tlist icmp_type '131/0'
\tlist icmp_type '132/0'
\tlist icmp_type '143/0'
\toption family 'ipv6'
\toption target 'ACCEPT'

# ICMPv6 that IPv6 cannot work without (RFC 4890), to the router itself.
config rule
\toption name 'Allow-ICMPv6-Input'
\toption src 'wan'
\toption proto 'icmp'
\tlist icmp_type 'echo-request'
\tlist icmp_type 'echo-reply'
\tlist icmp_type 'destination-unreachable'
\tlist icmp_type 'packet-too-big'
\tlist icmp_type 'time-exceeded'
\tlist icmp_type 'bad-header'
\tlist icmp_type 'unknown-header-type'
\tlist icmp_type 'router-solicitation'
\tlist icmp_type 'neighbour-solicitation'
\tlist icmp_type 'router-advertisement'
\tlist icmp_type 'neighbour-advertisement'
\toption limit '1000/sec'
\toption family 'ipv6'
\toption target 'ACCEPT'

# The same error and echo messages, routed through to any zone.
config rule
\toption name 'Allow-ICMPv6-Forward'
\toption src 'wan'
\toption dest '*'
\toption proto 'icmp'
\tlist icmp_type 'echo-request'
\tlist icmp_type 'echo-reply'
\tlist icmp_type 'destination-unreachable'
\tlist icmp_type 'packet-too-big'
\tlist icmp_type 'time-exceeded'
\tlist icmp_type 'bad-header'
\tlist icmp_type 'unknown-header-type'
\toption limit '1000/sec'
\toption family 'ipv6'
\toption target 'ACCEPT'

# IPsec passthrough to the LAN: ESP itself and IKE on UDP 500.
config rule
\toption name 'Allow-IPSec-ESP'
\toption src 'wan'
\toption dest 'lan'
\toption proto 'esp'
\toption target 'ACCEPT'

config rule
\toption name 'Allow-ISAKMP'
\toption src 'wan'
\toption dest 'lan'
\toption dest_port '500'
\toption proto 'udp'
\toption target 'ACCEPT'
"""

NETWORK = """\
# Stock network of OpenWrt 24.10 for a two-port router, as a palmnet openwrt node starts.

config interface 'loopback'
\toption device 'lo'
\toption proto 'static'
\toption ipaddr '127.0.0.1'
\toption netmask '255.0.0.0'

config globals 'globals'
\toption ula_prefix {ula_prefix}

config device
\toption name 'br-lan'
\toption type 'bridge'
{lan_ports}
config interface 'lan'
\toption device 'br-lan'
\toption proto 'static'
\toption ipaddr '192.168.1.1'
\toption netmask '255.255.255.0'
\toption ip6assign '60'

config interface 'wan'
\toption device 'eth1'
\toption proto 'dhcp'

# wan6 rides on whatever device wan has (the @wan alias).
config interface 'wan6'
\toption device '@wan'
\toption proto 'dhcpv6'
"""

DHCP = """\
# Stock dhcp of OpenWrt 24.10 (dnsmasq, plus odhcpd's IPv6 options), as a palmnet
# openwrt node starts.

config dnsmasq
\toption domainneeded '1'
\toption boguspriv '1'
\toption filterwin2k '0'
\toption localise_queries '1'
\toption rebind_protection '1'
\toption rebind_localhost '1'
\toption local '/lan/'
\toption domain 'lan'
\toption expandhosts '1'
\toption nonegcache '0'
\toption cachesize '1000'
\toption authoritative '1'
\toption readethers '1'
\toption leasefile '/tmp/dhcp.leases'
\toption resolvfile '/tmp/resolv.conf.d/resolv.conf.auto'
\toption nonwildcard '1'
\toption localservice '1'
\toption ednspacket_max '1232'
\toption filter_aaaa '0'
\toption filter_a '0'

config dhcp 'lan'
\toption interface 'lan'
\toption start '100'
\toption limit '150'
\toption leasetime '12h'
\toption dhcpv4 'server'
\toption dhcpv6 'server'
\toption ra 'server'
\tlist ra_flags 'managed-config'
\tlist ra_flags 'other-config'

config dhcp 'wan'
\toption interface 'wan'
\toption ignore '1'

config odhcpd 'odhcpd'
\toption maindhcp '0'
\toption leasefile '/tmp/hosts/odhcpd'
\toption leasetrigger '/usr/sbin/odhcpd-update'
\toption loglevel '4'
"""


def network_text(ula_prefix: str, lan_ports: tuple[str, ...] = ("eth0",)) -> str:
    """The stock network file with this node's ULA /48 and LAN bridge ports."""
    ports = "".join(f"\tlist ports {quote(p)}\n" for p in lan_ports)
    return NETWORK.format(ula_prefix=quote(ula_prefix), lan_ports=ports)


def stock_files(ula_prefix: str, lan_ports: tuple[str, ...] = ("eth0",)) -> dict[str, str]:
    """The text of /etc/config/{network,firewall,dhcp}, by file name."""
    return {"network": network_text(ula_prefix, lan_ports), "firewall": FIREWALL, "dhcp": DHCP}


def stock_firewall() -> UciPackage:
    return parse(FIREWALL, "firewall", file="/etc/config/firewall")


def stock_network(ula_prefix: str, lan_ports: tuple[str, ...] = ("eth0",)) -> UciPackage:
    return parse(network_text(ula_prefix, lan_ports), "network", file="/etc/config/network")


def stock_dhcp() -> UciPackage:
    return parse(DHCP, "dhcp", file="/etc/config/dhcp")
