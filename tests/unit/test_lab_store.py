"""The Lab API's store: stored plans round-trip, labs are resolved and nodes located
without touching the kernel (a state root of the test's own)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from palmnet.errors import InputError, UnknownNode
from palmnet.lab import store
from palmnet.lab.api import LabAPI, plan_file
from palmnet.plan.codec import plan_from_json, plan_to_json

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ("farm.yaml", "palm.yaml", "cascade.yaml", "ring.yaml")


@pytest.mark.parametrize("example", EXAMPLES)
def test_stored_plan_is_the_plan(example: str) -> None:
    """Every field survives JSON: ipaddress objects, nested plans, tuples, None."""
    plan = plan_file(ROOT / "examples" / example)
    back = plan_from_json(plan_to_json(plan))
    assert back == plan
    assert back.to_json() == plan.to_json()


def _fake_lab(root: Path, name: str, example: str) -> None:
    plan = dataclasses.replace(plan_file(ROOT / "examples" / example), lab=name)
    with store.journal(name) as j:
        j.set_meta("status", "running")
        store.store_plan(j, plan)


@pytest.fixture
def two_labs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PALMNET_STATE_DIR", str(tmp_path))
    _fake_lab(tmp_path, "a", "farm.yaml")  # up, w1..w10, web, alpine
    _fake_lab(tmp_path, "b", "palm.yaml")  # upstream, router, www, w1..w10, laptop
    return tmp_path


def test_locate_finds_the_one_lab_with_the_node(two_labs: Path) -> None:
    api = LabAPI()
    assert api.locate("b", "w1") == "b"
    assert api.locate(None, "alpine") == "a"
    assert api.locate(None, "laptop") == "b"
    with pytest.raises(InputError, match=r"several labs \(a, b\)"):
        api.locate(None, "w1")
    with pytest.raises(InputError, match="no running node named w99"):
        api.locate(None, "w99")
    with pytest.raises(InputError, match="no running lab named 'c'"):
        api.locate("c", "w1")


def test_unknown_node_is_said_once_where_the_lookup_lives(two_labs: Path) -> None:
    plan = store.plan_of("a")
    with pytest.raises(UnknownNode, match=r"no node 'nosuch' in lab a \(nodes: up, "):
        plan.node("nosuch")
    with pytest.raises(KeyError):  # still a lookup error for code that handles absence
        plan.node("nosuch")


def test_several_labs_need_a_name(two_labs: Path) -> None:
    with pytest.raises(InputError, match=r"several labs are running \(a, b\)"):
        store.resolve_lab(None)
