"""The neighbour limit handed back after `down` (lab/host_restore.py): the rows of a
restore whose process died are finished by the next `settle`, gc_thresh3 only once
the table is below it, and nothing is left under the state root. The machine's own
sysctls are not touched here: neigh_limit's reads and writes are given; the
detached process itself runs against the kernel in test_scale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from palmnet.lab import host, host_restore


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    root = tmp_path / "state"
    monkeypatch.setenv("PALMNET_STATE_DIR", str(root))
    state = {"values": {"gc_thresh1": 3000, "gc_thresh2": 12000, "gc_thresh3": 24000}}
    state["entries"] = [5000, 2000, 100]  # read while the kernel frees the lab's
    state["log"] = []

    def entries() -> int:
        return state["entries"].pop(0) if len(state["entries"]) > 1 else state["entries"][0]

    def write(key: str, value: int) -> None:
        state["log"].append((key, value, state["entries"][0]))
        state["values"][key] = value

    n = host_restore.neigh_limit
    monkeypatch.setattr(n, "current_entries", entries)
    monkeypatch.setattr(n, "read", lambda key: state["values"][key])
    monkeypatch.setattr(n, "write", write)
    monkeypatch.setattr(n.time, "sleep", lambda s: None)
    state["root"] = root
    return state


ROWS = {"gc_thresh1": (128, 3000), "gc_thresh2": (512, 12000), "gc_thresh3": (1024, 24000)}


def _orphan(root: Path, rows: dict[str, tuple[int, int]]) -> Path:
    """What `hand_over` writes, as if its restorer was killed before it started."""
    folder = root / ".host-sysctl"
    folder.mkdir(parents=True)
    path = folder / "lab1.1.1.json"
    path.write_text(json.dumps({k: list(v) for k, v in rows.items()}))
    return path


def test_settle_finishes_a_restore_whose_process_died(machine) -> None:  # type: ignore[no-untyped-def]
    path = _orphan(machine["root"], ROWS)
    host.settle()
    assert machine["values"] == {"gc_thresh1": 128, "gc_thresh2": 512, "gc_thresh3": 1024}
    # gc_thresh3 went back only once the table held fewer entries than 1024
    at = {key: entries for key, _, entries in machine["log"]}
    assert at["gc_thresh3"] < 1024
    assert not path.exists()
    assert not machine["root"].exists(), "the state root is left as `down` leaves it"


def test_a_value_changed_since_is_left_alone(machine) -> None:  # type: ignore[no-untyped-def]
    _orphan(machine["root"], ROWS)
    machine["values"]["gc_thresh3"] = 50000  # someone raised it again meanwhile
    host.settle()
    assert machine["values"]["gc_thresh3"] == 50000
    assert machine["values"]["gc_thresh1"] == 128


def test_settle_without_pending_restores_does_nothing(machine) -> None:  # type: ignore[no-untyped-def]
    host.settle()
    assert machine["log"] == [] and not machine["root"].exists()


def test_restore_puts_back_at_once_when_the_table_has_room(machine) -> None:  # type: ignore[no-untyped-def]
    machine["entries"] = [100]

    class Journal:
        def __init__(self) -> None:
            self.rows = [
                type("E", (), {"name": k, "data": {"old": o, "new": n}})()
                for k, (o, n) in ROWS.items()
            ]

        def entries(self, kind: str) -> list:  # type: ignore[type-arg]
            return self.rows if kind == host.KIND else []

        def forget(self, kind: str, name: str) -> None:
            self.rows = [e for e in self.rows if e.name != name]

    j = Journal()
    host.restore(j, "lab1")  # type: ignore[arg-type]
    assert machine["values"]["gc_thresh3"] == 1024 and j.rows == []
    assert not host_restore.pending()
