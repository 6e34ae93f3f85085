"""Compile /etc/config/firewall to nftables the way OpenWrt's fw4 does.

`compile_firewall(firewall, zone_devices)` reads the firewall package
(defaults, zones, forwardings, rules, redirects), resolves each zone's
`network` list through `zone_devices` (network name -> kernel devices, what
fw4 learns from netifd) and `network_addresses` (network name -> its
addresses, "addr/len", netifd's other answer), and returns the text of one
`inet fw4` table for `nft -f` plus every warning fw4 would print, each with
the file and line. `zones.zone_devices(network)` gives both at once.

A section fw4 cannot use (an unknown zone, a bad port range, a bad target)
is reported and left out, and the rest of the firewall still compiles, as
on OpenWrt. An option the section type does not know is reported but does
not invalidate the section (fw4's behaviour too). Each report has a level
(fw4_model): ERROR for what fw4 skips or refuses, which `palmnet plan`
refuses too; WARNING for what is used without the part named; NOTICE for
what is not wrong at all. A section of a type fw4 does not read (`config
rules` for `config rule`) is an ERROR here, where fw4 passes over it without
a word. With strict=True the first report that is not a notice is raised
instead, as an InputError with file and line.

The semantics are those of firewall4 at FIREWALL4_COMMIT, written for
palmnet in its own words from firewall4's code, templates and test cases
(openwrt/firewall4: root/usr/share/ucode/fw4.uc, root/usr/share/firewall4/
templates/*.uc, tests/*) and the OpenWrt firewall configuration wiki. The
modules, in the order data flows:

    fw4_options    option specs, warnings, strict mode
    fw4_values     parsing of values (ports, addresses, ICMP types...)
    fw4_sections   defaults, zones, forwardings
    fw4_rules      rules          fw4_redirects  redirects (DNAT/SNAT)
    fw4_render     one nft statement per rule / zone jump / verdict
    fw4_ruleset    the table: chains in fw4's order

What is left out: see fw4_ruleset (includes, flowtables, ct helpers) and
fw4_options (NOT_IN_PALMNET options).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from palmnet.openwrt.fw4_model import WARNING, FirewallResult, FirewallWarning, Ruleset
from palmnet.openwrt.fw4_options import Reporter
from palmnet.openwrt.fw4_redirects import read_redirect
from palmnet.openwrt.fw4_rules import read_rule
from palmnet.openwrt.fw4_ruleset import render_ruleset
from palmnet.openwrt.fw4_sections import Networks, read_defaults, read_forwarding, read_zone
from palmnet.openwrt.uci import UciPackage
from palmnet.openwrt.zones import NetworkDevices

__all__ = ["FIREWALL4_COMMIT", "FirewallResult", "FirewallWarning", "compile_firewall"]

FIREWALL4_COMMIT = "b6e5157527d361f99ad52eaa6da273cb0f2dfd59"
"""The firewall4 commit this compiler follows ("fw4: fix reading kernel version",
March 2025): the one OpenWrt's firewall4 package pins. The goldens were
compared with the real fw4 at this commit on the same input, so its changes
up to there are in, among them:

- 698a533: egress MSS clamping (`mtu_fix`) in mangle_postrouting.
- 7392792: no "Prevent NAT leakage" rules when drop_invalid is on.
- 597dc90, 1874050: `log_limit` of zones (a named nft limit per zone),
  rules and redirects.
- NAT reflection of DNAT redirects (`reflection`, `reflection_src`,
  `reflection_zone`), on by default, from the zones' network addresses.

When OpenWrt moves the pin, move this and review the golden diffs against
the new fw4."""

# Section types fw4 knows that palmnet does not compile (reported, then skipped).
_NOT_IN_PALMNET = ("include", "ipset", "nat", "helper")
_KNOWN_TYPES = ("defaults", "zone", "forwarding", "rule", "redirect", *_NOT_IN_PALMNET)


def compile_firewall(
    firewall: UciPackage,
    zone_devices: Mapping[str, Sequence[str]],
    strict: bool = False,
    network_addresses: Mapping[str, Sequence[str]] | None = None,
    every: bool = False,
) -> FirewallResult:
    """The nft text of a firewall package and the warnings met on the way.

    Without `network_addresses`, those `zone_devices` carries (a
    NetworkDevices) are used, else no network has an address. With `every`,
    each refused value of a section is reported, not only the first as fw4
    does (fw4_options); the table is the same.
    """
    if network_addresses is None and isinstance(zone_devices, NetworkDevices):
        network_addresses = zone_devices.addresses
    networks = Networks(zone_devices, network_addresses or {})
    report = Reporter(firewall, strict, every)
    ruleset = Ruleset()
    # fw4 reads by type, not in file order: a rule may name a zone defined below it.
    ruleset.defaults = read_defaults(report, firewall.of_type("defaults"))
    for section in firewall.of_type("zone"):
        read_zone(report, section, ruleset, networks)
    for section in firewall.of_type("rule"):
        read_rule(report, section, ruleset, report.section_id(section))
    for section in firewall.of_type("forwarding"):
        read_forwarding(report, section, ruleset)
    for section in firewall.of_type("redirect"):
        read_redirect(report, section, ruleset, report.section_id(section))
    for type_ in _NOT_IN_PALMNET:
        for section in firewall.of_type(type_):
            message = f"section type '{type_}' is not supported by palmnet, skipping"
            report.warn(section, message, level=WARNING)
    for section in firewall.sections:
        if section.type not in _KNOWN_TYPES:
            # fw4 ignores it without a word; a typo (`config rules`) then loses a whole
            # rule, so palmnet says it, as a warning (fw4 refuses nothing here)
            close = difflib.get_close_matches(section.type, _KNOWN_TYPES, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            message = f"has type '{section.type}', which fw4 does not read{hint}, ignoring section"
            report.warn(section, message, level=WARNING, valid=", ".join(_KNOWN_TYPES))
    return FirewallResult(render_ruleset(ruleset), report.warnings)
