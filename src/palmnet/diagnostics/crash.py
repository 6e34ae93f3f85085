"""Deterministic crash points for the cleanup tests.

`PALMNET_CRASH_AT=<step>` makes `up` kill itself with SIGKILL right after
that step, so a test can prove `down` cleans up after a crash in every phase
without racing a timer.
"""

from __future__ import annotations

import os
import signal

STEPS = ("journal", "switch", "netns", "links", "mounts", "routers", "services", "hosts", "ready")


def checkpoint(step: str) -> None:
    if os.environ.get("PALMNET_CRASH_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)
