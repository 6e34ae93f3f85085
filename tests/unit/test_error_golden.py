"""Golden error messages: tests/golden/errors/NAME.yaml -> NAME.expected.

Each malformed lab file must fail with exactly the message in its .expected
file (file, line, key path, text). A changed message is a diff to review:
PALMNET_UPDATE_GOLDEN=1 rewrites the .expected files from the current output.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from palmnet.errors import InputError
from palmnet.topology.loader import load_lab

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "errors"
CASES = sorted(p.stem for p in GOLDEN.glob("*.yaml"))


def test_enough_cases() -> None:
    assert len(CASES) >= 14


@pytest.mark.parametrize("case", CASES)
def test_error_message(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOLDEN)  # messages name the file as given: CASE.yaml
    with pytest.raises(InputError) as info:
        load_lab(f"{case}.yaml")
    got = str(info.value)
    assert info.value.render() == got
    assert "Traceback" not in got
    expected_file = GOLDEN / f"{case}.expected"
    if os.environ.get("PALMNET_UPDATE_GOLDEN") == "1":
        expected_file.write_text(got + "\n", encoding="utf-8")
    assert got == expected_file.read_text(encoding="utf-8").rstrip("\n")
