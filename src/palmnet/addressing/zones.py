"""Scoped addresses `ADDR%ZONE` (RFC 4007) and their URL form (RFC 6874).

A link-local address means nothing without the link it lives on: the same
fe80:: address can sit on every interface of a machine. RFC 4007 writes the
link as a zone after a '%' (`fe80::1%eth0`); on Linux the zone is always an
interface, by name or by index (`sin6_scope_id`), so zones are checked
against the kernel's rules for interface names.

Inside a URL the '%' must itself be escaped, so RFC 6874 writes the zone as
`%25`: `http://[fe80::1%25eth0]:8080/x`. Browsers never implemented this and
RFC 9844 (2025) obsoletes RFC 6874 for user interfaces, but curl and other
tools take the form, and it is what our users find in the field notes. The
parser also takes a bare '%' that is not followed by two hex digits, as RFC
6874 section 4 suggests, since that is what people type.

Everything here is pure: whether a zone names an interface of *this* machine
is the CLI's question, not this module's.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from palmnet.errors import InputError

IFNAMSIZ = 16  # the kernel's buffer, with its NUL: names hold at most 15 bytes
MAX_ZONE_INDEX = 2**32 - 1  # sin6_scope_id is a uint32

# Multicast scope field (RFC 4291 2.7, RFC 7346 for realm-local).
MULTICAST_SCOPES = {
    0x1: "interface-local",
    0x2: "link-local",
    0x3: "realm-local",
    0x4: "admin-local",
    0x5: "site-local",
    0x8: "organization-local",
    0xE: "global",
}

_LINK_LOCAL = ipaddress.IPv6Network("fe80::/10")
_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")  # deprecated by RFC 3879, still scoped
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")

# RFC 3986: pchar, and the characters a query or fragment may add.
_PCHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
_PATH_RE = re.compile(rf"(?:/{_PCHAR}*)*(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_ZONE_ID_RE = re.compile(r"(?:[A-Za-z0-9\-._~]|%[0-9A-Fa-f]{2})+")  # RFC 6874 ZoneID
_PORT_RE = re.compile(r":[0-9]*")  # RFC 3986 allows an empty port
_HEX2_RE = re.compile(r"[0-9A-Fa-f]{2}")


@dataclass(frozen=True)
class ScopedAddress:
    """An IPv6 address and, for a non-global scope, the zone it lives in."""

    address: ipaddress.IPv6Address
    zone: str | None = None

    @property
    def scope(self) -> str:
        return scope_of(self.address)

    def __str__(self) -> str:
        text = self.address.compressed
        return f"{text}%{self.zone}" if self.zone is not None else text


@dataclass(frozen=True)
class ScopedUrl:
    """The parts of an RFC 6874 URL whose host is an IPv6 literal."""

    scheme: str
    host: ScopedAddress
    port: int | None
    path: str

    def __str__(self) -> str:
        return to_url(self.host, scheme=self.scheme, port=self.port, path=self.path)


def scope_of(address: ipaddress.IPv6Address) -> str:
    """The scope name of an address (RFC 4291, RFC 4007, RFC 4193)."""
    if address.is_multicast:
        nibble = (int(address) >> 112) & 0xF
        if nibble in (0x0, 0xF):
            return "reserved"
        return MULTICAST_SCOPES.get(nibble, f"unassigned-{nibble:x}")
    if address == ipaddress.IPv6Address("::"):
        return "unspecified"
    if address == ipaddress.IPv6Address("::1"):
        return "loopback"
    if address in _LINK_LOCAL:
        return "link-local"
    if address in _SITE_LOCAL:
        return "site-local"
    if address in _UNIQUE_LOCAL:
        return "unique-local"
    return "global"


def zone_allowed(address: ipaddress.IPv6Address) -> bool:
    """Whether a zone means anything: only for scopes smaller than global.

    Unique-local addresses are global in scope (RFC 4193 3.3), and the
    loopback address is link-local on the loopback interface (RFC 4291 2.5.3).
    """
    if address.is_multicast:
        return 0x1 <= (int(address) >> 112) & 0xF <= 0xD
    return scope_of(address) in ("link-local", "site-local", "loopback")


def zone_required(address: ipaddress.IPv6Address) -> bool:
    """Whether the address cannot be reached without naming its interface.

    These are the addresses for which Linux needs `sin6_scope_id`:
    link-local unicast, interface-local and link-local multicast.
    """
    if address.is_multicast:
        return (int(address) >> 112) & 0xF in (0x1, 0x2)
    return address in _LINK_LOCAL


def parse_address(text: str) -> ipaddress.IPv6Address:
    """An IPv6 address without zone, or InputError that says what is wrong."""
    if "%" in text:
        raise InputError(f"'{text}' has a zone; an address without '%ZONE' is needed here")
    try:
        return ipaddress.IPv6Address(text)
    except ValueError as exc:
        try:
            ipaddress.IPv4Address(text)
        except ValueError:
            raise InputError(f"'{text}' is not an IPv6 address: {exc}") from None
        raise InputError(f"'{text}' is an IPv4 address; an IPv6 address is needed") from None


def check_zone(zone: str) -> str:
    """The zone unchanged if Linux could use it: an interface name or index.

    Names follow the kernel's `dev_valid_name`: 1 to 15 bytes, not '.' or
    '..', no '/', ':' or white space; '%' is refused too, since the kernel
    reads it as a `%d` template when it names an interface.
    """
    if zone == "":
        raise InputError("empty zone after '%': name an interface, e.g. fe80::1%eth0")
    if zone.isascii() and zone.isdigit():
        index = int(zone)
        if not 1 <= index <= MAX_ZONE_INDEX:
            raise InputError(
                f"zone index {zone} is out of range 1-{MAX_ZONE_INDEX} (0 means no zone)"
            )
        return zone
    # Not printable covers lone surrogates too: argv bytes that were not UTF-8.
    bad = [c for c in zone if c in "/:%" or c.isspace() or not c.isprintable()]
    if bad:
        raise InputError(f"zone {zone!r} is not an interface name: it holds {bad[0]!r}")
    if zone in (".", ".."):
        raise InputError(f"zone '{zone}' is not an interface name")
    if len(zone.encode()) >= IFNAMSIZ:
        raise InputError(
            f"zone '{zone}' is not an interface name: longer than {IFNAMSIZ - 1} bytes"
        )
    return zone


def zone_index(zone: str) -> int | None:
    """The interface index a numeric zone gives, None for a zone that is a name."""
    return int(zone) if zone.isascii() and zone.isdigit() else None


def parse_scoped(text: str) -> ScopedAddress:
    """`ADDR` or `ADDR%ZONE`, with the zone checked against the address's scope."""
    addr_text, sep, zone = text.partition("%")
    address = parse_address(addr_text)
    if not sep:
        return ScopedAddress(address)
    check_zone(zone)
    if not zone_allowed(address):
        scope = scope_of(address)
        raise InputError(
            f"{address} is {scope}: a zone ('%{zone}') "
            "belongs only on scoped addresses such as fe80::/10"
        )
    return ScopedAddress(address, zone)


def to_url(
    host: ScopedAddress,
    *,
    scheme: str = "http",
    port: int | None = None,
    path: str = "/",
) -> str:
    """The RFC 6874 URL of a scoped address: `http://[fe80::1%25eth0]:8080/x`.

    An empty path leaves the URL without one, as in RFC 6874's own examples.
    """
    scheme = _check_scheme(scheme)
    if port is not None:
        _check_port(port)
    if path and not path.startswith("/"):
        raise InputError(f"path '{path}' must start with '/'")
    _check_path(path)
    if host.zone is None and zone_required(host.address):
        raise InputError(
            f"{host.address} is {host.scope}: a URL to it needs a zone, e.g. {host.address}%eth0"
        )
    literal = host.address.compressed
    if host.zone is not None:
        literal += "%25" + quote(check_zone(host.zone), safe="")
    netloc = f"[{literal}]" + (f":{port}" if port is not None else "")
    return f"{scheme}://{netloc}{path}"


def parse_url(url: str) -> ScopedUrl:
    """The reverse of `to_url`: scheme, scoped address, port and path of a URL."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise InputError(f"'{url}' is not a URL: expected scheme://[ADDR%25ZONE]/PATH")
    scheme = _check_scheme(scheme)
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    if "@" in authority:
        raise InputError(f"'{url}' has user info before the host, which is not supported")
    if not authority.startswith("["):
        raise InputError(f"host '{authority}' of '{url}' is not an IPv6 literal in [ ]")
    end = authority.find("]")
    if end < 0:
        raise InputError(f"'{url}' has no ']' closing its IPv6 literal")
    literal, after = authority[1:end], authority[end + 1 :]
    port: int | None = None
    if after:
        if not _PORT_RE.fullmatch(after):
            raise InputError(f"'{after}' after the host of '{url}' is not ':PORT'")
        if after[1:]:
            port = _check_port(int(after[1:]))
    _check_path(path)
    host = _parse_literal(literal)
    if host.zone is None and zone_required(host.address):
        raise InputError(
            f"{host.address} in '{url}' is {host.scope}: the URL needs a zone, "
            f"e.g. [{host.address}%25eth0]"
        )
    return ScopedUrl(scheme=scheme, host=host, port=port, path=path)


def _parse_literal(literal: str) -> ScopedAddress:
    """The inside of `[...]`: IPv6address, optionally `%25` ZoneID (RFC 6874 2)."""
    if literal[:1] in ("v", "V"):
        raise InputError(f"[{literal}] is an IPvFuture literal; only IPv6 is supported")
    addr_text, sep, encoded = literal.partition("%")
    if not sep:
        return parse_scoped(addr_text)
    if encoded.startswith("25"):
        encoded = encoded[2:]
        if not _ZONE_ID_RE.fullmatch(encoded):
            raise InputError(
                f"zone '{encoded}' in [{literal}] is not a URL zone "
                "(letters, digits, '-._~' and %XX escapes)"
            )
        try:
            zone = unquote(encoded, errors="strict")
        except UnicodeDecodeError:
            raise InputError(f"zone '{encoded}' in [{literal}] is not UTF-8") from None
    elif _HEX2_RE.match(encoded):
        raise InputError(f"'%{encoded[:2]}' in [{literal}]: the zone delimiter is '%25'")
    else:
        zone = encoded  # a bare '%', accepted as RFC 6874 section 4 suggests
    return parse_scoped(f"{addr_text}%{zone}")


def _check_scheme(scheme: str) -> str:
    if not _SCHEME_RE.fullmatch(scheme):
        raise InputError(f"'{scheme}' is not a URL scheme (e.g. http, https)")
    return scheme.lower()


def _check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise InputError(f"port {port} is out of range 1-65535")
    return port


def _check_path(path: str) -> str:
    if not _PATH_RE.fullmatch(path):
        bad = next((c for c in path if not re.fullmatch(_PCHAR + r"|[/?#%]", c)), None)
        what = f"holds {bad!r}; write it as {quote(bad, safe='')}" if bad else "is malformed"
        raise InputError(f"path '{path}' is not a URL path: it {what}")
    return path
