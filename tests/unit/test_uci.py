"""UCI parser and writer: libuci's syntax, line numbers, errors, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from palmnet.errors import InputError
from palmnet.openwrt import defaults
from palmnet.openwrt.uci import (
    UciError,
    UciOption,
    UciPackage,
    UciSection,
    parse,
    parse_file,
    quote,
    write,
)

FIELD_NOTES_RULE = """\
config rule
        option target 'ACCEPT'
        option src 'wan'
        option proto 'tcp'
        option dest_port '80'
        option name 'ext_web'
"""


def test_sections_options_and_lists() -> None:
    text = (
        "config zone\n\toption name 'lan'\n\tlist network 'lan'\n\n"
        "config interface 'wan'\n\toption proto dhcp\n"
    )
    package = parse(text, "firewall")
    zone, wan = package.sections
    assert (zone.type, zone.name, zone.anonymous) == ("zone", None, True)
    assert zone.options["name"] == UciOption("name", "lan")
    assert zone.get("network") == ["lan"]
    assert (wan.type, wan.name, wan.get("proto")) == ("interface", "wan", "dhcp")


def test_field_notes_rule_with_spaces_for_indent() -> None:
    (rule,) = parse(FIELD_NOTES_RULE, "firewall").sections
    assert rule.get("dest_port") == "80"
    assert rule.get("name") == "ext_web"


def test_line_numbers_of_sections_options_and_list_items() -> None:
    text = (
        "# head\n\nconfig rule\n\toption name 'x'\n\tlist icmp_type 'a'\n\n\tlist icmp_type 'b'\n"
    )
    (rule,) = parse(text).sections
    assert rule.line == 3
    assert rule.options["name"].line == 4
    assert rule.options["icmp_type"].line == 5
    assert rule.options["icmp_type"].item_lines == [5, 7]
    assert rule.options["icmp_type"].line_of(1) == 7


@pytest.mark.parametrize(
    ("word", "value"),
    [
        ("plain", "plain"),
        ("'single quoted'", "single quoted"),
        ('"double quoted"', "double quoted"),
        ("'it'\\''s'", "it's"),
        ('"say \\"hi\\""', 'say "hi"'),
        ("'no \\escape'", "no \\escape"),
        ("back\\ slash", "back slash"),
        ("'a'\"b\"c", "abc"),
        ("''", ""),
        ("'# not a comment'", "# not a comment"),
        ("'semi;colon'", "semi;colon"),
    ],
)
def test_quoting_and_escapes(word: str, value: str) -> None:
    (section,) = parse(f"config x\n\toption v {word}\n").sections
    assert section.get("v") == value


def test_comments_anywhere_outside_quotes() -> None:
    text = "config rule # trailing\n\toption a b#comment\n#\toption c d\n\toption e 'f' # x\n"
    (section,) = parse(text).sections
    assert {k: o.value for k, o in section.options.items()} == {"a": "b", "e": "f"}


def test_multi_line_value_and_line_counting_after_it() -> None:
    text = "config x\n\toption motd 'line one\nline two'\n\toption after 'y'\n"
    (section,) = parse(text).sections
    assert section.get("motd") == "line one\nline two"
    assert section.options["after"].line == 4


def test_backslash_newline_continues_the_line() -> None:
    text = "config x\n\toption long \\\n\t'value'\n\toption next 'n'\n"
    (section,) = parse(text).sections
    assert section.get("long") == "value"
    assert section.options["next"].line == 4


def test_abbreviated_commands_and_semicolons() -> None:
    (section,) = parse("c rule 'r1'; o name 'x'; l proto 'tcp'\nl proto udp\n").sections
    assert section.name == "r1"
    assert section.get("proto") == ["tcp", "udp"]


def test_option_without_value_is_empty() -> None:
    (section,) = parse("config x\n\toption empty\n").sections
    assert section.get("empty") == ""


def test_later_option_replaces_and_list_extends() -> None:
    text = "config x\n\toption a '1'\n\toption a '2'\n\toption b '1'\n\tlist b '2'\n"
    text += "\tlist c '1'\n\toption c '3'\n"
    (section,) = parse(text).sections
    assert section.get("a") == "2"
    assert section.get("b") == ["1", "2"]  # uci_add_list turns the option into a list
    assert section.get("c") == "3"


def test_named_section_declared_twice_is_one_section() -> None:
    text = "config dhcp 'lan'\n\toption start '100'\nconfig dhcp 'lan'\n\toption limit '150'\n"
    package = parse(text)
    assert len(package.sections) == 1
    assert package.sections[0].get("start") == "100"
    assert package.sections[0].get("limit") == "150"


def test_package_statement_names_the_package() -> None:
    assert parse("package firewall\n\nconfig defaults\n", "other").name == "firewall"


def test_anonymous_sections_by_type_index() -> None:
    text = "config rule\n\toption name 'a'\nconfig zone 'z'\nconfig rule\n\toption name 'b'\n"
    package = parse(text)
    first, zone, second = package.sections
    assert package.section_id(first) == "@rule[0]"
    assert package.section_id(second) == "@rule[1]"
    assert package.section_id(zone) == "z"
    assert package.find("@rule[1]") is second
    assert package.find("@rule[-1]") is second
    assert package.find("@rule[-2]") is first
    assert package.find("@rule[2]") is None
    assert package.find("z") is zone
    assert package.of_type("rule") == [first, second]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("config rule\n\tfoo bar baz\n", 2, "invalid command 'foo'"),
        ("\n\toption name 'x'\n", 2, "option/list command found before the first section"),
        ("config\n", 1, "insufficient arguments"),
        ("config rule\n\toption\n", 2, "insufficient arguments"),
        ("config rule 'a' 'b'\n", 1, "too many arguments"),
        ("config rule\n\toption name 'x' 'y'\n", 2, "too many arguments"),
        ("config rule 'bad-name'\n", 1, "invalid character in name field"),
        ("config rule\n\toption dest.port '80'\n", 2, "invalid character in name field"),
        ("config rule\n\toption name 'open\n\n", 2, "EOF with unterminated '"),
        ('config rule\n\toption name "open\n', 2, 'EOF with unterminated "'),
        ("config zone 'lan'\nconfig rule 'lan'\n", 2, "section of different type overwrites"),
        ("config x\npackage late\n", 2, "'package' must come before the first section"),
    ],
)
def test_errors_carry_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(UciError) as caught:
        parse(text, "firewall", file="/etc/config/firewall")
    error = caught.value
    assert isinstance(error, InputError)
    assert error.exit_code == 2
    assert (error.file, error.line) == ("/etc/config/firewall", line)
    assert error.message.startswith(message)
    assert str(error).startswith(f"/etc/config/firewall:{line}: {message}")


def test_writer_layout_is_uci_export() -> None:
    package = UciPackage(
        "firewall",
        [
            UciSection("defaults", None, {"input": UciOption("input", "REJECT")}),
            UciSection("zone", "lan", {"network": UciOption("network", ["lan", "it's"])}),
        ],
    )
    assert write(package) == (
        "\nconfig defaults\n\toption input 'REJECT'\n"
        "\nconfig zone 'lan'\n\tlist network 'lan'\n\tlist network 'it'\\''s'\n\n"
    )
    assert write(package, header=True).startswith("package firewall\n\nconfig defaults\n")


def test_quote() -> None:
    assert quote("a b") == "'a b'"
    assert quote("it's") == "'it'\\''s'"


@pytest.mark.parametrize("name", ["firewall", "network", "dhcp"])
def test_stock_files_round_trip(name: str) -> None:
    text = defaults.stock_files("fd12:3456:789a::/48")[name]
    package = parse(text, name)
    assert parse(write(package), name) == package
    assert write(parse(write(package), name)) == write(package)


def test_round_trip_ignores_line_numbers_but_keeps_order() -> None:
    package = parse("config b\n\n\n\toption z '1'\n\toption a '2'\nconfig a\n")
    again = parse(write(package))
    assert again == package
    assert [list(s.options) for s in again.sections] == [["z", "a"], []]


def test_parse_file_names_the_package_after_the_file(tmp_path) -> None:
    path = tmp_path / "firewall"
    path.write_text('config rule\n\toption name "x\n')
    with pytest.raises(UciError) as caught:
        parse_file(str(path))
    assert caught.value.file == str(path)
    path.write_text(FIELD_NOTES_RULE)
    package = parse_file(str(path))
    assert (package.name, package.file) == ("firewall", str(path))


_names = st.from_regex(r"[A-Za-z0-9_]{1,8}", fullmatch=True)
_types = st.from_regex(r"[\x21-\x7e]{1,8}", fullmatch=True)
_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@st.composite
def _sections(draw: st.DrawFn) -> UciSection:
    section = UciSection(draw(_types), draw(st.one_of(st.none(), _names)))
    for key in draw(st.lists(_names, max_size=4, unique=True)):
        if draw(st.booleans()):
            section.set(key, draw(st.lists(_values, min_size=1, max_size=3)))
        else:
            section.set(key, draw(_values))
    return section


@given(st.lists(_sections(), max_size=5))
def test_parse_of_write_is_identity(sections: list[UciSection]) -> None:
    unique: dict[str, UciSection] = {}
    kept = []
    for section in sections:  # a repeated name would merge, by design
        if section.name is not None and section.name in unique:
            continue
        if section.name is not None:
            unique[section.name] = section
        kept.append(section)
    package = UciPackage("test", kept)
    assert parse(write(package), "test") == package
