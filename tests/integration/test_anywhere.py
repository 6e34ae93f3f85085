"""Later verbs do not depend on the directory `up` ran from (issue 11, item 2).

`up labs.yaml` is given a path relative to its own directory, and the lab's
router reads its UCI files from a folder beside the file (`uci: palm-router`).
Then, from another directory (/), the verbs that re-read or re-plan the lab
work: stop, start and restart the router (its /etc/config comes from the
stored plan), launch a copy (a new plan from the stored file text and its
absolute path), ls and exec.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.integration.labs import run

pytestmark = pytest.mark.root

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_verbs_work_from_another_directory(tmp_path: Path) -> None:
    labs = tmp_path / "labs"
    labs.mkdir()
    shutil.copytree(EXAMPLES / "palm-router", labs / "palm-router")
    name = f"anyw{os.getpid() % 10000}"
    text = (EXAMPLES / "palm.yaml").read_text().replace("name: palm\n", f"name: {name}\n", 1)
    (labs / "palm.yaml").write_text(text)
    try:
        run("up", "palm.yaml", cwd=labs, timeout=180)
        for verb in ("stop", "start", "restart"):
            run(verb, "--lab", name, "router", cwd="/")
        launched = json.loads(
            run("launch", "--lab", name, "w", "w11", "--format", "json", cwd="/").stdout
        )
        w11 = next(n for n in launched if n["name"] == "w11")
        assert any(
            a.startswith("2001:db8:ebbd:2084:") for i in w11["interfaces"] for a in i["ipv6"]
        )
        nodes = json.loads(run("ls", name, "--format", "json", cwd="/").stdout)
        assert {n["state"] for n in nodes} == {"RUNNING"}
        config = run("exec", "--lab", name, "router", "--", "cat", "/etc/config/network", cwd="/")
        assert "2001:db8:ebbd:2084::1/64" in config.stdout
    finally:
        run("down", name, check=False, cwd="/")
