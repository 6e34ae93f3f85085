"""`palmnet addr`: the IPv6 address arithmetic of the field notes, offline.

Users work these out by hand today: the SLAAC address a MAC gets in a /64,
the MAC behind an address in `lxc ls`, the solicited-node group to look for
in a capture, a ULA /48 for a new lab, and the RFC 6874 URL of a router's
link-local address. None of it needs a lab or root; only `parse` looks at the
machine, to say whether a zone names one of its interfaces.

Every verb prints a short key/value table, or with `--format json` one JSON
object with the same facts, for scripts.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import socket
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from palmnet.addressing.eui64 import eui64_address, interface_id, link_local, mac_of
from palmnet.addressing.multicast import multicast_mac, solicited_node
from palmnet.addressing.ula import generate_ula, global_id_of
from palmnet.addressing.zones import (
    ScopedAddress,
    ScopedUrl,
    parse_scoped,
    parse_url,
    to_url,
    zone_index,
    zone_required,
)
from palmnet.cli.options import FORMAT, Format
from palmnet.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors(func: F) -> F:
    """Turn InputError into a one-line message and exit 2 inside the command.

    `main()` does the same around the whole app, but the app built by
    `build_app()` (and run by tests) would otherwise show a traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            typer.echo(f"palmnet: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def _emit(fmt: Format, data: dict[str, Any], rows: list[tuple[str, str]]) -> None:
    if fmt is Format.json:
        typer.echo(json.dumps(data, indent=2))
        return
    width = max(len(key) for key, _ in rows) + 2
    for key, value in rows:
        typer.echo(f"{key:<{width}}{value}")


def _parse_prefix(text: str) -> ipaddress.IPv6Network:
    if "%" in text:
        raise InputError(f"prefix '{text}' has a zone; a prefix takes none")
    try:
        return ipaddress.IPv6Network(text, strict=False)
    except ValueError as exc:
        raise InputError(f"'{text}' is not an IPv6 prefix: {exc}") from None


def _local_interface(zone: str) -> dict[str, Any] | None:
    """The interface of this machine (its network namespace) a zone names.

    Looked up as glibc resolves a zone: as a name first, then as an index.
    """
    try:
        return {"name": zone, "index": socket.if_nametoindex(zone)}
    except (OSError, ValueError):
        pass
    index = zone_index(zone)
    if index is not None:
        try:
            return {"name": socket.if_indextoname(index), "index": index}
        except (OSError, ValueError, OverflowError):
            pass
    return None


def _describe(host: ScopedAddress) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """What `parse` says about a scoped address, as JSON fields and table rows."""
    iface = _local_interface(host.zone) if host.zone is not None else None
    data: dict[str, Any] = {
        "address": host.address.compressed,
        "zone": host.zone,
        "scope": host.scope,
        "multicast": host.address.is_multicast,
        "zone_required": zone_required(host.address),
        "interface": iface,
    }
    if host.zone is None:
        zone_text = "-"
    elif iface is None:
        zone_text = f"{host.zone} (no such interface on this machine)"
    else:
        zone_text = f"{host.zone} (on this machine: {iface['name']}, index {iface['index']})"
    rows = [("address", data["address"]), ("zone", zone_text), ("scope", host.scope)]
    if host.zone is None and data["zone_required"]:
        rows.append(("note", f"needs a zone to be reached, e.g. {host.address}%eth0"))
    return data, rows


def _describe_url(url: ScopedUrl) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    data, rows = _describe(url.host)
    data = {"url": str(url), "scheme": url.scheme, **data, "port": url.port, "path": url.path}
    port = "-" if url.port is None else str(url.port)
    rows = [
        ("url", str(url)),
        ("scheme", url.scheme),
        *rows,
        ("port", port),
        ("path", url.path or "-"),
    ]
    return data, rows


@_user_errors
def eui64(
    mac: str = typer.Argument(..., metavar="MAC", help="MAC address, e.g. 00:16:3e:01:e0:a3."),
    prefix: str = typer.Argument(
        ..., metavar="PREFIX", help="The /64, e.g. 2001:db8:ebbd:2084::/64."
    ),
    fmt: Format = FORMAT,
) -> None:
    """The SLAAC (modified EUI-64) address a MAC forms in a /64."""
    net = _parse_prefix(prefix)
    address = eui64_address(mac, net)
    mac_text = mac_of(address)
    iid = ipaddress.IPv6Address(interface_id(mac)).compressed
    data = {
        "mac": mac_text,
        "prefix": str(net),
        "interface_id": iid,
        "address": address.compressed,
        "link_local": link_local(mac).compressed,
    }
    rows = [
        ("address", data["address"]),
        ("link-local", data["link_local"]),
        ("mac", mac_text),
        ("prefix", data["prefix"]),
        ("interface id", iid),
    ]
    _emit(fmt, data, rows)


@_user_errors
def mac_of_cmd(
    address: str = typer.Argument(
        ..., metavar="ADDR", help="An EUI-64 address, e.g. fe80::216:3eff:fe01:e0a3."
    ),
    fmt: Format = FORMAT,
) -> None:
    """The MAC behind an EUI-64 (SLAAC) address."""
    host = parse_scoped(address)
    mac = mac_of(host.address)
    data = {"address": host.address.compressed, "zone": host.zone, "mac": mac}
    _emit(fmt, data, [("address", str(host)), ("mac", mac)])


@_user_errors
def solicited_node_cmd(
    address: str = typer.Argument(
        ..., metavar="ADDR", help="A unicast address, optionally with %ZONE."
    ),
    fmt: Format = FORMAT,
) -> None:
    """The solicited-node multicast group (and its Ethernet MAC) of an address."""
    host = parse_scoped(address)
    group = solicited_node(host.address)
    ether = multicast_mac(group)
    data = {
        "address": host.address.compressed,
        "zone": host.zone,
        "solicited_node": group.compressed,
        "multicast_mac": ether,
    }
    rows = [
        ("address", str(host)),
        ("solicited-node", str(ScopedAddress(group, host.zone))),
        ("multicast mac", ether),
    ]
    _emit(fmt, data, rows)


@_user_errors
def ula(
    seed: str | None = typer.Option(
        None, "--seed", help="Derive the prefix from this text (same seed, same prefix)."
    ),
    fmt: Format = FORMAT,
) -> None:
    """A unique local /48 (RFC 4193): random, or reproducible with --seed."""
    prefix = generate_ula(seed)
    gid = f"{global_id_of(prefix):010x}"
    first = next(prefix.subnets(new_prefix=64))
    data = {"prefix": str(prefix), "global_id": gid, "seed": seed, "first_subnet": str(first)}
    rows = [
        ("prefix", str(prefix)),
        ("global id", gid),
        ("seed", seed if seed is not None else "- (random)"),
        ("first /64", str(first)),
    ]
    _emit(fmt, data, rows)


@_user_errors
def parse(
    text: str = typer.Argument(
        ..., metavar="ADDR[%ZONE]|URL", help="ADDR, ADDR%ZONE, or an RFC 6874 URL."
    ),
    fmt: Format = FORMAT,
) -> None:
    """Address, zone and scope of ADDR%ZONE (or of the host of a URL)."""
    if "://" in text:
        _emit(fmt, *_describe_url(parse_url(text)))
    else:
        _emit(fmt, *_describe(parse_scoped(text)))


@_user_errors
def url(
    address: str = typer.Argument(..., metavar="ADDR%ZONE", help="ADDR%ZONE, e.g. fe80::1%eth0."),
    port: int | None = typer.Option(None, "--port", help="TCP port, 1-65535."),
    path: str = typer.Option("/", "--path", help="Path starting with '/' ('' for none)."),
    scheme: str = typer.Option("http", "--scheme", help="URL scheme."),
    fmt: Format = FORMAT,
) -> None:
    """The RFC 6874 URL of a scoped address, its zone written as %25ZONE."""
    host = parse_scoped(address)
    text = to_url(host, scheme=scheme, port=port, path=path)
    data = {
        "url": text,
        "scheme": scheme.lower(),
        "address": host.address.compressed,
        "zone": host.zone,
        "scope": host.scope,
        "port": port,
        "path": path,
    }
    _emit(fmt, data, [("url", text), ("address", str(host)), ("scope", host.scope)])


@_user_errors
def url_parse(
    text: str = typer.Argument(
        # The backslash keeps Rich, which renders help, from reading [...] as markup.
        ...,
        metavar="URL",
        help="A URL such as http://\\[fe80::1%25eth0]:8080/x.",
    ),
    fmt: Format = FORMAT,
) -> None:
    """Scheme, address, zone, port and path of an RFC 6874 URL."""
    _emit(fmt, *_describe_url(parse_url(text)))


def register(app: typer.Typer) -> None:
    """Add the `addr` group to the app."""
    addr = typer.Typer(
        name="addr",
        help="IPv6 address arithmetic: EUI-64, solicited-node, ULA, zones, RFC 6874 URLs.",
        no_args_is_help=True,
    )
    addr.command("eui64")(eui64)
    addr.command("mac-of")(mac_of_cmd)
    addr.command("solicited-node")(solicited_node_cmd)
    addr.command("ula")(ula)
    addr.command("parse")(parse)
    addr.command("url")(url)
    addr.command("url-parse")(url_parse)
    app.add_typer(addr, name="addr")
