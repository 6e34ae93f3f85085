"""The backends by name. The Lab API is the only place that picks one: for a new
lab from the topology (or `up --backend`), for a running lab from its journal."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from palmnet.errors import InputError
from palmnet.state.journal import Journal

if TYPE_CHECKING:
    from palmnet.backends.base import Backend
    from palmnet.backends.door import NodeDoor

BACKENDS = ("netns", "lxd")


def backend_for(name: str = "netns") -> Backend:
    """The backend by name; LXD's is imported only when used (pylxd is slow to load)."""
    if name == "netns":
        from palmnet.backends.netns.backend import NetnsBackend

        return NetnsBackend()
    if name == "lxd":
        from palmnet.backends.lxd.backend import LxdBackend

        return LxdBackend()
    raise InputError(f"unknown backend '{name}' (valid: {', '.join(BACKENDS)})")


def backend_of(journal: Journal) -> Backend:
    """The backend a running lab was built with."""
    return backend_for(journal.meta("backend", "netns"))


def door_of(journal: Journal, lab: str, node: str) -> NodeDoor:
    """The way into a node of a running lab for `exec` (backends/door.py): by names,
    without the backend's node handle, which needs the lab's plan."""
    name = journal.meta("backend", "netns")
    if name == "netns":
        from palmnet.backends.netns.door import NetnsDoor

        return NetnsDoor(lab, node)
    if name == "lxd":
        from palmnet.backends.lxd.door import LxdDoor

        return LxdDoor(lab, node)
    raise InputError(f"unknown backend '{name}' (valid: {', '.join(BACKENDS)})")


def present_backends() -> list[Backend]:
    """Backends that could hold a lab's leftovers on this machine (LXD only where
    pylxd is installed)."""
    found = [backend_for("netns")]
    if importlib.util.find_spec("pylxd") is not None:
        found.append(backend_for("lxd"))
    return found
