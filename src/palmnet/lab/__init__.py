"""The Lab API (api.py) and what it keeps of running labs (store.py): the only
door to a running lab and the only caller of a backend.

Names are loaded on first use (PEP 562): a verb that only needs a handle's type
or the store does not pay for the planner and the YAML loader (pydantic), and
every command starts faster for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "LabAPI": "palmnet.lab.api",
    "LabSession": "palmnet.lab.api",
    "LabSummary": "palmnet.lab.api",
    "UpResult": "palmnet.lab.api",
    "plan_file": "palmnet.lab.api",
    "resolve_lab": "palmnet.lab.store",
    "LiveNode": "palmnet.backends.base",
    "NodeHandle": "palmnet.backends.base",
    "Switch": "palmnet.backends.base",
}

if TYPE_CHECKING:
    from palmnet.backends.base import LiveNode, NodeHandle, Switch
    from palmnet.lab.api import LabAPI, LabSession, LabSummary, UpResult, plan_file
    from palmnet.lab.store import resolve_lab


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'palmnet.lab' has no attribute {name!r}")


__all__ = [
    "LabAPI",
    "LabSession",
    "LabSummary",
    "LiveNode",
    "NodeHandle",
    "Switch",
    "UpResult",
    "plan_file",
    "resolve_lab",
]
