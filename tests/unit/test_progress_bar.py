"""The progress display of `up`: silent off a terminal and for a quick lab, drawn
once a lab has taken a second (the steps come from the backends)."""

from __future__ import annotations

import io
import sys

import pytest

from palmnet.cli import progress_bar
from palmnet.diagnostics import progress


def test_no_sink_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    with progress_bar.shown_on_terminal():
        assert progress._sink is None
        progress.step("namespaces", 1, 10)  # nobody listens: nothing happens


def test_bar_waits_a_second_then_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    bar = progress_bar.ProgressBar()
    bar("namespaces", 5, 1000)
    assert bar.bar is None, "a lab up within a second shows no bar"
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    bar.start -= progress_bar.SHOW_AFTER_S
    bar("namespaces", 500, 1000)
    bar("links", 1000, 1000)
    assert bar.bar is not None
    tasks = {t.description: (t.completed, t.total) for t in bar.bar.tasks}
    assert tasks == {"namespaces": (500, 1000), "links": (1000, 1000)}
    bar.close()
