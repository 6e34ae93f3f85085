"""The import contract (pyproject.toml [tool.importlinter]) holds, and it would catch
an import that goes the wrong way: the check is run on a copy of the package with
one such import added."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed")


def lint(src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=src,
        timeout=120,
    )


def copy_package(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "palmnet", src / "palmnet", ignore=shutil.ignore_patterns("__pycache__")
    )
    return src


def test_the_layers_hold() -> None:
    proc = lint(ROOT / "src")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # the plan (pure) reaching up into the CLI
        ("plan/model.py", "import palmnet.cli.tables", "Data flows one way"),
        # one backend using another
        ("backends/lxd/tags.py", "import palmnet.backends.netns.names", "never import each"),
        # the toolbox going around the Lab API
        ("toolbox/ndp.py", "import palmnet.backends.netns.backend", "only through the Lab API"),
    ],
)
def test_a_wrong_way_import_breaks_the_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    src = copy_package(tmp_path)
    path = src / "palmnet" / module
    path.write_text(path.read_text() + f"\n{line}  # deliberately the wrong way\n")
    proc = lint(src)
    assert proc.returncode != 0, proc.stdout
    broken = [ln for ln in proc.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(contract in ln for ln in broken), proc.stdout
