"""Address arithmetic and `palmnet addr`: RFC and field-note vectors, then properties.

The vectors come from the field notes (what users computed by hand) and from
RFC 4007 / RFC 6874 examples; the properties check the same arithmetic over
random inputs, so a wrong bit shift cannot hide behind one lucky example.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from palmnet.addressing.eui64 import eui64_address, mac_of
from palmnet.addressing.multicast import SOLICITED_NODE_PREFIX, multicast_mac, solicited_node
from palmnet.addressing.ula import LOCAL_BLOCK, generate_ula, global_id_of
from palmnet.addressing.zones import (
    ScopedAddress,
    check_zone,
    parse_scoped,
    parse_url,
    scope_of,
    to_url,
    zone_required,
)
from palmnet.cli.app import build_app
from palmnet.errors import InputError

IP6 = ipaddress.IPv6Address
LINK_LOCAL = ipaddress.IPv6Network("fe80::/10")

# --- vectors -----------------------------------------------------------------


def test_solicited_node_field_notes_vector() -> None:
    group = solicited_node(IP6("2001:db8:ebbd:0:5066:64f6:547e:4872"))
    assert group == IP6("ff02::1:ff7e:4872")
    assert multicast_mac(group) == "33:33:ff:7e:48:72"


def test_eui64_field_notes_vector_and_back() -> None:
    address = eui64_address("00:16:3e:01:e0:a3", "2001:db8:ebbd:2084::/64")
    assert address == IP6("2001:db8:ebbd:2084:216:3eff:fe01:e0a3")
    assert mac_of(address) == "00:16:3e:01:e0:a3"


def test_url_field_notes_vector() -> None:
    host = parse_scoped("fe80::6a1:51ff:fea0:9338%wlan0")
    assert to_url(host) == "http://[fe80::6a1:51ff:fea0:9338%25wlan0]/"


def test_rfc6874_example_without_path() -> None:
    parsed = parse_url("http://[fe80::a%25en1]")
    assert parsed.host == ScopedAddress(IP6("fe80::a"), "en1")
    assert (parsed.scheme, parsed.port, parsed.path) == ("http", None, "")
    assert str(parsed) == "http://[fe80::a%25en1]"
    assert to_url(parse_scoped("fe80::a%en1"), path="") == "http://[fe80::a%25en1]"


def test_rfc6874_bare_percent_is_accepted_as_section_4_suggests() -> None:
    parsed = parse_url("http://[fe80::a%en1]/")
    assert parsed.host.zone == "en1"
    assert str(parsed) == "http://[fe80::a%25en1]/"


def test_url_with_port_path_query() -> None:
    parsed = parse_url("HTTP://[FE80::1%25eth0]:8080/cgi-bin/luci?x=1#top")
    assert parsed.scheme == "http"
    assert parsed.host == ScopedAddress(IP6("fe80::1"), "eth0")
    assert parsed.port == 8080
    assert parsed.path == "/cgi-bin/luci?x=1#top"


def test_zone_outside_unreserved_is_percent_encoded() -> None:
    url = to_url(parse_scoped("fe80::1%wg+x"), port=443, scheme="https")
    assert url == "https://[fe80::1%25wg%2Bx]:443/"
    assert parse_url(url).host.zone == "wg+x"


@pytest.mark.parametrize(
    ("text", "scope"),
    [
        # RFC 4007 11.3 examples
        ("fe80::1234%1", "link-local"),
        ("ff02::5678%5", "link-local"),
        ("ff08::9abc%10", "organization-local"),
        ("ff01::1%lo", "interface-local"),
        ("ff05::1:3%eth0", "site-local"),
        ("fec0::1%eth0", "site-local"),
        ("::1%lo", "loopback"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fd6a:c19d:b07:2080::1", "unique-local"),
        ("2001:db8:ebbd:2084::1", "global"),
        ("ff0e::101", "global"),
    ],
)
def test_scopes(text: str, scope: str) -> None:
    assert parse_scoped(text).scope == scope


def test_scoped_address_keeps_the_zone() -> None:
    host = parse_scoped("FE80::0001%eth0")
    assert host == ScopedAddress(IP6("fe80::1"), "eth0")
    assert str(host) == "fe80::1%eth0"


@pytest.mark.parametrize(
    "text",
    [
        "2001:db8::1%eth0",  # global
        "fd00::1%eth0",  # unique-local is global in scope (RFC 4193 3.3)
        "ff0e::1%eth0",  # global multicast
        "::%eth0",  # unspecified
        "fe80::1%",  # empty zone
        "fe80::1%eth0:1",  # ':' is not in interface names
        "fe80::1%a/b",
        "fe80::1%a b",
        "fe80::1%a%b",
        "fe80::1%sixteen-chars-xx",  # longer than IFNAMSIZ - 1
        "fe80::1%.",
        "fe80::1%0",  # index 0 means no zone
        "fe80::1%4294967296",
        "fe80::zz%eth0",
        "192.0.2.1",
        "",
    ],
)
def test_bad_scoped_addresses(text: str) -> None:
    with pytest.raises(InputError):
        parse_scoped(text)


def test_zone_index_and_names_that_are_fine() -> None:
    for zone in ("1", "4294967295", "eth0", "br-lan", "eth0.10", "wlan0", "a" * 15):
        assert check_zone(zone) == zone


@pytest.mark.parametrize(
    ("address", "kwargs"),
    [
        ("fe80::1", {}),  # link-local needs a zone in a URL
        ("ff02::1", {}),
        ("fe80::1%eth0", {"port": 0}),
        ("fe80::1%eth0", {"port": 65536}),
        ("fe80::1%eth0", {"path": "x"}),
        ("fe80::1%eth0", {"path": "/a b"}),
        ("fe80::1%eth0", {"path": "/a#b#c"}),
        ("fe80::1%eth0", {"scheme": "1http"}),
    ],
)
def test_bad_url_inputs(address: str, kwargs: dict[str, object]) -> None:
    with pytest.raises(InputError):
        to_url(parse_scoped(address), **kwargs)  # type: ignore[arg-type]


def test_url_to_a_global_address_needs_no_zone() -> None:
    assert to_url(parse_scoped("2001:db8::1"), port=8080) == "http://[2001:db8::1]:8080/"
    assert parse_url("http://[2001:db8::1]/").host.zone is None


@pytest.mark.parametrize(
    "url",
    [
        "fe80::1%eth0",  # no scheme
        "http://example.com/",  # not a literal
        "http://[fe80::1%25eth0/",  # no ']'
        "http://[fe80::1]/",  # link-local without zone
        "http://[fe80::1%2eth0]/",  # '%2e' is not the zone delimiter
        "http://[fe80::1%25]/",  # empty zone
        "http://[fe80::1%25e!x]/",  # '!' must be escaped in a ZoneID
        "http://[fe80::1%25%ff]/",  # not UTF-8
        "http://[2001:db8::1%25eth0]/",  # zone on a global address
        "http://[fe80::1%25eth0]:0/",
        "http://[fe80::1%25eth0]:65536/",
        "http://[fe80::1%25eth0]:80x/",
        "http://[fe80::1%25eth0]x/",
        "http://user@[fe80::1%25eth0]/",
        "http://[v1.fe80::a+en1]/",  # IPvFuture
        "http://[fe80::1%25eth0]/a b",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(InputError):
        parse_url(url)


def test_ula_seeded_is_rfc4193_3_2_2_with_the_seed_as_key() -> None:
    prefix = generate_ula("palm")
    expected = int(hashlib.sha1(b"palm").hexdigest(), 16) & ((1 << 40) - 1)
    assert global_id_of(prefix) == expected
    assert prefix == generate_ula("palm")
    assert prefix != generate_ula("palm2")


def test_ula_empty_seed_is_an_error() -> None:
    with pytest.raises(InputError):
        generate_ula("")


def test_solicited_node_refuses_multicast_and_unspecified() -> None:
    for text in ("ff02::1", "::"):
        with pytest.raises(InputError):
            solicited_node(IP6(text))


# --- properties ----------------------------------------------------------------

link_locals = st.integers(0, (1 << 118) - 1).map(lambda n: IP6(int(LINK_LOCAL.network_address) | n))
zone_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,14}", fullmatch=True)
zone_indexes = st.integers(1, 2**32 - 1).map(str)


def _valid_zone(zone: str) -> bool:
    try:
        check_zone(zone)
    except InputError:
        return False
    return True


odd_zones = st.text(min_size=1, max_size=15).filter(_valid_zone)  # need %-encoding
zones = zone_names | zone_indexes | odd_zones
ports = st.none() | st.integers(1, 65535)
paths = st.sampled_from(["", "/", "/x", "/cgi-bin/luci", "/a%20b?q=1&r=2#frag", "/~u/;p=1"])


@given(link_locals, zones, ports, paths, st.sampled_from(["http", "https", "ssh"]))
def test_url_round_trip(
    address: ipaddress.IPv6Address, zone: str, port: int | None, path: str, scheme: str
) -> None:
    host = ScopedAddress(address, zone)
    url = to_url(host, scheme=scheme, port=port, path=path)
    parsed = parse_url(url)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.path) == (scheme, host, port, path)
    assert str(parsed) == url
    assert parse_scoped(str(host)) == host


@given(st.binary(min_size=6, max_size=6), st.integers(0, (1 << 64) - 1))
def test_eui64_mac_of_round_trip(raw: bytes, net: int) -> None:
    mac = ":".join(f"{b:02x}" for b in raw)
    prefix = ipaddress.IPv6Network((net << 64, 64))
    address = eui64_address(mac, prefix)
    assert address in prefix
    assert mac_of(address) == mac


@given(st.integers(1, (1 << 128) - 1).map(IP6).filter(lambda a: not a.is_multicast))
def test_solicited_node_keeps_low_24_bits(address: ipaddress.IPv6Address) -> None:
    group = solicited_node(address)
    assert group in SOLICITED_NODE_PREFIX
    assert int(group) & 0xFFFFFF == int(address) & 0xFFFFFF
    assert zone_required(group) and scope_of(group) == "link-local"


@given(st.text(min_size=1) | st.none())
def test_ula_shape(seed: str | None) -> None:
    prefix = generate_ula(seed)
    assert prefix.prefixlen == 48
    assert prefix.subnet_of(LOCAL_BLOCK)
    if seed is not None:
        assert generate_ula(seed) == prefix


# --- CLI ---------------------------------------------------------------------------

runner = CliRunner()


def _json(*args: str) -> dict[str, object]:
    result = runner.invoke(build_app(), ["addr", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def test_cli_eui64_and_mac_of() -> None:
    data = _json("eui64", "00:16:3e:01:e0:a3", "2001:db8:ebbd:2084::/64")
    assert data["address"] == "2001:db8:ebbd:2084:216:3eff:fe01:e0a3"
    assert data["link_local"] == "fe80::216:3eff:fe01:e0a3"
    assert data["interface_id"] == "::216:3eff:fe01:e0a3"
    back = _json("mac-of", "2001:db8:ebbd:2084:216:3eff:fe01:e0a3")
    assert back["mac"] == "00:16:3e:01:e0:a3"


def test_cli_solicited_node() -> None:
    data = _json("solicited-node", "2001:db8:ebbd:0:5066:64f6:547e:4872")
    assert data["solicited_node"] == "ff02::1:ff7e:4872"
    assert data["multicast_mac"] == "33:33:ff:7e:48:72"


def test_cli_ula_seed_is_stable_and_random_is_a_48() -> None:
    first = _json("ula", "--seed", "palm")
    assert first == _json("ula", "--seed", "palm")
    assert first["prefix"] == str(generate_ula("palm"))
    random = _json("ula")
    assert random["seed"] is None
    assert ipaddress.IPv6Network(random["prefix"]).subnet_of(LOCAL_BLOCK)


def test_cli_url_and_back() -> None:
    data = _json("url", "fe80::6a1:51ff:fea0:9338%wlan0")
    assert data["url"] == "http://[fe80::6a1:51ff:fea0:9338%25wlan0]/"
    data = _json("url", "fe80::a%en1", "--port", "8080", "--path", "/x")
    assert data["url"] == "http://[fe80::a%25en1]:8080/x"
    back = _json("url-parse", data["url"])  # type: ignore[arg-type]
    assert (back["address"], back["zone"], back["port"], back["path"]) == (
        "fe80::a",
        "en1",
        8080,
        "/x",
    )
    assert _json("parse", "http://[fe80::a%25en1]")["zone"] == "en1"


def test_cli_parse_notes_whether_the_zone_is_an_interface_here() -> None:
    here = _json("parse", "fe80::1%lo")
    assert here["scope"] == "link-local"
    assert here["interface"] == {"name": "lo", "index": here["interface"]["index"]}  # type: ignore[index]
    absent = _json("parse", "fe80::1%palmnetnone0")
    assert absent["interface"] is None
    unzoned = _json("parse", "2001:db8::1")
    assert (unzoned["zone"], unzoned["scope"], unzoned["interface"]) == (None, "global", None)


def test_cli_table_is_the_default() -> None:
    result = runner.invoke(build_app(), ["addr", "solicited-node", "fe80::216:3eff:fe01:e0a3"])
    assert result.exit_code == 0
    assert "ff02::1:ff01:e0a3" in result.stdout
    assert not result.stdout.lstrip().startswith("{")


@pytest.mark.parametrize(
    "args",
    [
        ["eui64", "00:16:3e:01:e0", "2001:db8::/64"],  # MAC too short
        ["eui64", "00:16:3e:01:e0:a3:00", "2001:db8::/64"],  # MAC too long
        ["eui64", "00:16:3e:01:e0:a3", "2001:db8::/48"],  # not a /64
        ["eui64", "00:16:3e:01:e0:a3", "not-a-prefix"],
        ["eui64", "00:16:3e:01:e0:a3", "fe80::%eth0/64"],
        ["mac-of", "2001:db8::1"],  # no ff:fe
        ["mac-of", "2001:db8::zz"],
        ["solicited-node", "ff02::1"],
        ["solicited-node", "2001:db8::1%eth0"],
        ["ula", "--seed", ""],
        ["parse", "2001:db8::1%eth0"],
        ["parse", "fe80::1%eth0:1"],
        ["parse", "fe80::1%0"],
        ["parse", "fe80::1%\udcff"],  # argv bytes that were not UTF-8
        ["parse", "http://[fe80::1]/"],
        ["url", "fe80::1"],
        ["url", "fe80::1%eth0", "--port", "0"],
        ["url", "fe80::1%eth0", "--port", "70000"],
        ["url", "fe80::1%eth0", "--path", "x"],
        ["url-parse", "http://example.com/"],
        ["url-parse", "http://[fe80::1%25eth0]:99999/"],
    ],
)
def test_cli_bad_input_exits_2_with_one_line(args: list[str]) -> None:
    for fmt in ("table", "json"):
        result = runner.invoke(build_app(), ["addr", *args, "--format", fmt])
        assert result.exit_code == 2, result.output
        assert isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("palmnet: "), result.stderr
