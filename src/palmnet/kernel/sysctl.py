"""Per-namespace sysctls, written by a thread standing in that namespace.

/proc/sys/net shows the namespace of the task that opens it, so callers
write from inside the namespace (namespaces.create_netns(setup=...)), before
any interface exists: new interfaces copy `default`, and DAD is skipped only
when both `all` and the interface say so. What values a node gets is the
plan's policy (plan/sysctls.py); this module only writes them.

A new namespace starts with the same values every time (the kernel's
compiled defaults, or a copy of the creator's, per
net.core.devconf_inherit_init_net): `apply_new_netns` reads them once per
process and writes only what differs, 5-7 files per node instead of ~30.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

_template: dict[str, str] = {}  # key -> value a namespace starts with (read once)


def _write(path: str, value: str | int, dir_fd: int | None = None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _read(path: str) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        return os.read(fd, 256).decode().strip()
    finally:
        os.close(fd)


def read(key: str) -> str | None:
    """One sysctl of the calling thread's namespace (`net/ipv6/conf/all/forwarding`)."""
    return _read(f"/proc/sys/{key}")


def apply_sysctls(values: Mapping[str, str | int]) -> None:
    """Write sysctls of the calling thread's network namespace.

    Each key is opened relative to its top directory (net/ipv6, net/ipv4), opened
    once: looking up /proc/sys/net/ipv6 from a namespace costs more the more
    namespaces the machine has (measured from a node of a 5,000-host lab:
    1.0-1.7 ms, where net/core/* took 4 us), and a node's keys are nearly all under
    it (0.62 ms instead of 1.6 ms for a host's four).
    """
    groups: dict[str, dict[str, str | int]] = {}
    for key, value in values.items():
        parts = key.split("/", 2)
        top, rest = ("/".join(parts[:2]), parts[2]) if len(parts) == 3 else ("", key)
        groups.setdefault(top, {})[rest] = value
    for top, keys in groups.items():
        try:
            dirfd = os.open(f"/proc/sys/{top}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            for key, value in keys.items():
                # Older kernels lack router_solicitation_max_interval: skip what is not there.
                with contextlib.suppress(FileNotFoundError):
                    _write(key, value, dirfd)
        finally:
            os.close(dirfd)


def apply_new_netns(values: Mapping[str, str | int]) -> None:
    """Like apply_sysctls, in a namespace just made (nothing written in it yet):
    only the values that differ from what every new namespace starts with."""
    for key in values:
        if key not in _template:
            _template[key] = _read(f"/proc/sys/{key}") or ""
    apply_sysctls({k: v for k, v in values.items() if _template[k] != str(v)})


def set_neigh_retrans(ifname: str, ms: int) -> None:
    """The neighbour retransmit time of one interface (DAD waits one of them)."""
    _write(f"/proc/sys/net/ipv6/neigh/{ifname}/retrans_time_ms", ms)
