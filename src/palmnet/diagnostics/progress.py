"""Progress of a long `up`, for a person watching a terminal.

The backends say how far they are (`step("namespaces", 120, 1000)`); nobody
listens unless a front end installs a sink (the CLI does, on a terminal only:
cli/progress_bar.py). A module-level sink rather than a parameter, like the
crash checkpoints: every backend and phase can report without its interface
changing, and without a sink a step costs one attribute read.
"""

from __future__ import annotations

from collections.abc import Callable

Sink = Callable[[str, int, int], None]

_sink: Sink | None = None


def set_sink(sink: Sink | None) -> None:
    global _sink
    _sink = sink


def step(phase: str, done: int, total: int) -> None:
    """`done` of `total` items of `phase` are made (called from any thread)."""
    if _sink is not None:
        _sink(phase, done, total)
