"""Phase timings of `up`, printed to stderr when PALMNET_TRACE=1 (benchmarks use it)."""

from __future__ import annotations

import os
import sys
import time


class PhaseTimer:
    def __init__(self) -> None:
        self.enabled = os.environ.get("PALMNET_TRACE") == "1"
        self.last = time.monotonic()

    def lap(self, phase: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        print(f"palmnet: phase {phase}: {now - self.last:.3f} s", file=sys.stderr)
        self.last = now
