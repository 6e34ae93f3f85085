"""`palmnet lxd init` makes a btrfs pool only where the LXD it talks to can make one."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

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
    monkeypatch: pytest.MonkeyPatch, drivers: tuple[str, ...], loop: bool, driver: str
) -> None:
    monkeypatch.setattr(daemon.os.path, "exists", lambda p: loop and p == "/dev/loop-control")
    assert daemon.pool_driver(_lxd(*drivers)) == driver


def test_the_preseed_names_the_driver() -> None:
    assert "driver: btrfs" in daemon.PRESEED.replace("DRIVER", "btrfs")
    assert daemon.PRESEED.count("DRIVER") == 1
