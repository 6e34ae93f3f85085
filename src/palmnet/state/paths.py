"""Where a lab keeps its state: /run/palmnet/LAB for root (tmpfs: gone after reboot,
like the namespaces it describes); for any other user $XDG_RUNTIME_DIR/palmnet/LAB
(also a tmpfs, the user's own), else /tmp/palmnet-UID (mode 0700, checked): a
plain user's labs are rootless (lab/rootless.py) and never touch /run/palmnet.
PALMNET_STATE_DIR moves it (tests; and inside a rootless lab, its own state root)."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from palmnet.errors import LabError


def state_root() -> Path:
    env = os.environ.get("PALMNET_STATE_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/run/palmnet")
    return user_state_root()


def user_state_root() -> Path:
    """A plain user's state root: under the runtime directory if there is one of the
    user's own, else /tmp/palmnet-UID, made 0700 and refused if someone else owns it
    (another user could have made it first in the shared /tmp)."""
    uid = os.geteuid()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and _owned_dir(Path(runtime), uid):
        return Path(runtime) / "palmnet"
    root = Path(f"/tmp/palmnet-{uid}")
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o700)
    if not _owned_dir(root, uid):
        raise LabError(f"{root} is not a directory of yours with mode 0700: remove it")
    return root


def _owned_dir(path: Path, uid: int) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == uid and st.st_mode & 0o077 == 0


def lab_dir(lab: str) -> Path:
    return state_root() / lab


def node_dir(lab: str, node: str) -> Path:
    return lab_dir(lab) / "nodes" / node


def running_labs() -> list[str]:
    root = state_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "journal.sqlite").exists())
