"""The whole `inet fw4` table, chain by chain, as fw4's ruleset.uc lays it out.

The text starts with `table inet fw4` and `flush table inet fw4`, so that
`nft -f` creates the table if it is missing, empties it and refills it in
one transaction: the router is never without a firewall while it reloads.

The statement forms are those of firewall4 in OpenWrt 24.10 and its test
cases: `iif "lo"` / `oif "lo"`, `ct state vmap { established : accept,
related : accept }` (plus `invalid : drop` with drop_invalid), a REJECT
default policy written as policy drop plus a final `jump handle_reject`,
MSS clamping of outgoing SYNs in mangle_postrouting and of incoming ones in
mangle_forward. Base chains always state
their policy (`policy accept;` too), as ruleset.uc writes them.

Left out compared with fw4 on OpenWrt: the `include "/etc/nftables.d/*.nft"`
line (user includes are not part of what palmnet compiles), the flowtable
(flow offloading is not supported) and ct helper objects (palmnet loads no
conntrack helper modules; like fw4 on such a system, the helper_<zone>
chains of non-masquerading zones are present but empty).
"""

from __future__ import annotations

import re
from dataclasses import replace

from palmnet.openwrt import fw4_render as t
from palmnet.openwrt.fw4_model import MatchRule, Rule, Ruleset, Zone

_VERDICTS = ("accept", "reject", "drop")


class _Text:
    """Lines of the table: one tab per nesting level, chains as blocks."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str = "", depth: int = 1) -> None:
        self.lines.append("\t" * depth + line if line else "")

    def heading(self, title: str) -> None:
        self.add("#")
        self.add(f"# {title}")
        self.add("#")
        self.add()

    def chain(self, name: str, body: list[str], hook: str | None = None) -> None:
        self.add(f"chain {name} {{")
        if hook:
            self.add(hook, 2)
        for line in body:
            self.add(line, 2)
        self.add("}")
        self.add()


def render_ruleset(rs: Ruleset) -> str:
    out = _Text()
    out.add("table inet fw4", 0)
    out.add("flush table inet fw4", 0)
    out.add()
    out.add("table inet fw4 {", 0)
    out.heading("Defines")
    for zone in rs.zones:
        name = re.sub(r"^[0-9]", lambda m: "_" + m.group(0), zone.name)
        out.add(f"define {name}_devices = {t.dev_set(zone.match_devices, force=True)}")
        out.add(f"define {name}_subnets = {t.nft_set(zone.match_subnets, force=True)}")
        out.add()
    out.add()
    _limits(out, rs)
    out.heading("Filter rules")
    _filter_chains(out, rs)
    out.add()
    out.heading("NAT rules")
    _nat_chains(out, rs)
    out.add()
    out.heading("Raw rules (notrack)")
    out.chain("raw_prerouting", [], "type filter hook prerouting priority raw; policy accept;")
    out.chain("raw_output", [], "type filter hook output priority raw; policy accept;")
    out.add()
    out.heading("Mangle rules")
    _mangle_chains(out, rs)
    out.lines.pop()  # no blank line before the table's closing brace
    out.add("}", 0)
    return "\n".join(out.lines) + "\n"


def _rules(rs: Ruleset, chain: str, zone: Zone | None = None) -> list[str]:
    """The rules of a chain; `zone` (the chain's own) lends them its log_limit."""
    return [line for r in rs.rules_of(chain) for line in t.rule_lines(r, zone)]


def _redirects(rs: Ruleset, chain: str, zone: Zone | None = None) -> list[str]:
    return [line for r in rs.redirects_of(chain) for line in t.redirect_lines(r, zone)]


def _forward_log_zone(rule: Rule) -> Zone | None:
    """Whose log_limit a rule of the forward base chain uses, as ruleset.uc picks it:
    its source zone's if that has one, else its destination zone's."""
    src = rule.src_zone
    return src if src is not None and src.log_limit else rule.dest_zone


def _limits(out: _Text, rs: Ruleset) -> None:
    """The named limits zones with a log_limit share between their log rules."""
    zones = [zone for zone in rs.zones if zone.log_limit]
    if not zones:
        return
    out.heading("Limits")
    for zone in zones:
        for line in t.limit_object(zone):
            out.add(line)
        out.add()
    out.add()


def _policy(policy: str) -> str:
    return "drop" if policy == "reject" else policy


def _base_hook(hook: str, policy: str) -> str:
    return f"type filter hook {hook} priority filter; policy {_policy(policy)};"


def _filter_chains(out: _Text, rs: Ruleset) -> None:
    d = rs.defaults
    vmap = "established : accept, related : accept" + (", invalid : drop" if d.drop_invalid else "")
    states = f"ct state vmap {{ {vmap} }}"
    matched = [(zone, rule) for zone in rs.zones for rule in zone.match_rules]

    body = ["", 'iif "lo" accept comment "!fw4: Accept traffic from loopback"', ""]
    body.append(f'{states} comment "!fw4: Handle inbound flows"')
    if d.synflood_protect and d.synflood_rate:
        body.append(
            "tcp flags & (fin | syn | rst | ack) == syn jump syn_flood "
            'comment "!fw4: Rate limit TCP syn packets"'
        )
    body += _rules(rs, "input")
    body += [t.zone_jump(zone, rule, "input") for zone, rule in matched]
    body += ["jump handle_reject"] if d.input == "reject" else []
    out.chain("input", body, _base_hook("input", d.input))

    body = ["", f'{states} comment "!fw4: Handle forwarded flows"']
    for r in rs.rules_of("forward"):
        body += t.rule_lines(r, _forward_log_zone(r))
    body += [t.zone_jump(zone, rule, "forward") for zone, rule in matched]
    body += ["jump handle_reject"] if d.forward == "reject" else []
    out.chain("forward", body, _base_hook("forward", d.forward))

    body = ["", 'oif "lo" accept comment "!fw4: Accept traffic towards loopback"', ""]
    body.append(f'{states} comment "!fw4: Handle outbound flows"')
    body += _rules(rs, "output")
    for zone, rule in matched:
        if "helper" in zone.dflags and rule.devices_pos and "lo" in rule.devices_pos:
            body.append(t.zone_jump(zone, _only(rule, ["lo"]), "helper"))
        body.append(t.zone_jump(zone, rule, "output"))
    body += ["jump handle_reject"] if d.output == "reject" else []
    out.chain("output", body, _base_hook("output", d.output))

    body = []
    for zone, rule in matched:
        if "helper" not in zone.dflags:
            continue
        devices = [x for x in rule.devices_pos or [] if x != "lo"]
        if rule.devices_neg or rule.subnets_neg or devices or rule.subnets_pos:
            body.append(t.zone_jump(zone, _only(rule, devices or None), "helper"))
    out.chain("prerouting", body, "type filter hook prerouting priority filter; policy accept;")

    tcp = "tcp reset" if d.tcp_reject_code == "tcp-reset" else f"icmpx type {d.tcp_reject_code}"
    other = f"icmpx type {d.any_reject_code}"
    body = [
        f'meta l4proto tcp reject with {tcp} comment "!fw4: Reject TCP traffic"',
        f'reject with {other} comment "!fw4: Reject any other traffic"',
    ]
    out.chain("handle_reject", body)

    if d.synflood_protect and d.synflood_rate:
        rate = d.synflood_rate
        burst = f" burst {d.synflood_burst} packets" if d.synflood_burst else ""
        body = [
            f"limit rate {rate.rate}/{rate.unit}{burst} return "
            'comment "!fw4: Accept SYN packets below rate-limit"',
            'drop comment "!fw4: Drop excess packets"',
        ]
        out.chain("syn_flood", body)

    for zone in rs.zones:
        _zone_chains(out, rs, zone)


def _only(rule: MatchRule, devices: list[str] | None) -> MatchRule:
    """A copy of a match rule restricted to some of its devices (helper jumps)."""
    return replace(rule, devices_pos=devices)


def _zone_chains(out: _Text, rs: Ruleset, zone: Zone) -> None:
    name = zone.name
    dnat = "dnat" in zone.dflags
    body = _rules(rs, f"input_{name}", zone)
    body += ['ct status dnat accept comment "!fw4: Accept port redirections"'] if dnat else []
    body.append(f"jump {zone.input}_from_{name}")
    out.chain(f"input_{name}", body)

    body = _rules(rs, f"output_{name}", zone)
    body.append(f"jump {zone.output}_to_{name}")
    out.chain(f"output_{name}", body)

    body = _rules(rs, f"forward_{name}", zone)
    body += ['ct status dnat accept comment "!fw4: Accept port forwards"'] if dnat else []
    body.append(f"jump {zone.forward}_to_{name}")
    if rs.defaults.forward != "accept" and zone.log & 1:
        limit = [t.zone_log_limit(zone)] if zone.log_limit else []
        body.append(" ".join([*limit, f'log prefix "{rs.defaults.forward} {name} forward: "']))
    out.chain(f"forward_{name}", body)

    if "helper" in zone.dflags:
        out.chain(f"helper_{name}", _rules(rs, f"helper_{name}", zone))

    for verdict in _VERDICTS:
        if verdict in zone.sflags:
            body = [
                x for rule in zone.match_rules for x in t.zone_verdict(zone, rule, verdict, False)
            ]
            out.chain(f"{verdict}_from_{name}", body)
        if verdict in zone.dflags:
            body = []
            for rule in zone.match_rules:
                if verdict == "accept" and _prevents_nat_leakage(rs, zone):
                    body += t.zone_drop_invalid(zone, rule)
                body += t.zone_verdict(zone, rule, verdict, True)
            out.chain(f"{verdict}_to_{name}", body)


def _prevents_nat_leakage(rs: Ruleset, zone: Zone) -> bool:
    """Whether accept_to_<zone> first drops `ct state invalid` ("Prevent NAT leakage").

    A masquerading zone must not let untracked packets out with their inner
    source address. With drop_invalid the ct state vmap of every base chain
    already drops them, so fw4 leaves the rule out (firewall4 7392792).
    """
    masq = zone.masq or zone.masq6
    return masq and not zone.masq_allow_invalid and not rs.defaults.drop_invalid


def _nat_chains(out: _Text, rs: Ruleset) -> None:
    body = []
    for zone in rs.zones:
        if "dnat" in zone.dflags:
            body += [t.zone_jump(zone, rule, "dstnat") for rule in zone.match_rules]
    out.chain("dstnat", body, "type nat hook prerouting priority dstnat; policy accept;")

    body = _redirects(rs, "srcnat")
    for zone in rs.zones:
        if "snat" in zone.dflags:
            body += [t.zone_jump(zone, rule, "srcnat") for rule in zone.match_rules]
    out.chain("srcnat", body, "type nat hook postrouting priority srcnat; policy accept;")

    for zone in rs.zones:
        if "dnat" in zone.dflags:
            body = _redirects(rs, f"dstnat_{zone.name}", zone)
            out.chain(f"dstnat_{zone.name}", body)
        if "snat" in zone.dflags:
            body = _redirects(rs, f"srcnat_{zone.name}", zone)
            for family, on, sources, dests in (
                (4, zone.masq, zone.masq4_src, zone.masq4_dest),
                (6, zone.masq6, zone.masq6_src, zone.masq6_dest),
            ):
                if on:
                    body += [t.zone_masq(zone, family, s, d) for s in sources for d in dests]
            out.chain(f"srcnat_{zone.name}", body)


def _mangle_chains(out: _Text, rs: Ruleset) -> None:
    """The mangle chains; `mtu_fix` clamps the MSS of TCP SYNs in two places.

    Egress clamping is in mangle_postrouting (firewall4 698a533): after
    routing, the route MTU is final, and the SYNs the router sends itself
    (its own connections out of the zone) pass there too, which they never
    do in mangle_forward. Ingress clamping stays in mangle_forward.
    """
    for hook in ("prerouting", "postrouting", "input"):
        body = _rules(rs, f"mangle_{hook}")
        if hook == "postrouting":
            body += _mssfix(rs, egress=True)
        hook_line = f"type filter hook {hook} priority mangle; policy accept;"
        out.chain(f"mangle_{hook}", body, hook_line)
    out.chain(
        "mangle_output",
        _rules(rs, "mangle_output"),
        "type route hook output priority mangle; policy accept;",
    )
    body = _rules(rs, "mangle_forward") + _mssfix(rs, egress=False)
    out.chain("mangle_forward", body, "type filter hook forward priority mangle; policy accept;")


def _mssfix(rs: Ruleset, egress: bool) -> list[str]:
    """The MSS clamping rules of every `mtu_fix` zone in one direction."""
    return [
        t.zone_mssfix(zone, rule, egress)
        for zone in rs.zones
        if zone.mtu_fix
        for rule in zone.match_rules
    ]
