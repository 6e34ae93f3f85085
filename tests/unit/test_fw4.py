"""The fw4 compiler: golden files, the 24.10 defaults, warnings and strict mode.

Goldens live in tests/golden/fw (see its README): NAME.firewall -> NAME.nft
(+ NAME.warnings). PALMNET_UPDATE_GOLDEN=1 rewrites them from the compiler's
output; the diff is then reviewed like any other change.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from palmnet.errors import InputError
from palmnet.openwrt import defaults
from palmnet.openwrt.fw4 import compile_firewall
from palmnet.openwrt.uci import parse

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "fw"
CASES = sorted(p.stem for p in GOLDEN.glob("*.firewall"))
UPDATE = os.environ.get("PALMNET_UPDATE_GOLDEN") == "1"
STOCK_DEVICES = {"lan": ["br-lan"], "wan": ["eth1"], "wan6": ["eth1"]}


def _header(text: str, key: str) -> dict[str, list[str]] | None:
    """A `# key: net=a,b net=c` header line of a golden as a map, if it has one."""
    for line in text.splitlines():
        if line.startswith(f"# {key}:"):
            pairs = (item.split("=", 1) for item in line.split(":", 1)[1].split())
            return {net: values.split(",") for net, values in pairs}
    return None


def devices_of(text: str) -> dict[str, list[str]]:
    """The `# devices: net=dev,dev ...` header of a golden, or the stock map."""
    return _header(text, "devices") or STOCK_DEVICES


def addresses_of(text: str) -> dict[str, list[str]]:
    """The `# addresses: net=addr/len,... ...` header of a golden (netifd's
    addresses of each network), or none at all."""
    return _header(text, "addresses") or {}


def compile_text(text: str, devices=None, strict: bool = False):
    package = parse(text, "firewall", file="/etc/config/firewall")
    devices = devices or devices_of(text)
    return compile_firewall(package, devices, strict=strict, network_addresses=addresses_of(text))


def check_golden(path: Path, actual: str) -> None:
    if UPDATE:
        if actual:
            path.write_text(actual)
        elif path.exists():
            path.unlink()
        return
    expected = path.read_text() if path.exists() else ""
    assert actual == expected, f"{path.name} differs; PALMNET_UPDATE_GOLDEN=1 to accept"


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    result = compile_text((GOLDEN / f"{case}.firewall").read_text())
    check_golden(GOLDEN / f"{case}.nft", result.nft_text)
    warnings = "".join(f"{w}\n" for w in result.warnings)
    check_golden(GOLDEN / f"{case}.warnings", warnings)


def test_stock_defaults_compile_to_the_24_10_golden() -> None:
    result = compile_firewall(defaults.stock_firewall(), STOCK_DEVICES)
    assert result.warnings == []
    assert result.nft_text == (GOLDEN / "stock_24_10.nft").read_text()


def test_stock_golden_input_is_the_stock_file() -> None:
    golden = parse((GOLDEN / "stock_24_10.firewall").read_text(), "firewall")
    assert golden == defaults.stock_firewall()


def _nft() -> str | None:
    return shutil.which("nft") or next(
        (p for p in ("/usr/sbin/nft", "/sbin/nft") if os.access(p, os.X_OK)), None
    )


@pytest.mark.skipif(os.geteuid() != 0 or _nft() is None, reason="needs root and nft")
@pytest.mark.parametrize("case", CASES)
def test_golden_passes_nft_check(case: str) -> None:
    nft = _nft()
    assert nft is not None
    path = GOLDEN / f"{case}.nft"
    run = subprocess.run([nft, "-c", "-f", str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_output_starts_by_replacing_the_table() -> None:
    text = compile_text("").nft_text
    assert text.startswith("table inet fw4\nflush table inet fw4\n\ntable inet fw4 {\n")
    assert text.endswith("\n}\n")


def test_warning_names_file_line_and_section() -> None:
    text = (
        "config zone\n\toption name 'wan'\n\nconfig rule\n\toption src 'wan'\n\toption bogus 'x'\n"
    )
    (warning,) = compile_text(text).warnings
    assert (warning.file, warning.line, warning.section) == ("/etc/config/firewall", 6, "@rule[0]")
    assert warning.message == "specifies unknown option 'bogus'"
    assert (
        str(warning) == "/etc/config/firewall:6: Section @rule[0] specifies unknown option 'bogus'"
    )


def test_invalid_value_points_at_the_list_item_line() -> None:
    text = "config rule\n\toption name 'x'\n\tlist dest_port '80'\n\tlist dest_port '99999'\n"
    first = compile_text(text).warnings[0]
    assert first.line == 4
    assert first.name == "x"
    assert first.message == "option 'dest_port' specifies invalid value '99999'"


def test_skipped_section_leaves_no_rule() -> None:
    text = "config rule\n\toption name 'bad'\n\toption dest_port '5-1'\n"
    result = compile_text(text)
    assert '"!fw4: bad"' not in result.nft_text
    assert [w.message for w in result.warnings] == [
        "option 'dest_port' specifies invalid value '5-1'",
        "skipped due to invalid options",
    ]


def test_forwarding_to_unknown_zone_is_reported_at_its_line() -> None:
    text = "config zone\n\toption name 'lan'\n\nconfig forwarding\n\toption src 'lan'\n"
    text += "\toption dest 'nowhere'\n"
    warning = compile_text(text).warnings[0]
    assert warning.line == 6
    assert warning.section == "@forwarding[0]"
    assert "accept_to_nowhere" not in compile_text(text).nft_text


def test_strict_raises_the_first_warning_as_input_error() -> None:
    text = "config rule\n\toption name 'web'\n\toption src 'dmz'\n"
    with pytest.raises(InputError) as caught:
        compile_text(text, strict=True)
    error = caught.value
    assert (error.file, error.line) == ("/etc/config/firewall", 3)
    assert str(error) == (
        "/etc/config/firewall:3: Section @rule[0] (web) option 'src' specifies invalid value 'dmz'"
    )


def test_strict_accepts_a_disabled_section() -> None:
    text = "config rule\n\toption name 'off'\n\toption enabled '0'\n"
    result = compile_text(text, strict=True)
    assert [w.notice for w in result.warnings] == [True]


def test_strict_accepts_the_stock_firewall() -> None:
    assert compile_firewall(defaults.stock_firewall(), STOCK_DEVICES, strict=True).warnings == []


def test_unknown_network_matches_no_device() -> None:
    text = "config zone\n\toption name 'lan'\n\tlist network 'nosuch'\n"
    result = compile_text(text)
    assert "define lan_devices = {  }" in result.nft_text
    assert "jump input_lan" not in result.nft_text.split("chain input_lan")[0]


def test_output_is_deterministic() -> None:
    text = (GOLDEN / "rule_matches.firewall").read_text()
    assert compile_text(text).nft_text == compile_text(text).nft_text


def test_thousand_rules_keep_their_order() -> None:
    """Size is no special case (speed is measured by a benchmark, not here)."""
    rules = "".join(
        f"config rule\n\toption name 'r{i}'\n\toption src 'wan'\n\toption proto 'tcp'\n"
        f"\toption dest_port '{1000 + i}'\n\toption target 'ACCEPT'\n\n"
        for i in range(1000)
    )
    text = compile_text(defaults.FIREWALL + rules).nft_text
    names = [
        line.rsplit('"!fw4: ', 1)[1]
        for line in text.splitlines()
        if '"!fw4: r' in line and "reject" not in line
    ]
    assert names == [f'r{i}"' for i in range(1000)]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("proto", "²"),  # a Unicode digit: str.isdigit() says yes, int() says no
        ("proto", "9" * 5000),  # more digits than int() converts
        ("limit", "9" * 5000 + "/second"),
        ("limit_burst", "9" * 5000),
        ("icmp_type", "9" * 5000),
        ("src_ip", "192.0.2.1/" + "9" * 5000),
    ],
)
def test_an_absurd_value_skips_the_section_never_raises(option: str, value: str) -> None:
    rule = f"\nconfig rule\n\toption name 't'\n\toption src 'wan'\n\toption {option} '{value}'\n"
    result = compile_text(defaults.FIREWALL + rule + "\toption target 'ACCEPT'\n")
    assert any("skipped due to invalid options" in str(w) for w in result.warnings)


def test_an_empty_protocol_list_means_the_default() -> None:
    rule = "\nconfig rule\n\toption name 't'\n\toption src 'wan'\n\toption proto ''\n"
    result = compile_text(
        defaults.FIREWALL + rule + "\toption dest_port '22'\n\toption target 'ACCEPT'\n"
    )
    assert "tcp dport 22" in result.nft_text and "udp dport 22" in result.nft_text


ZONES = (
    "config zone\n\toption name 'lan'\n\tlist network 'lan'\n\n"
    "config zone\n\toption name 'wan'\n\tlist network 'wan'\n\n"
)


@pytest.mark.parametrize(
    ("section", "level", "option", "valid"),
    [
        # fw4 skips the section (or refuses the value): an error, what `plan` refuses
        (
            "config rule\n\toption src 'dmz'\n",
            "error",
            "src",
            "'*' or a zone of this file (lan, wan)",
        ),
        ("config rule\n\toption target 'ALLOW'\n", "error", "target", "ACCEPT, REJECT or DROP"),
        ("config rule\n\toption dest_port '70000'\n", "error", "dest_port", "a port 0-65535"),
        ("config rule\n\toption family 'ipv5'\n", "error", "family", "ipv4, ipv6 or any"),
        ("config rule\n\toption proto 'udpx'\n", "error", "proto", "a number 0-255"),
        ("config rule\n\toption src_ip 'fe80::/200'\n", "error", "src_ip", "ADDRESS/LENGTH"),
        ("config rule\n\toption limit 'lots'\n", "error", "limit", "N/second"),
        ("config rule\n\tlist icmp_type 'bogus'\n", "error", "icmp_type", "echo-request"),
        ("config defaults\n\toption input 'MAYBE'\n", "error", "input", "ACCEPT, REJECT or DROP"),
        (
            "config forwarding\n\toption src 'lan'\n\toption dest 'dmz'\n",
            "error",
            "dest",
            "(lan, wan)",
        ),
        ("config forwarding\n\toption dest 'wan'\n", "error", "src", "'*' or a zone"),
        ("config rule\n\tlist family 'ipv4'\n", "error", "family", "one `option family`"),
        ("config rule\n\toption src 'wan'\n\toption target 'dnat'\n", "error", "target", "ACCEPT"),
        (
            "config redirect\n\toption src 'wan'\n\toption target 'accept'\n",
            "error",
            "target",
            "DNAT or SNAT",
        ),
        ("config redirect\n\toption src_dport '80'\n", "error", None, None),
        ("config zone\n\toption name 'lan'\n", "error", None, None),
        ("config zone\n\toption name 'a b'\n", "error", "name", "letters, digits"),
        ("config rule\n\toption family 'ipv4'\n\toption src_ip 'fd00::1'\n", "error", None, None),
        ("config defaults\n\nconfig defaults\n", "error", None, None),
        (
            "config defaults\n\toption any_reject_code 'tcp-reset'\n",
            "error",
            "any_reject_code",
            "port-unreachable",
        ),
        ("config rules\n\toption src 'wan'\n", "warning", None, "defaults, zone, forwarding, rule"),
        # fw4 uses the section without what is named: a warning
        ("config rule\n\toption colour 'blue'\n", "warning", "colour", None),
        ("config rule\n\toption _name 'old'\n", "warning", "_name", None),
        ("config zone\n\toption name 'x'\n\toption extra '-j X'\n", "warning", "extra", None),
        ("config defaults\n\toption flow_offloading '1'\n", "warning", "flow_offloading", None),
        ("config rule\n\toption start_time '21:00'\n", "warning", "start_time", None),
        ("config rule\n\toption target 'notrack'\n", "warning", "target", None),
        ("config rule\n\toption proto '!tcp'\n", "warning", "proto", None),
        ("config include\n\toption path '/etc/firewall.user'\n", "warning", None, None),
        # nothing is wrong: a notice
        ("config rule\n\toption enabled '0'\n", "notice", None, None),
    ],
)
def test_each_warning_says_how_much_it_matters(
    section: str, level: str, option: str | None, valid: str | None
) -> None:
    """ERROR is what fw4 skips or refuses (what `palmnet plan` refuses), WARNING what it
    uses without the part named, NOTICE what is not wrong; a refused value says what
    its option would take."""
    result = compile_text(ZONES + section, {"lan": ["br-lan"], "wan": ["eth1"]})
    first = next(w for w in result.warnings if w.line is not None and w.line > 8)
    assert (first.level, first.option) == (level, option), first
    if valid is None:
        assert first.valid is None or level == "error"
    else:
        assert first.valid is not None and valid in first.valid, first
    assert first.notice is (level == "notice")


def test_an_unknown_section_type_is_said_with_the_type_meant() -> None:
    """fw4 reads only the types it knows and drops `config rules` without a word:
    the compiler warns, with the close type (strict mode refuses it)."""
    text = ZONES + "config rules\n\toption name 'typo'\n"
    result = compile_text(text)
    assert [str(w) for w in result.warnings] == [
        "/etc/config/firewall:9: Section @rules[0] (typo) has type 'rules', "
        "which fw4 does not read (did you mean 'rule'?), ignoring section"
    ]
    with pytest.raises(InputError):
        compile_text(text, strict=True)


def test_a_refused_value_carries_the_value() -> None:
    result = compile_text(
        ZONES + "config rule\n\tlist icmp_type 'echo-request'\n\tlist icmp_type 'bogus'\n"
    )
    bad = result.warnings[0]
    assert (bad.line, bad.option, bad.value) == (11, "icmp_type", "bogus")
    assert (
        str(bad) == "/etc/config/firewall:11: Section @rule[0] option 'icmp_type' "
        "specifies invalid value 'bogus'"
    )


def test_every_reports_each_refused_value_of_a_section_fw4_names_only_the_first() -> None:
    text = ZONES + (
        "config rule\n\toption src 'dmz'\n\toption dest_port '70000'\n"
        "\tlist icmp_type 'bogus'\n\tlist icmp_type 'worse'\n\toption colour 'blue'\n"
    )
    devices = {"lan": ["br-lan"], "wan": ["eth1"]}
    first = compile_text(text, devices)
    assert [(w.option, w.line) for w in first.warnings] == [("src", 10), (None, 9)]
    package = parse(text, "firewall", file="/etc/config/firewall")
    every = compile_firewall(package, devices, every=True)
    assert [(w.option, w.line) for w in every.warnings] == [
        ("src", 10),
        ("dest_port", 11),
        ("icmp_type", 12),
        ("icmp_type", 13),
        (None, 9),
    ]
    assert every.warnings[-1].message == "skipped due to invalid options"
    assert every.nft_text == first.nft_text
