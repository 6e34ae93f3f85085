"""Labs without root, the parts decided before anything is made: what is refused and
with which words, and which id mapping a user's lab gets (no root, no namespaces)."""

from __future__ import annotations

from pathlib import Path

import pytest

from palmnet.errors import InputError
from palmnet.kernel import userns
from palmnet.lab import plan_file, rootless
from palmnet.topology.loader import load_lab_text

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FARM = """\
name: rlu
backend: lxd
networks:
  lan: {}
nodes:
  h:
    interfaces:
      eth0: {network: lan}
"""


def test_backend_lxd_in_the_file_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(FARM)
    with pytest.raises(InputError) as err:
        plan_file(path, rootless_lab=True)
    assert err.value.line == 2 and err.value.key == "backend"
    assert str(err.value).startswith(f"{path}:2: backend: lxd cannot run a rootless lab")
    plan_file(path)  # the same file is fine for root


@pytest.mark.parametrize(
    ("backend", "raise_limit", "words"),
    [("lxd", False, "--backend lxd"), (None, True, "--raise-neigh-limit")],
)
def test_options_needing_root_are_refused(backend, raise_limit, words) -> None:  # type: ignore[no-untyped-def]
    model = load_lab_text(FARM.replace("backend: lxd\n", ""), "lab.yaml")
    with pytest.raises(InputError) as err:
        rootless.refuse(model, backend, raise_limit)
    assert str(err.value).startswith(words)


def test_rdnssd_needs_subordinate_ids() -> None:
    plan = plan_file(EXAMPLES / "cascade.yaml")
    single = userns.IdMap(1000, 1000)
    with pytest.raises(InputError) as err:
        rootless.refuse_daemons(plan, single)
    assert err.value.key == "nodes.web"
    assert "rdnssd cannot run" in str(err.value) and "uidmap" in str(err.value)
    ranged = userns.IdMap(1000, 1000, (100000, 65536), (100000, 65536))
    rootless.refuse_daemons(plan, ranged)  # every daemon can run
    rootless.refuse_daemons(plan_file(EXAMPLES / "farm.yaml"), single)  # radvd alone: fine


def test_subordinate_ranges_are_read_by_name_or_uid(tmp_path: Path) -> None:
    table = tmp_path / "subuid"
    table.write_text("root:100000:65536\nalice:165536:65536\n1001:231072:1000\n")
    assert userns._sub_range(str(table), "alice", 1000) == (165536, 65536)
    assert userns._sub_range(str(table), "bob", 1001) == (231072, 1000)
    assert userns._sub_range(str(table), "carol", 1002) is None
    assert userns._sub_range(str(tmp_path / "none"), "alice", 1000) is None


def test_id_maps_say_what_they_map() -> None:
    assert userns.IdMap(1000, 1000).describe() == "0 -> 1000 only (single mapping)"
    ranged = userns.IdMap(1000, 1000, (100000, 65536), (100000, 65536))
    assert ranged.describe() == "0 -> 1000, 1..65536 -> 100000.. (newuidmap)"
