"""OpenWrt semantics on plain Linux: UCI files and the fw4 firewall compiler.

An `openwrt` node keeps /etc/config/{network,firewall,dhcp} as OpenWrt does.
This package is the pure layer under it: `uci` reads and writes those files
(keeping line numbers so messages can point at the bad line), `defaults`
holds the stock files of one OpenWrt release, and `fw4` compiles the
firewall file to one nftables table the way OpenWrt's firewall4 does.
Nothing here touches the kernel.

Importing the package imports none of its modules: `plan` of a lab without an
openwrt node reads the stock files (`defaults`) and never pays for the fw4
compiler (17 ms of start-up, 17 of its dataclasses).
"""
