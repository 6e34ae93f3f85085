"""What runs inside an LXD node imports with the standard library alone.

Nodes run palmnet's hooks and servers (the PD hook under dhcpcd, kea's route
hook, the http service) from a zip of palmnet's own modules, with the image's
python3 and no third-party package: an import of pydantic, ruamel, Typer or
Rich on their path fails in the container (a plan model that imported the
topology model once broke every delegation on LXD). Checked here with those
packages made unimportable.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
INSIDE = [
    "palmnet.pd.hook",
    "palmnet.pd.kea_route",
    "palmnet.httpd",
    "palmnet.plan.model",
    "palmnet.plan.codec",
]
BLOCKED = ["pydantic", "pydantic_core", "ruamel", "typer", "rich", "pyroute2", "pylxd"]


@pytest.mark.parametrize("module", INSIDE)
def test_imports_without_third_party_packages(module: str) -> None:
    code = (
        "import sys\n"
        f"for name in {BLOCKED!r}:\n"
        "    sys.modules[name] = None  # `import name` raises ImportError\n"
        f"import {module}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(SRC)!r})\n{code}"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
