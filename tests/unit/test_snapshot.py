"""A stored plan's snapshot (plan/snapshot.py): the same plan as its JSON, only
classes of the plan model inside, and never used once the model has changed."""

from __future__ import annotations

import dataclasses
import io
import pickle
from pathlib import Path

import pytest

from palmnet.lab import store
from palmnet.lab.api import plan_file
from palmnet.plan import codec, snapshot
from palmnet.plan.build import plan_lab
from palmnet.state.journal import Journal
from palmnet.topology.loader import load_lab

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.yaml"))
ALLOWED = {"palmnet.plan.model", "palmnet.addressing.portmap", "ipaddress", "builtins", "copyreg"}


def _globals(blob: bytes) -> set[tuple[str, str]]:
    """(module, name) of every class or function a pickle names, as unpickling asks."""
    seen: set[tuple[str, str]] = set()

    class Recording(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> object:
            seen.add((module, name))
            return super().find_class(module, name)

    Recording(io.BytesIO(blob)).load()
    return seen


@pytest.mark.parametrize("example", EXAMPLES)
def test_snapshot_is_the_plan_and_holds_only_model_classes(example: str) -> None:
    # the plan alone: plan_file would also ask for docker.yaml's image, which only a
    # machine that ran test_docker has built
    plan = plan_lab(load_lab(ROOT / "examples" / example))
    blob = snapshot.dump(plan)
    assert blob is not None
    assert snapshot.load(blob) == plan
    body = blob[len(snapshot.MAGIC + snapshot.fingerprint()) :]
    modules = {module for module, _ in _globals(body)}
    assert modules <= ALLOWED, f"snapshot.fingerprint does not cover {modules - ALLOWED}"


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal.open(tmp_path / "journal.sqlite")


def test_stored_plan_comes_from_the_snapshot(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = plan_file(ROOT / "examples" / "palm.yaml")
    store.store_plan(journal, plan)

    def no_json(_text: str) -> None:
        raise AssertionError("decoded the JSON although the snapshot was there")

    monkeypatch.setattr(codec, "plan_from_json", no_json)
    assert store.stored_plan(journal) == plan


def test_a_snapshot_of_another_model_falls_back_to_the_json(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A palmnet upgraded (or edited) under a running lab reads the lab's JSON."""
    plan = plan_file(ROOT / "examples" / "farm.yaml")
    store.store_plan(journal, plan)
    monkeypatch.setattr(snapshot, "fingerprint", lambda: b"1:2\0")
    assert snapshot.load(journal.blob("plan") or b"") is None
    assert store.stored_plan(journal) == plan


def test_a_broken_snapshot_falls_back_to_the_json(journal: Journal) -> None:
    plan = plan_file(ROOT / "examples" / "ring.yaml")
    store.store_plan(journal, plan)
    blob = journal.blob("plan") or b""
    journal.set_blob("plan", blob[: len(blob) // 2])
    assert store.stored_plan(journal) == plan
    journal.set_blob("plan", None)
    assert journal.blob("plan") is None
    assert store.stored_plan(journal) == plan


def test_a_new_plan_replaces_the_snapshot(journal: Journal) -> None:
    plan = plan_file(ROOT / "examples" / "farm.yaml")
    store.store_plan(journal, plan)
    renamed = dataclasses.replace(plan, lab="other")
    store.store_plan(journal, renamed)
    assert snapshot.load(journal.blob("plan") or b"") == renamed
    assert store.stored_plan(journal) == renamed


def test_the_node_names_follow_the_stored_plan_and_never_outlive_it(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`exec` trusts the names (lab/door.py): a store that dies after the JSON leaves
    none, so exec asks the plan, never an older list of names."""
    farm = plan_file(ROOT / "examples" / "farm.yaml")
    store.store_plan(journal, farm)
    assert store.node_names(journal) == [n.name for n in farm.nodes]
    palm = plan_file(ROOT / "examples" / "palm.yaml")

    write = journal.set_meta

    def crash_at_the_names(key: str, value: object) -> None:
        if key == store.NODE_NAMES and value is not None:
            raise KeyboardInterrupt  # the JSON is written, the names and snapshot not
        write(key, value)

    monkeypatch.setattr(journal, "set_meta", crash_at_the_names)
    with pytest.raises(KeyboardInterrupt):
        store.store_plan(journal, palm)
    assert store.node_names(journal) is None
    assert store.stored_plan(journal) == palm


def test_the_daemons_stored_with_the_plan_are_the_adapters_answer(journal: Journal) -> None:
    """`ls` reads each node's daemons from the journal instead of importing every
    adapter: what store_plan writes is what the adapters want, node by node, and a
    lab stored without the list (an older palmnet) is asked of the adapters."""
    from palmnet.lab.health import wanted_services
    from palmnet.services.registry import services_for

    palm = plan_file(ROOT / "examples" / "palm.yaml")
    asked = {n.name: [c.name for c in services_for(n)] for n in palm.nodes}
    assert any(asked.values()), "palm.yaml's router runs daemons"
    store.store_plan(journal, palm)
    assert store.node_services(journal) == asked
    assert wanted_services(palm, journal) == asked
    journal.set_meta(store.NODE_SERVICES, None)
    assert wanted_services(palm, journal) == asked
