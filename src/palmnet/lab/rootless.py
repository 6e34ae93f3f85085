"""Labs without root: the netns backend inside a user namespace the lab owns.

`palmnet up` by a user who is not root (or with `--rootless`) gives the lab a
holder process (kernel/userns.py): a user + mount + network namespace with its
own /run and its own state root. The verbs enter it first, and from there the
Lab API and the netns backend run unchanged, as uid 0 of that user namespace.

Two records, two places:
- outside, the lab's *outer* journal in the user's state root
  ($XDG_RUNTIME_DIR/palmnet/LAB/journal.sqlite, state/paths.py): the meta
  `rootless` and the holder (pid, kernel start time, user namespace inode),
  recorded before anything is made inside it. This is what `ls`, `exec` and
  `down` find from the user's shell, and what lists the user's labs.
- inside, the ordinary journal of the lab, in `LAB/inner`: a tmpfs only the
  lab's mount namespace sees (PALMNET_STATE_DIR points there once inside).

`down` empties the user namespace (SIGKILL to every process in it: the holder,
the supervisor, the daemons); the kernel then frees every namespace, mount and
tmpfs of the lab, since nothing outside holds one. That also works after a
kill -9 of `up` at any point: a holder not yet in the journal is found by its
title, which names the lab's outer directory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from palmnet.errors import InputError, LabError
from palmnet.kernel import nsfs, processes, userns
from palmnet.state.journal import Journal
from palmnet.state.paths import lab_dir

if TYPE_CHECKING:
    from palmnet.plan.model import Plan
    from palmnet.topology.model import Lab

KIND = "holder"
INSIDE_ENV = "PALMNET_ROOTLESS_LAB"  # set once this process is inside a rootless lab
STATE_ENV = "PALMNET_STATE_DIR"
TITLE = "palmnet-holder"

Report = Callable[[str], None]


@dataclass(frozen=True)
class Holder:
    pid: int
    start: int | None
    userns: int | None

    def alive(self) -> bool:
        return (
            processes.alive(self.pid)
            and processes.start_time(self.pid) == self.start
            and userns.userns_inode(self.pid) == self.userns
        )


# -- choosing --------------------------------------------------------------------------
def inside() -> bool:
    """This process is in a rootless lab's namespaces already."""
    return os.environ.get(INSIDE_ENV) is not None


def require_root(verb: str) -> None:
    """Root of the machine, or of a rootless lab's user namespace once entered."""
    if os.geteuid() != 0:
        raise LabError(
            f"palmnet {verb} needs root (network namespaces), or a rootless lab: "
            "`palmnet up LAB.yaml` as a plain user builds one"
        )


def wanted(flag: bool, lab: str) -> bool:
    """`up` builds a rootless lab: asked for, run by a user who is not root, or the
    lab runs rootless already (root's `up` of a lab it started with --rootless)."""
    return not inside() and (flag or os.geteuid() != 0 or is_rootless(lab))


def refuse(model: Lab, backend_name: str | None, raise_limit: bool) -> None:
    """What needs the machine's root, refused before anything is made (exit 2)."""
    file = str(model.source)
    if backend_name == "lxd":
        raise InputError(
            "--backend lxd: a rootless lab runs on the netns backend (LXD needs the lxd "
            "group, root in all but name); run it as root, or leave --backend out"
        )
    if model.backend == "lxd":
        line = model.lines.line(("backend",)) if model.lines is not None else None
        raise InputError(
            "lxd cannot run a rootless lab (LXD needs the lxd group, root in all but name): "
            "use `backend: netns` or run `palmnet up` as root",
            file=file,
            line=line,
            key="backend",
        )
    for name, net in model.networks.items():
        # `external:` (issue 16) bridges a lab network to the machine's own LAN.
        if getattr(net, "external", None) is not None:
            path = ("networks", name, "external")
            line = model.lines.line(path) if model.lines is not None else None
            raise InputError(
                "an external network joins the machine's own interfaces, which a user "
                "namespace cannot reach: run `palmnet up` as root for this lab",
                file=file,
                line=line,
                key=".".join(path),
            )
    if raise_limit:
        raise InputError(
            "--raise-neigh-limit: the IPv6 neighbour table limit (gc_thresh1/2/3) is the "
            "machine's, shared by every namespace and writable only by root; a user "
            "namespace's network namespaces have no copy of it to raise"
        )


def refuse_daemons(plan: Plan, ids: userns.IdMap) -> None:
    """A daemon that cannot run in this user's lab, refused up front: one that opens a
    device the user may not open (the lab's root is the user to the device's owner:
    /dev/net/tun is 0600 on some machines, 0666 on Debian), or one that cannot run in a
    user namespace mapping one id."""
    from palmnet.services.registry import services_for

    for node in plan.nodes:
        for cls in services_for(node):
            for device in cls.devices:
                if not os.access(device, os.R_OK | os.W_OK):
                    raise InputError(
                        f"{cls.name} opens {device}, which your user may not open (a "
                        "rootless lab's daemons are you to the machine): run this lab as "
                        f"root, or let users open it (`chmod 0666 {device}`, Debian's "
                        "default)",
                        file=plan.source,
                        key=f"nodes.{node.name}",
                    )
            if ids.sub_uid and ids.sub_gid:
                continue
            if cls.single_id_problem is not None:
                raise InputError(
                    f"{cls.name} cannot run in a rootless lab whose user namespace maps only "
                    f"your own id: {cls.single_id_problem}. Give your user subordinate ids "
                    "(`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 "
                    "USER` as root) and install newuidmap/newgidmap (Debian: uidmap)",
                    file=plan.source,
                    key=f"nodes.{node.name}",
                )


# -- the outer record --------------------------------------------------------------------
def _remove_tree(path: Path) -> None:
    import shutil  # here: every command imports this module, few remove a rootless lab

    shutil.rmtree(path, ignore_errors=True)


def _journal_path(lab: str) -> Path:
    return lab_dir(lab) / "journal.sqlite"


def inner_root(lab: str) -> Path:
    """The state root the lab's own code uses (a tmpfs only its mount namespace sees)."""
    return lab_dir(lab) / "inner"


def _title(lab: str) -> str:
    return f"{TITLE} {lab_dir(lab)}"


def is_rootless(lab: str) -> bool:
    if inside() or not _journal_path(lab).exists():
        return False
    with Journal.open(_journal_path(lab)) as j:
        return bool(j.meta("rootless", False))


def _holder(j: Journal) -> Holder | None:
    for e in j.entries(KIND):
        if e.data.get("pid"):
            return Holder(int(e.data["pid"]), e.data.get("start"), e.data.get("userns"))
    return None


def node_names(lab: str) -> list[str]:
    """The nodes the lab had when `up` made it (to find a node's lab without entering)."""
    with Journal.open(_journal_path(lab)) as j:
        return list(j.meta("nodes", []))


# -- entering ----------------------------------------------------------------------------
@dataclass
class _Entered:
    lab: str
    outer: Path  # the lab's outer directory (bound back inside the holder)
    userns: int


_entered: _Entered | None = None


def _enter(lab: str, holder: Holder) -> None:
    global _entered
    outer = lab_dir(lab)
    inner = inner_root(lab)
    userns.enter(holder.pid)
    os.environ[STATE_ENV] = str(inner)
    os.environ[INSIDE_ENV] = lab
    _entered = _Entered(lab, outer, userns.own_userns_inode())


def enter_if_rootless(lab: str) -> None:
    """Enter the lab's namespaces if it is a rootless lab (and this process is not
    inside one already): from here on the process sees the lab as root does."""
    if not is_rootless(lab):
        return
    with Journal.open(_journal_path(lab)) as j:
        holder = _holder(j)
    if holder is None or not holder.alive():
        raise LabError(
            f"lab {lab}: its holder process is gone (killed?): "
            f"`palmnet down {lab}` removes what is left"
        )
    _enter(lab, holder)


def open_lab(lab: str, nodes: list[str], report: Report) -> bool:
    """`up` of a rootless lab: enter its holder, made first if the lab has none (True)."""
    from palmnet.lab import store

    with store.locked(lab):
        if _journal_path(lab).exists():
            with Journal.open(_journal_path(lab)) as j:
                if not j.meta("rootless", False):
                    raise InputError(
                        f"lab {lab} runs with root, not rootless: run `palmnet down {lab}` first"
                    )
                holder = _holder(j)
            if holder is not None and holder.alive():
                _enter(lab, holder)
                return False
            report(f"lab {lab}: removing leftovers of a lost lab first")
            _destroy(lab)
        elif _stray_holders(lab):
            report(f"lab {lab}: removing leftovers of a lost lab first")
            _destroy(lab)
        holder = _make_holder(lab, nodes)
        _enter(lab, holder)
        return True


def _make_holder(lab: str, nodes: list[str]) -> Holder:
    ids = userns.id_map_for_me()
    outer = lab_dir(lab)
    outer.mkdir(parents=True, exist_ok=True)
    # The state root, bound back inside the holder when its /run hides it (a runtime
    # directory under /run/user; root's --rootless labs under /run/palmnet): only that
    # directory, never /run itself, whose /run/netns must stay the lab's own.
    root = outer.parent
    keep = root if root.is_relative_to("/run") and root != Path("/run") else None
    with Journal.open(_journal_path(lab)) as j:
        j.set_meta("rootless", True)
        j.set_meta("status", "building")
        j.set_meta("ids", ids.describe())
        j.set_meta("nodes", nodes)
        j.record(KIND, KIND, None, pid=None)  # a crash from here on: found by its title
        try:
            pid = userns.start_holder(_title(lab), ids, keep, inner_root(lab))
        except OSError as exc:
            _remove_tree(outer)
            raise LabError(str(exc)) from None
        holder = Holder(pid, processes.start_time(pid), userns.userns_inode(pid))
        j.record(KIND, KIND, None, pid=pid, start=holder.start, userns=holder.userns)
        j.set_meta("status", "running")
    return holder


def abandon() -> None:
    """From inside, after a failed `up` that made the holder: remove the lab entirely."""
    if _entered is None:
        return
    userns.empty(_entered.userns)
    # This process still holds the holder's mount namespace: the inner root is a mount
    # point here until it exits, and a mount point cannot be removed.
    with contextlib.suppress(OSError):
        nsfs.umount(str(_entered.outer / "inner"))
    _remove_tree(_entered.outer)


# -- down ------------------------------------------------------------------------------
def destroy(lab: str) -> bool:
    """`down` of a rootless lab (or of what a killed `up` left): empty its user
    namespace, remove its record. False if there was nothing of it."""
    from palmnet.lab import store

    if inside():
        return False
    with store.locked(lab):
        if not is_rootless(lab) and not _stray_holders(lab):
            return False
        _destroy(lab)
        store.forget_lock(lab)
        return True


def _stray_holders(lab: str) -> list[int]:
    """Holders of this lab's outer directory that are this user's (by title)."""
    title = _title(lab).encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.stat(entry.path).st_uid != os.geteuid():
                continue
            if Path(entry.path, "cmdline").read_bytes().split(b"\0", 1)[0] == title:
                found.append(int(entry.name))
    return found


def _destroy(lab: str) -> None:
    # user namespace inode -> the mount that proves a process is the lab's (None: a
    # live holder vouches for the namespace)
    spaces: dict[int, str | None] = {}
    if _journal_path(lab).exists():
        with Journal.open(_journal_path(lab)) as j:
            holder = _holder(j)
        if holder is not None and holder.userns is not None:
            spaces[holder.userns] = None if holder.alive() else str(inner_root(lab))
    for pid in _stray_holders(lab):
        inode = userns.userns_inode(pid)
        if inode is not None:
            spaces[inode] = None
    for inode, proof in spaces.items():
        left = userns.empty(inode, proof)
        if left:
            raise LabError(f"lab {lab}: processes {left} of its user namespace would not die")
    _remove_tree(lab_dir(lab))
