"""The firewall of a running `openwrt` node: what `/etc/init.d/firewall` does.

On OpenWrt, `/etc/init.d/firewall restart` runs fw4: it reads
/etc/config/firewall, asks netifd which devices each network has, prints
what it finds wrong in the file and loads one `inet fw4` table with nft.
This module does the same inside a node (its netns and its /etc):

    load(dir)     the firewall and network packages (UciError: file + line)
    apply(dir)    compile, print warnings to stderr as fw4 does, load with nft
    check(dir)    compile, load nothing: every problem fw4 would report, each bad value
    show()        the table the kernel holds now
    stop()        remove the table

Loading is atomic: the compiled text (`table inet fw4`, `flush table inet
fw4`, then the table) goes to a single `nft -f -`, which nft commits as one
transaction, all or nothing. A ruleset nft refuses, a file that does not
parse or a missing file all leave the firewall loaded before untouched;
the router is never without a firewall while it reloads.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TextIO

from palmnet.errors import InputError, LabError
from palmnet.openwrt.fw4 import FirewallResult, compile_firewall
from palmnet.openwrt.uci import UciError, UciPackage, parse_file
from palmnet.openwrt.zones import zone_devices

CONFIG_DIR = "/etc/config"
TABLE = ("inet", "fw4")
# `table` first so that deleting a table that is not there is not an error.
_DELETE = "table inet fw4\ndelete table inet fw4\n"


def _read(config_dir: str, name: str, required: bool) -> UciPackage:
    path = os.path.join(config_dir, name)
    try:
        return parse_file(path, name)
    except FileNotFoundError:
        if required:
            raise InputError("no such file", file=path) from None
        return UciPackage(name, file=path)
    except UnicodeDecodeError as exc:
        raise UciError(f"not UTF-8 text (byte {exc.start})", file=path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=path) from None


def load(config_dir: str = CONFIG_DIR) -> tuple[UciPackage, UciPackage]:
    """The firewall and network packages of a config dir.

    A missing firewall file is an InputError; a missing network file is an
    empty package (no interface has devices, so zones match by subnet only).
    """
    return _read(config_dir, "firewall", True), _read(config_dir, "network", False)


def compile_dir(config_dir: str = CONFIG_DIR, strict: bool = False) -> FirewallResult:
    firewall, network = load(config_dir)
    return compile_firewall(firewall, zone_devices(network), strict=strict)


def _nft(nft: str, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [nft, *args], input=stdin, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise LabError(f"{nft}: command not found (nftables is not installed)") from None


def _refused(what: str, proc: subprocess.CompletedProcess[str]) -> LabError:
    reason = (proc.stderr or proc.stdout).strip() or f"exit status {proc.returncode}"
    return LabError(f"nft refused {what}; the firewall loaded before is unchanged:\n{reason}")


def apply(
    config_dir: str = CONFIG_DIR,
    strict: bool = False,
    nft: str = "nft",
    err: TextIO | None = None,
) -> FirewallResult:
    """Compile the config dir and load the table atomically (`nft -f -`).

    Every warning is printed to `err` (stderr) first, `FILE:LINE: Section ...`
    as fw4 prints it plus where; the sections it names are left out (or, for
    an unknown option, used without it). A UciError or InputError (strict)
    is raised before nft runs; nft's refusal is a LabError with its message.
    """
    result = compile_dir(config_dir, strict)
    out = err if err is not None else sys.stderr
    for warning in result.warnings:
        print(warning, file=out)
    proc = _nft(nft, ["-f", "-"], result.nft_text)
    if proc.returncode != 0:
        raise _refused("the ruleset", proc)
    return result


def check(config_dir: str = CONFIG_DIR) -> FirewallResult:
    """Compile and load nothing: every problem fw4 would report, with each refused
    value of a section (fw4 names only the first), so one run shows them all."""
    firewall, network = load(config_dir)
    return compile_firewall(firewall, zone_devices(network), every=True)


def show(nft: str = "nft") -> str:
    """The `inet fw4` table as the kernel holds it (`nft list table inet fw4`)."""
    proc = _nft(nft, ["list", "table", *TABLE])
    if proc.returncode != 0:
        if "No such file or directory" in proc.stderr:
            raise LabError("no firewall is loaded (table inet fw4 does not exist)")
        raise LabError(f"nft list table inet fw4 failed: {proc.stderr.strip()}")
    return proc.stdout


def stop(nft: str = "nft") -> None:
    """Remove the `inet fw4` table (nothing to do if there is none)."""
    proc = _nft(nft, ["-f", "-"], _DELETE)
    if proc.returncode != 0:
        raise _refused("to delete table inet fw4", proc)
