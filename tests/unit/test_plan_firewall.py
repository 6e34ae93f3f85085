"""`plan` judges an openwrt node's /etc/config/firewall with fw4's own verdicts.

What fw4 would skip or refuse at load time (and so silently leave out of the
router's firewall) is refused by `plan`, exit 2, every problem at once, each
at the user's file and line with SECTION.OPTION and what would be valid;
what fw4 only reports (an unknown option, a feature palmnet does not compile)
is a warning in the plan's notes; notices (a disabled section) are not said.
The cases are the stock firewall of examples/palm.yaml with one line changed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from palmnet.cli.app import build_app
from palmnet.errors import InputError
from palmnet.openwrt.defaults import FIREWALL
from palmnet.plan.build import plan_lab
from palmnet.plan.model import Plan
from palmnet.topology.loader import load_lab

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _palm(tmp_path: Path, firewall: str) -> tuple[Path, Path]:
    """examples/palm.yaml in tmp_path with `firewall` as the router's file."""
    shutil.copytree(EXAMPLES / "palm-router", tmp_path / "palm-router")
    shutil.copy(EXAMPLES / "palm.yaml", tmp_path / "palm.yaml")
    (tmp_path / "palm-router" / "firewall").write_text(firewall)
    return tmp_path / "palm.yaml", tmp_path / "palm-router" / "firewall"


def _edit(old: str, new: str) -> str:
    assert old in FIREWALL, old
    return FIREWALL.replace(old, new, 1)


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _plan(lab: Path) -> Plan:
    return plan_lab(load_lab(lab))


# (old, new, the line's text, key, what the message says): one per kind of problem
PROBLEMS = {
    "icmp_type": (
        "list icmp_type 'bad-header'",
        "list icmp_type 'bogus'",
        "'bogus'",
        "@rule[5].icmp_type",
        [
            "option 'icmp_type' specifies invalid value 'bogus'",
            "valid: an ICMP type name (echo-request",
            "fw4 would skip the section 'Allow-ICMPv6-Input'",
        ],
    ),
    "unknown_zone": (
        "option name 'Allow-IGMP'\n\toption src 'wan'",
        "option name 'Allow-IGMP'\n\toption src 'dmz'",
        "'dmz'",
        "@rule[2].src",
        ["invalid value 'dmz'", "valid: '*' or a zone of this file (lan, wan)", "'Allow-IGMP'"],
    ),
    "target": (
        "option dest_port '68'\n\toption target 'ACCEPT'",
        "option dest_port '68'\n\toption target 'ALLOW'",
        "'ALLOW'",
        "@rule[0].target",
        ["invalid value 'ALLOW'", "valid: ACCEPT, REJECT or DROP", "'Allow-DHCP-Renew'"],
    ),
    "port": (
        "option dest_port '68'",
        "option dest_port '70000'",
        "'70000'",
        "@rule[0].dest_port",
        ["invalid value '70000'", "valid: a port 0-65535 or a range LOW-HIGH"],
    ),
    "family": (
        "option proto 'esp'",
        "option proto 'esp'\n\toption family 'ipv5'",
        "'ipv5'",
        "@rule[7].family",
        ["invalid value 'ipv5'", "valid: ipv4, ipv6 or any", "'Allow-IPSec-ESP'"],
    ),
    "proto": (
        "option proto 'esp'",
        "option proto 'udpx'",
        "'udpx'",
        "@rule[7].proto",
        ["invalid value 'udpx'", "valid: tcp, udp, tcpudp, icmp, all"],
    ),
    "src_ip": (
        "option src_ip 'fe80::/10'",
        "option src_ip 'fe80::/200'",
        "'fe80::/200'",
        "@rule[4].src_ip",
        ["invalid value 'fe80::/200'", "ADDRESS/LENGTH", "'Allow-MLD'"],
    ),
    "limit": (
        "option limit '1000/sec'",
        "option limit 'lots'",
        "'lots'",
        "@rule[5].limit",
        ["invalid value 'lots'", "valid: a rate N or N/second"],
    ),
    "defaults": (
        "option input 'REJECT'\n\toption output",
        "option input 'MAYBE'\n\toption output",
        "'MAYBE'",
        "@defaults[0].input",
        ["invalid value 'MAYBE'", "valid: ACCEPT, REJECT or DROP", "fw4 would skip the section"],
    ),
    "forwarding": (
        "option src 'lan'\n\toption dest 'wan'",
        "option src 'lan'\n\toption dest 'dmz'",
        "'dmz'",
        "@forwarding[0].dest",
        ["invalid value 'dmz'", "valid: '*' or a zone of this file (lan, wan)"],
    ),
    "mandatory": (
        "option src 'lan'\n\toption dest 'wan'",
        "option dest 'wan'",
        "config forwarding",
        "@forwarding[0].src",
        ["option 'src' is mandatory but not set", "fw4 would skip the section"],
    ),
    "family_conflict": (
        "option src_ip 'fe80::/10'",
        "option src_ip '192.0.2.0/24'",
        "option name 'Allow-MLD'",  # the section's line, one above
        None,
        ["Section @rule[4] (Allow-MLD) is restricted to IPv6 but referenced source IP"],
    ),
}


@pytest.mark.parametrize("case", sorted(PROBLEMS))
def test_plan_refuses_what_fw4_would_skip(case: str, tmp_path: Path) -> None:
    old, new, needle, key, says = PROBLEMS[case]
    text = _edit(old, new)
    lab, firewall = _palm(tmp_path, text)
    with pytest.raises(InputError) as info:
        _plan(lab)
    err = info.value
    line = _line(text, needle) - (case == "family_conflict")
    assert (err.file, err.line, err.key) == (str(firewall), line, key)
    message = str(err)
    assert message.count("\n") == 0, message  # one problem, said once
    for part in says:
        assert part in message, message
    assert message.startswith(f"{firewall}:{line}: ")


def test_every_problem_is_listed_in_line_order_and_plan_exits_2(tmp_path: Path) -> None:
    text = FIREWALL
    for case in ("defaults", "icmp_type", "forwarding", "port"):
        old, new = PROBLEMS[case][:2]
        assert old in text
        text = text.replace(old, new, 1)
    lab, firewall = _palm(tmp_path, text)
    with pytest.raises(InputError) as info:
        _plan(lab)
    lines = str(info.value).splitlines()
    where = [int(line.split(":")[1]) for line in lines]
    assert where == sorted(where) and len(lines) == 4, lines
    assert all(line.startswith(f"{firewall}:") for line in lines)
    result = CliRunner().invoke(build_app(), ["plan", str(lab)])
    assert result.exit_code == 2
    assert result.stderr == f"palmnet: {info.value}\n"


def test_what_fw4_only_reports_is_a_warning_and_notices_are_not_said(tmp_path: Path) -> None:
    """A real OpenWrt file plans: an unknown option, an include and a deprecated
    `_name` are warnings (fw4 reports them and goes on); a disabled rule or one
    without a name is nothing to say."""
    text = _edit(
        "option syn_flood '1'",
        "option syn_flood '1'\n\toption colour 'blue'",
    )
    text = text.replace("option name 'Allow-IGMP'", "option enabled '0'", 1)
    text = text.replace("option name 'Allow-ISAKMP'", "option _name 'old'", 1)
    text += "\nconfig include\n\toption path '/etc/firewall.user'\n"
    text += "\nconfig rules\n\toption name 'typo'\n"  # fw4 drops it without a word
    lab, firewall = _palm(tmp_path, text)
    notes = [n for n in _plan(lab).notes if "firewall" in n]
    assert notes == [
        f"warning: router: {firewall}:{_line(text, 'colour')}: "
        "Section @defaults[0] specifies unknown option 'colour'",
        f"warning: router: {firewall}:{_line(text, '_name')}: "
        "Section @rule[8] option '_name' is deprecated by fw4",
        f"warning: router: {firewall}:{_line(text, 'config include')}: "
        "Section @include[0] section type 'include' is not supported by palmnet, skipping",
        f"warning: router: {firewall}:{_line(text, 'config rules')}: "
        "Section @rules[0] (typo) has type 'rules', which fw4 does not read "
        "(did you mean 'rule'?), ignoring section",
    ]


def test_the_stock_file_and_palmnets_own_sections_are_named_as_such(tmp_path: Path) -> None:
    """Without a firewall in the `uci:` folder the message names OpenWrt's stock file;
    a problem past the file's end is in what palmnet appends (routing, NAT64)."""
    from palmnet.plan.uci_firewall import check_firewall

    lab, _ = _palm(tmp_path, FIREWALL)
    (tmp_path / "palm-router" / "firewall").unlink()
    node = load_lab(lab).nodes["router"]
    uci = {
        "network": (tmp_path / "palm-router" / "network").read_text(),
        "firewall": FIREWALL + "\nconfig rule\n\toption src 'nowhere'\n",
    }
    own = len(FIREWALL.splitlines())
    with pytest.raises(InputError) as info:
        check_firewall(node, uci, own)
    err = info.value
    assert (err.file, err.line, err.key) == (
        "/etc/config/firewall (stock)",
        own + 3,
        "@rule[9].src",
    )
    assert f"in a section palmnet adds to the file (routing or NAT64) after line {own}" in str(err)


def test_a_long_value_is_cut_in_the_message(tmp_path: Path) -> None:
    text = _edit("option dest_port '68'", f"option dest_port '{'6' * 500}'")
    lab, _ = _palm(tmp_path, text)
    with pytest.raises(InputError) as info:
        _plan(lab)
    assert "(500 characters)" in str(info.value) and "6" * 100 not in str(info.value)
