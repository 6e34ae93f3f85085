"""Where a lab keeps its state: /run/palmnet/LAB (tmpfs: gone after reboot,
like the namespaces it describes). PALMNET_STATE_DIR moves it for tests."""

from __future__ import annotations

import os
from pathlib import Path


def state_root() -> Path:
    return Path(os.environ.get("PALMNET_STATE_DIR", "/run/palmnet"))


def lab_dir(lab: str) -> Path:
    return state_root() / lab


def node_dir(lab: str, node: str) -> Path:
    return lab_dir(lab) / "nodes" / node


def running_labs() -> list[str]:
    root = state_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "journal.sqlite").exists())
