"""An `openwrt` node's /etc/config/firewall, judged by `plan` with fw4's own verdicts.

On OpenWrt, fw4 reads the file at every (re)load, warns about each section it
cannot use and leaves that section out: the router runs without the rule (a
bad `icmp_type` in the ICMPv6 input rule drops the WAN's router
advertisements, and nothing then names the firewall). A lab is checked before
anything is built, so `plan` (and `up`, which plans first) is stricter: it
compiles the firewall as `up` will load it and refuses every section fw4
would skip and every value fw4 would refuse (all the bad values of a section,
where fw4 names only its first), all at once, each at the user's
file and line (the `uci:` folder's file, or the stock one) with
`SECTION.OPTION`, or the section, and what would be valid.

The verdicts are the compiler's (the levels of fw4_model, what `palmnet
firewall check` reports), not a second validator. What fw4 still uses
without the part it names (an option it does not know or ignores, a feature
palmnet does not compile) becomes a warning in the plan's notes, which
`plan` and `up` print on stderr; notices (a disabled section, reflection
left out) are not problems and stay with `firewall check`.
"""

from __future__ import annotations

from palmnet.openwrt.fw4 import compile_firewall
from palmnet.openwrt.fw4_model import ERROR, WARNING, FirewallWarning
from palmnet.openwrt.fw4_options import SKIPPED
from palmnet.openwrt.uci import parse
from palmnet.openwrt.zones import zone_devices
from palmnet.plan.openwrt import uci_file
from palmnet.topology.describe import shown
from palmnet.topology.limits import SHOWN_CHARS
from palmnet.topology.model import Node
from palmnet.topology.problems import Problem, TopologyError

ADDED = "in a section palmnet adds to the file (routing or NAT64) after line"


def check_firewall(node: Node, uci: dict[str, str], own_lines: int) -> list[str]:
    """Warnings about the node's firewall for the plan's notes; TopologyError (exit 2)
    listing every section fw4 would skip or value it would refuse.

    `uci` holds the node's files as it will have them; the firewall's first
    `own_lines` lines are the user's (or stock) file, the rest palmnet's own
    sections for routing and NAT64.
    """
    file = uci_file(node, "firewall")
    firewall = parse(uci["firewall"], "firewall", file=file)
    devices = zone_devices(parse(uci["network"], "network"))
    result = compile_firewall(firewall, devices, every=True)
    errors = [w for w in result.warnings if w.level == ERROR]
    if errors:
        raise TopologyError(_problems(errors, own_lines), file=file)
    return [
        f"warning: {node.name}: {w}{_added(w, own_lines)}"
        for w in result.warnings
        if w.level == WARNING
    ]


def _problems(errors: list[FirewallWarning], own_lines: int) -> list[Problem]:
    """One problem per cause: fw4's "skipped due to invalid options" after an option
    it refused is said with that option ("fw4 would skip the section")."""
    causes = {w.section for w in errors if w.option is not None}
    skipped = {w.section for w in errors if w.message == SKIPPED and w.option is None}
    problems = []
    for w in errors:
        if w.message == SKIPPED and w.option is None and w.section in causes:
            continue
        message = (
            w.message if w.value is None else w.message.replace(f"'{w.value}'", shown(w.value))
        )
        if w.option is None:
            message = f"Section {_who(w)} {message}"
        if w.valid:
            message += f" (valid: {w.valid})"
        if w.option is not None and w.section in skipped:
            name = f" {shown(w.name)}" if w.name else ""
            message += f"; fw4 would skip the section{name}"
        message += _added(w, own_lines)
        key = f"{w.section}.{w.option}" if w.option is not None else ""
        problems.append(Problem(w.line or 0, key, message))
    return problems


def _who(w: FirewallWarning) -> str:
    """The section as fw4 names it: `@rule[3] (Allow-Ping)`, a long name cut."""
    if not w.name:
        return w.section
    name = w.name if len(w.name) <= SHOWN_CHARS else shown(w.name)
    return f"{w.section} ({name})"


def _added(w: FirewallWarning, own_lines: int) -> str:
    return f" ({ADDED} {own_lines})" if w.line is not None and w.line > own_lines else ""
