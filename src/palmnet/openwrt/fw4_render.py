"""The nft statements of one rule, zone jump or verdict, as fw4 prints them.

These are fw4's rule.uc, redirect.uc and zone-*.uc templates (firewall4):
the same statements in the same order with the same `!fw4: ...` comments,
so a ruleset reads like the one on an OpenWrt router and counters can be
matched to sections the same way. `fw4_ruleset` arranges them into chains.

A rule or zone verdict whose log is rate limited (`log_limit`) becomes two
statements, as in fw4: the log with its limit first, then the rule itself.

Differences on purpose: device names are always quoted (fw4 leaves a name
like `ae` bare, which nft would misread), and comments and log prefixes are
cut to nft's length limits with double quotes replaced, as nft has no
escape for a quote inside a string.
"""

from __future__ import annotations

import re
from dataclasses import replace

from palmnet.openwrt.fw4_model import Addr, AddrGroup, MatchRule, Proto, Redirect, Rule, Zone
from palmnet.openwrt.fw4_values import cidr, host

_BARE = re.compile(r"[0-9A-Fa-f:./-]+( \. [0-9A-Fa-f:./-]+)*")
_COMMENT_MAX = 128  # nft: "comment too long, 128 characters maximum allowed"
_PREFIX_MAX = 127  # NF_LOG_PREFIXLEN, with its terminating NUL


def quote(text: str, force: bool = False) -> str:
    """fw4's quote: numbers, addresses and ports bare, anything else in quotes."""
    return text if not force and _BARE.fullmatch(text) else f'"{_clean(text)}"'


def nft_set(values: list[str], force: bool = False) -> str:
    """A value or an anonymous set `{ a, b }`, duplicates removed as fw4 does."""
    unique = list(dict.fromkeys(values))
    if force or len(unique) != 1:
        return "{ " + ", ".join(quote(x) for x in unique) + " }"
    return quote(unique[0])


def dev_set(names: list[str], force: bool = False) -> str:
    unique = list(dict.fromkeys(names))
    quoted = [quote(x, force=True) for x in unique]
    return quoted[0] if len(quoted) == 1 and not force else "{ " + ", ".join(quoted) + " }"


def comment(text: str) -> str:
    return f'comment "{_clean(text)[:_COMMENT_MAX]}"'


def _clean(text: str) -> str:
    return "".join(" " if c < " " or c == "\x7f" else c for c in text).replace('"', "'")


def nfproto(family: int, human: bool = False) -> str:
    if family in (4, 6):
        return f"IPv{family}" if human else f"ipv{family}"
    return "IPv4/IPv6"


def ipproto(family: int) -> str:
    return "ip" if family == 4 else "ip6"


def l4proto(family: int, proto: Proto) -> str:
    if proto.name == "icmp" and family == 0:
        return nft_set(["icmp", "ipv6-icmp"])
    if proto.name == "icmp" and family == 6:
        return "ipv6-icmp"
    return proto.name or ""


def _addr_matches(family: int, key: str, pos, neg, masked: list[Addr] | None) -> list[str]:
    ip, out = ipproto(family), []
    if pos:
        out.append(f"{ip} {key} {nft_set(pos)}")
    if neg:
        out.append(f"{ip} {key} != {nft_set(neg)}")
    for a in masked or []:
        out.append(f"{ip} {key} & {a.mask} {'!=' if a.invert else '=='} {a.addr}")
    return out


def _matches(r: Rule) -> list[str]:
    """The match part shared by rule.uc and redirect.uc."""
    out = []
    out += _addr_matches(r.family, "saddr", r.saddrs_pos, r.saddrs_neg, r.saddrs_masked)
    out += _addr_matches(r.family, "daddr", r.daddrs_pos, r.daddrs_neg, r.daddrs_masked)
    name = r.proto.name
    for key, pos, neg in (
        ("sport", r.sports_pos, r.sports_neg),
        ("dport", r.dports_pos, r.dports_neg),
    ):
        if pos:
            out.append(f"{name} {key} {nft_set(pos)}")
        if neg:
            out.append(f"{name} {key} != {nft_set(neg)}")
    if r.smacs_pos:
        out.append(f"ether saddr {nft_set(r.smacs_pos)}")
    if r.smacs_neg:
        out.append(f"ether saddr != {nft_set(r.smacs_neg)}")
    return out


def _limit(r: Rule) -> list[str]:
    if not r.limit:
        return []
    burst = f" burst {r.limit_burst} packets" if r.limit_burst else ""
    return [f"limit rate {r.limit.rate}/{r.limit.unit}{burst}"]


def _counter_log(r: Rule) -> list[str]:
    out = ["counter"] if r.counter else []
    if r.log:
        out.append(log_prefix(r.log))
    return out


def log_prefix(text: str) -> str:
    return f'log prefix "{_clean(text)[:_PREFIX_MAX]}"'


def zone_log_limit(zone: Zone) -> str:
    """The reference to a zone's named limit (see `limit_object`)."""
    return f'limit name "{zone.name}.log_limit"'


def limit_object(zone: Zone) -> list[str]:
    """ruleset.uc's Limits section: the named limit a zone's log lines share."""
    assert zone.log_limit is not None
    rate = zone.log_limit
    return [
        f"limit {zone.name}.log_limit {{",
        f'\tcomment "{_clean(zone.name)} log limit"',
        f"\trate {rate.rate}/{rate.unit}",
        "}",
    ]


def _rule_log_limit(r: Rule, zone: Zone | None) -> str | None:
    """The limit on a rule's log lines: its own log_limit, else its zone's."""
    if not r.log:
        return None
    if r.log_limit:
        return f"limit rate {r.log_limit.rate}/{r.log_limit.unit}"
    return zone_log_limit(zone) if zone and zone.log_limit else None


def _log_line(head: list[str], limit: str, text: str) -> str:
    """A rule of its own that only logs, at a limited rate.

    fw4 writes a rule whose log is rate limited as two: this one in front,
    with the same matches and no verdict, then the rule without its log. The
    limit then throttles the log lines only, never what happens to the
    packets (a limit in the rule itself would let the excess fall through).
    """
    return " ".join([*head, limit, log_prefix(text)])


def _rule_head(r: Rule) -> list[str]:
    """rule.uc up to the counter: everything a rule matches on."""
    out = []
    if r.family and not r.has_addrs:
        out.append(f"meta nfproto {nfproto(r.family)}")
    if not r.proto.any and not r.has_ports and not r.icmp_types and not r.icmp_codes:
        out.append(f"meta l4proto {l4proto(r.family, r.proto)}")
    if r.iifnames:
        out.append(f"iifname {dev_set(r.iifnames)}")
    if r.oifnames:
        out.append(f"oifname {dev_set(r.oifnames)}")
    out += _matches(r)
    icmp = "icmp" if r.family == 4 else "icmpv6"
    if r.icmp_types:
        out.append(f"{icmp} type {nft_set([str(t) for t in r.icmp_types])}")
    if r.icmp_codes:
        out.append(f"{icmp} type . {icmp} code {nft_set(r.icmp_codes, force=True)}")
    return out + _limit(r)


def rule_lines(r: Rule, zone: Zone | None = None) -> list[str]:
    """rule.uc: one filter rule (two with a limited log); `zone` lends its log_limit."""
    head = _rule_head(r)
    limit = _rule_log_limit(r, zone)
    if limit and r.log:
        return [_log_line(head, limit, r.log), *rule_lines(replace(r, log=None), zone)]
    out = head + _counter_log(r)
    if r.jump_chain:
        out.append(f"jump {r.jump_chain}")
    elif r.target:
        out.append(r.target)
    out.append(comment(f"!fw4: {r.name}"))
    return [" ".join(out)]


def _redirect_head(r: Redirect) -> list[str]:
    out = []
    if r.family and not r.has_addrs:
        out.append(f"meta nfproto {nfproto(r.family)}")
    if not r.proto.any and not r.has_ports:
        name = "ipv6-icmp" if r.proto.name == "icmp" and r.family == 6 else r.proto.name
        out.append(f"meta l4proto {name}")
    return out + _matches(r) + _limit(r)


def redirect_lines(r: Redirect, zone: Zone | None = None) -> list[str]:
    """redirect.uc: one dnat, redirect or snat rule (two with a limited log)."""
    head = _redirect_head(r)
    limit = _rule_log_limit(r, zone)
    if limit and r.log:
        return [_log_line(head, limit, r.log), *redirect_lines(replace(r, log=None), zone)]
    out = head + _counter_log(r)
    port = r.rport.text() if r.rport else None
    if r.target == "redirect":
        out.append(f"redirect to {port}" if port else "redirect")
    else:
        where = host(r.raddr, port is not None) if r.raddr else ""
        out.append(f"{r.target} {where}{':' + port if port else ''}")
    out.append(comment(f"!fw4: {r.name}"))
    return [" ".join(out)]


def zone_match(rule: MatchRule, egress: bool) -> list[str]:
    key = "oifname" if egress else "iifname"
    out = []
    if rule.devices_pos:
        out.append(f"{key} {dev_set(rule.devices_pos)}")
    if rule.devices_neg:
        out.append(f"{key} != {dev_set(rule.devices_neg)}")
    for name in rule.devices_neg_wildcard or []:
        out.append(f"{key} != {quote(name, force=True)}")
    addr_key = "daddr" if egress else "saddr"
    out += _addr_matches(
        rule.family, addr_key, rule.subnets_pos, rule.subnets_neg, rule.subnets_masked
    )
    return out


def _family_prefix(family: int) -> list[str]:
    return [f"meta nfproto {nfproto(family)}"] if family else []


def zone_jump(zone: Zone, rule: MatchRule, direction: str) -> str:
    egress = direction in ("output", "srcnat")
    what = "assignment" if direction == "helper" else "traffic"
    out = _family_prefix(rule.family) + zone_match(rule, egress)
    out.append(f"jump {direction}_{zone.name}")
    out.append(comment(f"!fw4: Handle {zone.name} {nfproto(rule.family, True)} {direction} {what}"))
    return " ".join(out)


def zone_verdict(zone: Zone, rule: MatchRule, verdict: str, egress: bool) -> list[str]:
    """zone-verdict.uc: a zone's accept/reject/drop for one match rule.

    A zone that logs refused packets with a log_limit logs them in a rule
    of its own in front, through the zone's named limit (see _log_line).
    """
    head = _family_prefix(rule.family) + zone_match(rule, egress)
    text = f'log prefix "{verdict} {zone.name} {"out" if egress else "in"}: "'
    logs = verdict != "accept" and bool(zone.log & 1)
    out = []
    if logs and zone.log_limit:
        out.append(" ".join([*head, zone_log_limit(zone), text]))
        logs = False
    line = head + (["counter"] if zone.counter else []) + ([text] if logs else [])
    what = f"{zone.name} {nfproto(rule.family, True)} traffic"
    if verdict == "reject":
        line.append(f"jump handle_reject {comment(f'!fw4: reject {what}')}")
    else:
        line.append(f"{verdict} {comment(f'!fw4: {verdict} {what}')}")
    return [*out, " ".join(line)]


def zone_drop_invalid(zone: Zone, rule: MatchRule) -> list[str]:
    """zone-drop-invalid.uc: "Prevent NAT leakage", its log limited like a verdict's."""
    head = _family_prefix(4 if zone.masq else 6) if zone.masq != zone.masq6 else []
    head += [*zone_match(rule, True), "ct state invalid"]
    text = f'log prefix "drop {zone.name} invalid ct state: "'
    logs = bool(zone.log & 1)
    out = []
    if logs and zone.log_limit:
        out.append(" ".join([*head, zone_log_limit(zone), text]))
        logs = False
    line = head + (["counter"] if zone.counter else []) + ([text] if logs else [])
    line.append('drop comment "!fw4: Prevent NAT leakage"')
    return [*out, " ".join(line)]


def zone_mssfix(zone: Zone, rule: MatchRule, egress: bool) -> str:
    out = _family_prefix(rule.family) + zone_match(rule, egress)
    out.append("tcp flags syn / syn,fin,rst tcp option maxseg size set rt mtu")
    if zone.log & 2:
        out.append(f'log prefix "MSSFIX {zone.name} out: "')
    way = "egress" if egress else "ingress"
    out.append(comment(f"!fw4: Zone {zone.name} {nfproto(rule.family, True)} {way} MTU fixing"))
    return " ".join(out)


def zone_masq(zone: Zone, family: int, saddrs: AddrGroup, daddrs: AddrGroup) -> str:
    out = _family_prefix(family)
    for key, group in (("saddr", saddrs), ("daddr", daddrs)):
        pos = [cidr(a) for a in group[0]] if group[0] else None
        neg = [cidr(a) for a in group[1]] if group[1] else None
        out += _addr_matches(family, key, pos, neg, group[2])
    out.append(comment(f"!fw4: Masquerade {nfproto(family, True)} {zone.name} traffic"))
    out.insert(len(out) - 1, "masquerade")
    return " ".join(out)
