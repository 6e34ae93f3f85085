"""`palmnet lxd init` makes a btrfs pool only where the LXD it talks to can make one."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ruamel.yaml import YAML

from palmnet.backends.lxd import daemon


def _lxd(*drivers: str) -> Any:
    supported = [{"Name": d, "Remote": False, "Version": "1"} for d in drivers]
    return SimpleNamespace(
        client=SimpleNamespace(host_info={"environment": {"storage_supported_drivers": supported}})
    )


@pytest.mark.parametrize(
    ("drivers", "loop", "driver"),
    [
        (("dir", "btrfs"), True, "btrfs"),
        (("dir",), True, "dir"),  # no btrfs-progs where the daemon runs (a nested member)
        (("dir", "btrfs"), False, "dir"),  # no loop device for the pool's file
        ((), True, "dir"),  # an LXD that lists nothing
    ],
)
def test_pool_driver(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    drivers: tuple[str, ...],
    loop: bool,
    driver: str,
) -> None:
    monkeypatch.setattr(daemon, "LOOP_CONTROL", tmp_path if loop else tmp_path / "absent")
    assert daemon.pool_driver(_lxd(*drivers)) == driver


@pytest.mark.parametrize("driver", ["btrfs", "dir"])
def test_the_preseed_is_yaml_with_the_pool_lxd_init_gets(driver: str) -> None:
    """What `lxd init --preseed` reads: the default profile's root disk on that pool."""
    seed = YAML(typ="safe").load(daemon.PRESEED.replace("DRIVER", driver))
    assert seed["storage_pools"] == [{"name": "default", "driver": driver}]
    assert seed["profiles"][0]["devices"]["root"]["pool"] == "default"
