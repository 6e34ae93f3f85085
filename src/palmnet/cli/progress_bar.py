"""A Rich progress display for `up`, on a terminal only, once it has taken a second.

Silent unless both stdout and stderr are a terminal (scripts, CI, `--format
json | jq`, a log file), and for
labs that are up within a second: a bar that flashes is noise. It refreshes from
the steps themselves, at most ten times a second, never from a thread of its
own (a refresh thread would compete for the interpreter with the bring-up it
shows).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from palmnet.diagnostics import progress

SHOW_AFTER_S = 1.0
REFRESH_S = 0.1


class ProgressBar:
    def __init__(self) -> None:
        self.start = time.monotonic()
        self.lock = threading.Lock()
        self.bar: Any = None  # rich.progress.Progress, made once it is worth showing
        self.tasks: dict[str, Any] = {}
        self.last_refresh = 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        with self.lock:
            if self.bar is None:
                if now - self.start < SHOW_AFTER_S:
                    return
                self._open()
            if phase not in self.tasks:
                self.tasks[phase] = self.bar.add_task(phase, total=total)
            self.bar.update(self.tasks[phase], completed=done, total=total)
            if now - self.last_refresh >= REFRESH_S or done >= total:
                self.bar.refresh()
                self.last_refresh = now

    def _open(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            auto_refresh=False,
            transient=True,
        )
        self.bar.start()

    def close(self) -> None:
        with self.lock:
            if self.bar is not None:
                self.bar.stop()


@contextmanager
def shown_on_terminal() -> Iterator[None]:
    """Show the progress of what runs in the block, on a terminal."""
    if not (sys.stdout.isatty() and sys.stderr.isatty()):
        yield
        return
    bar = ProgressBar()
    progress.set_sink(bar)
    try:
        yield
    finally:
        progress.set_sink(None)
        bar.close()
