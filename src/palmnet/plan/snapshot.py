"""A plan as pickle bytes, beside its JSON: the quick way back for every command on a
running lab.

Why: `ls`, `exec`, `down` and the toolbox verbs start from the plan the lab runs.
Decoding its JSON (codec.py) walks the model's type hints for every field and
parses every address again: about 20 ms for a 100-node lab, the largest single
cost of `exec` after the interpreter. Unpickling the same plan takes about 3 ms.

The JSON stays the lab's record (readable, and what a newer palmnet reads); the
pickle is only a cache of it. It is written by the same palmnet that wrote the
JSON, into the lab's own journal, which only the lab's owner can write, and is
used only if the source files of the plan's classes are the ones that pickled it
(their size and modification time, as Python itself checks a .pyc against its
source; a hash would import OpenSSL's, 4 ms): a palmnet upgraded or edited under
a running lab falls back to the JSON. Every class a plan holds comes from
plan/model.py, addressing/portmap.py, ipaddress or builtins
(tests/unit/test_snapshot.py checks that on every example), so those two files
are the whole fingerprint.
"""

from __future__ import annotations

import os
import pickle

from palmnet.addressing import portmap
from palmnet.plan import model
from palmnet.plan.model import Plan

MAGIC = b"palmnet-plan-1\0"


def _stat_mark() -> bytes:
    marks = []
    for module in (model, portmap):
        try:
            st = os.stat(module.__file__ or "")
        except OSError:
            return b""
        marks.append(f"{st.st_size}:{st.st_mtime_ns}")
    return (" ".join(marks) + "\0").encode()


# Taken when the classes are imported, not at first use: a long-running process (the
# web UI) that outlives an upgrade keeps the mark of the classes it holds.
_MARK = _stat_mark()


def fingerprint() -> bytes:
    """The plan's classes' source files as stat saw them at import (b'' when one has
    none, e.g. in a zip)."""
    return _MARK


def dump(plan: Plan) -> bytes | None:
    """The plan's snapshot; None when the model's source cannot be fingerprinted."""
    mark = fingerprint()
    if not mark:
        return None
    return MAGIC + mark + pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL)


def load(blob: bytes) -> Plan | None:
    """The plan a snapshot holds; None when it was written by another model (the
    caller then decodes the JSON)."""
    head = MAGIC + fingerprint()
    if len(head) == len(MAGIC) or not blob.startswith(head):
        return None
    try:
        plan = pickle.loads(blob[len(head) :])
    except (pickle.UnpicklingError, AttributeError, ImportError, EOFError, TypeError):
        return None
    return plan if isinstance(plan, Plan) else None
