"""The backend a module's labs run on: every toolbox test runs on both, netns and
LXD, from this one fixture (LXD tests skip, saying why, only where LXD cannot
start; scripts/lxd-setup.sh starts it, and .ci/run calls that)."""

from __future__ import annotations

import pytest

from tests.integration.labs import BACKENDS, lxd_reason


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "lxd":
        reason = lxd_reason()
        if reason is not None:
            pytest.skip(reason)
    return str(request.param)
