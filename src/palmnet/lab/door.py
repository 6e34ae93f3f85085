"""`palmnet exec`: into a node of a running lab from its journal alone.

Every other verb reads the lab's plan; `exec` only needs to know that the node is
the lab's and how its backend lets a process in (backends/door.py). The names
the journal keeps beside the plan (store.node_names) say the first, and the
backend's door the second, so an interactive shell in a node starts without
building the plan's classes (about 50 ms of 120).
"""

from __future__ import annotations

from typing import NoReturn

from palmnet.errors import UnknownNode
from palmnet.lab import store
from palmnet.lab.backends import door_of
from palmnet.lab.rootless import require_root


def exec_node(lab: str | None, node: str, argv: list[str]) -> NoReturn:
    """Replace this process with argv inside the node (its exit code passes through)."""
    name = store.resolve_lab(lab)
    with store.journal(name) as j:
        require_root("exec")
        names = store.node_names(j)
        if names is None:  # stored by an older palmnet: its plan says
            names = [n.name for n in store.stored_plan(j).nodes]
        if node not in names:
            raise UnknownNode(node, name, names)
        door = door_of(j, name, node)
    door.exec(argv)
