"""`down` removes everything after a crash at any phase of `up`; bad files create nothing."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from palmnet.diagnostics.crash import STEPS
from tests.integration.labs import lab_traces, run, write_lab

pytestmark = pytest.mark.root

SMALL = """\
name: {name}
networks:
  lan: {{}}
nodes:
  r:
    kind: router
    interfaces:
      eth0: {{network: lan, ipv6: [2001:db8:1::1/64], ra: true}}
  h:
    count: 2
    interfaces:
      eth0: {{network: lan}}
"""

GOLDEN_ERRORS = sorted((Path(__file__).parent.parent / "golden" / "errors").glob("*.yaml"))


@pytest.mark.parametrize("step", STEPS)
def test_down_after_sigkill_at_each_step(step: str, tmp_path: Path) -> None:
    name = f"k{STEPS.index(step)}{os.getpid() % 1000}"
    path = write_lab(tmp_path / "lab.yaml", SMALL.format(name=name))
    crashed = run("up", str(path), check=False, env={"PALMNET_CRASH_AT": step})
    assert crashed.returncode == -9, crashed.stderr
    assert lab_traces(name), "the crash left nothing to clean: the step was not reached"
    run("down", name)
    assert lab_traces(name) == []


def test_up_after_a_crash_cleans_first(tmp_path: Path) -> None:
    name = f"kc{os.getpid() % 1000}"
    path = write_lab(tmp_path / "lab.yaml", SMALL.format(name=name))
    crashed = run("up", str(path), check=False, env={"PALMNET_CRASH_AT": "hosts"})
    assert crashed.returncode == -9
    try:
        again = run("up", str(path))
        assert "did not finish" in again.stderr
        assert "RUNNING" in again.stdout
    finally:
        run("down", name, check=False)
    assert lab_traces(name) == []


@pytest.mark.parametrize("bad", GOLDEN_ERRORS, ids=[p.stem for p in GOLDEN_ERRORS])
def test_malformed_file_exit_2_and_creates_nothing(bad: Path) -> None:
    state = Path("/run/palmnet")
    before = set(os.listdir(state)) if state.is_dir() else set()
    proc = run("up", str(bad), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    # the lab file, or a UCI file of its folder, at its line
    assert proc.stderr.startswith("palmnet: ") and f"{bad.parent}/" in proc.stderr
    after = set(os.listdir(state)) if state.is_dir() else set()
    # Other people's labs may come and go meanwhile: anything new is a running lab
    # (it has a journal), not a remnant of this refused `up`.
    new = after - before - {".locks"}
    assert all((state / n / "journal.sqlite").exists() for n in new), new
    named = re.search(r"^name:\s*([\w-]+)", bad.read_text(), re.M)
    if named:
        assert lab_traces(named.group(1)) == []
