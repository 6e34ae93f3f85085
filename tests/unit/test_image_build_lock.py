"""Two palmnets that need the same image on a fresh machine build it once: the second
waits for the first's lock, says so, and then finds the image there."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from palmnet.backends.lxd import images


def test_a_second_build_waits_for_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "CACHE", tmp_path)
    said: list[str] = []
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with images.build_lock("router", said.append):
            order.append("first in")
            inside.set()
            assert release.wait(10), "the test never released the first build"
            order.append("first out")

    def second() -> None:
        with images.build_lock("router", said.append):
            order.append("second in")

    a = threading.Thread(target=first)
    a.start()
    assert inside.wait(10), "the first build never took the lock"
    b = threading.Thread(target=second)
    b.start()
    b.join(0.5)  # bounded wait: the second must still be blocked on the lock
    assert b.is_alive(), f"the second build did not wait: {order}"
    assert said == ["waiting for another palmnet that is building the router image"]
    release.set()
    a.join(10)
    b.join(10)
    assert order == ["first in", "first out", "second in"]


def test_other_images_are_built_at_the_same_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "CACHE", tmp_path)
    said: list[str] = []
    with images.build_lock("router", said.append), images.build_lock("docker", said.append):
        pass
    assert said == []
