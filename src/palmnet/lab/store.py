"""Running labs as the Lab API keeps them: which labs run, one lock per lab, the
journal (opened and closed by whoever needs it, as a context manager), and the
plan each lab was built from.

`up` plans the lab file once and stores the plan (JSON) in the journal with the
file's text and absolute path; every later verb reads that plan back instead of
re-reading and re-planning the file, and works from any directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from palmnet.errors import InputError, LabError
from palmnet.lab import rootless
from palmnet.state.journal import Journal
from palmnet.state.paths import lab_dir, running_labs, state_root

if TYPE_CHECKING:
    from palmnet.plan.model import Plan

# The plan's modules are imported where a plan is read or written: `exec` finds
# its node by name (node_names) and never builds the plan's classes.


def resolve_lab(name: str | None) -> str:
    """The lab a verb acts on: the one named, or the only running one. A rootless lab
    is entered on the way (lab/rootless.py): from here on this process sees it, its
    journal and its namespaces as root sees a lab of its own."""
    found = lab_name(name)
    rootless.enter_if_rootless(found)
    return found


def lab_name(name: str | None) -> str:
    """The lab named (if it runs), or the only running one, without entering it."""
    labs = running_labs()
    if name is not None:
        if name not in labs:
            known = ", ".join(labs) or "none"
            raise InputError(f"no running lab named '{name}' (running: {known})")
        return name
    if not labs:
        raise InputError("no lab is running (start one with `palmnet up LAB.yaml`)")
    if len(labs) > 1:
        raise InputError(f"several labs are running ({', '.join(labs)}): say which with --lab")
    return labs[0]


def journal_path(lab: str) -> Path:
    return lab_dir(lab) / "journal.sqlite"


def has_journal(lab: str) -> bool:
    return journal_path(lab).exists()


@contextlib.contextmanager
def journal(lab: str) -> Iterator[Journal]:
    """The lab's journal, closed when the block ends (even on an error)."""
    with Journal.open(journal_path(lab)) as j:
        yield j


def _lock_path(lab: str) -> Path:
    return state_root() / ".locks" / lab


@contextlib.contextmanager
def locked(lab: str) -> Iterator[None]:
    """One verb at a time changes a lab; other labs go on. A lock file per lab under
    the state root (not in the lab's dir, which `down` removes while it holds it).
    `down` removes the file too (forget_lock): a verb that waited on the removed
    file locks the new one instead, so two verbs never both hold the lab."""
    path = _lock_path(lab)
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)


def forget_lock(lab: str) -> None:
    """After `down`, under the lab's lock: nothing of the lab stays in the state root
    (the lock file, and the root itself once no lab is left)."""
    _lock_path(lab).unlink(missing_ok=True)
    for directory in (_lock_path(lab).parent, state_root()):
        with contextlib.suppress(OSError):  # not empty: another lab's
            directory.rmdir()


NODE_NAMES = "node_names"
NODE_SERVICES = "node_services"


def stored_plan(j: Journal) -> Plan:
    """The plan the lab runs (what `up`, `launch` or a renumbering last stored): its
    snapshot when this palmnet wrote it (plan/snapshot.py), else its JSON."""
    from palmnet.plan import snapshot
    from palmnet.plan.codec import plan_from_json

    blob = j.blob("plan")
    plan = snapshot.load(blob) if blob is not None else None
    if plan is not None:
        return plan
    text = j.meta("plan")
    if text is None:
        raise LabError("the lab's journal holds no plan (a crashed `up`?): run `palmnet down`")
    return plan_from_json(text)


def store_plan(j: Journal, plan: Plan) -> None:
    from palmnet.plan import snapshot
    from palmnet.plan.codec import plan_to_json
    from palmnet.services.registry import services_for

    # The snapshot, the names and the daemons go first and come back last, so that a
    # crash between the writes never leaves one that is not the JSON's.
    j.set_blob("plan", None)
    j.set_meta(NODE_NAMES, None)
    j.set_meta(NODE_SERVICES, None)
    j.set_meta("plan", plan_to_json(plan))
    j.set_meta(NODE_NAMES, [n.name for n in plan.nodes])
    j.set_meta(NODE_SERVICES, {n.name: [c.name for c in services_for(n)] for n in plan.nodes})
    j.set_blob("plan", snapshot.dump(plan))


def node_names(j: Journal) -> list[str] | None:
    """The names of the lab's nodes, as its stored plan has them, without the plan;
    None for a lab stored by a palmnet that did not keep them."""
    names = j.meta(NODE_NAMES)
    return None if names is None else list(names)


def node_services(j: Journal) -> dict[str, list[str]] | None:
    """The daemons each node of the stored plan runs, by name, without importing every
    daemon's adapter to ask it (15 ms of `ls`); None for a lab stored without them."""
    wanted = j.meta(NODE_SERVICES)
    return None if wanted is None else {k: list(v) for k, v in wanted.items()}


def plan_of(lab: str | None) -> Plan:
    with journal(resolve_lab(lab)) as j:
        return stored_plan(j)
