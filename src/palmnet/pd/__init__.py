"""Prefix delegation at run time: what runs inside the nodes of a lab.

`hook` is dhcpcd's script on an openwrt router (radvd and the downstream kea
follow the delegated prefix), `kea_route` is kea's run_script hook (routes to
delegated prefixes via each client's link-local), `split` the arithmetic both
share with the plan, `renumber` the orchestration of `palmnet isp renumber`.
"""
