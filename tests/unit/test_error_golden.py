"""Golden error messages: tests/golden/errors/NAME.yaml -> NAME.expected.

Each malformed lab file must fail `palmnet plan` (the topology and then the
plan, which sees what only the whole lab shows) with exactly the message in
its .expected file (file, line, key path, text). A changed message is a diff to review:
PALMNET_UPDATE_GOLDEN=1 rewrites the .expected files from the current output.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from palmnet.cli.app import build_app
from palmnet.errors import InputError
from palmnet.lab import plan_file

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "errors"
CASES = sorted(p.stem for p in GOLDEN.glob("*.yaml"))


def test_enough_cases() -> None:
    assert len(CASES) >= 80


@pytest.mark.parametrize("case", CASES)
def test_error_message(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOLDEN)  # messages name the file as given: CASE.yaml
    with pytest.raises(InputError) as info:
        plan_file(f"{case}.yaml")
    got = str(info.value)
    assert info.value.render() == got
    assert "Traceback" not in got
    expected_file = GOLDEN / f"{case}.expected"
    if os.environ.get("PALMNET_UPDATE_GOLDEN") == "1":
        expected_file.write_text(got + "\n", encoding="utf-8")
    assert got == expected_file.read_text(encoding="utf-8").rstrip("\n")


@pytest.mark.parametrize("case", CASES)
def test_plan_exits_2_with_the_message(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`palmnet plan` itself (in-process): exit 2, `palmnet: ` and the golden message."""
    monkeypatch.chdir(GOLDEN)
    result = CliRunner().invoke(build_app(), ["plan", f"{case}.yaml"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    expected = (GOLDEN / f"{case}.expected").read_text(encoding="utf-8").rstrip("\n")
    assert result.stderr == f"palmnet: {expected}\n"
