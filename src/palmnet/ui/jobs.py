"""Long actions of the UI (up, down, converge, audit) as jobs in threads.

A browser starts a job and gets its page, which polls it: the job runs in the
server, not in the page, so the page can be left (or closed) and come back,
and a second browser sees the same jobs on the labs page. Each job keeps the
lines its Lab API call reported (`report=`), its outcome and, for converge,
the folder with the timeline picture. Jobs live as long as the server; the
oldest finished ones are forgotten past a limit. A server told to stop waits
for its running jobs: a converge always restores its link, an up finishes.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from palmnet.errors import PalmnetError

KEEP = 50  # finished jobs remembered


@dataclass
class Job:
    id: int
    kind: str  # up, down, converge, audit
    title: str
    lab: str | None
    lines: list[str] = field(default_factory=list)
    state: str = "running"  # running, done, failed
    error: str = ""
    result: Any = None
    folder: Path | None = None  # files the job wrote (converge: timeline.png)
    started: float = field(default_factory=time.time)
    ended: float | None = None
    thread: threading.Thread | None = field(default=None, repr=False)
    steps: dict[str, tuple[int, int]] = field(default_factory=dict)  # phase -> done, total

    def report(self, line: str) -> None:
        self.lines.append(line)

    def step(self, phase: str, done: int, total: int) -> None:
        """How far a bring-up is (diagnostics/progress.py's sink)."""
        self.steps[phase] = (done, total)

    @property
    def seconds(self) -> float:
        return (self.ended or time.time()) - self.started


class Jobs:
    def __init__(self) -> None:
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._root: Path | None = None  # made at the first job: most servers run none

    def start(self, kind: str, title: str, lab: str | None, work: Callable[[Job], Any]) -> Job:
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="palmnet-ui-"))
            job = Job(next(self._ids), kind, title, lab)
            job.folder = self._root / str(job.id)
            self._jobs[job.id] = job
            self._forget_old()
        job.thread = threading.Thread(target=self._run, args=(job, work), daemon=True)
        job.thread.start()
        return job

    @staticmethod
    def _run(job: Job, work: Callable[[Job], Any]) -> None:
        try:
            job.result = work(job)
            job.state = "done"
        except PalmnetError as exc:
            job.error, job.state = str(exc), "failed"
        except Exception as exc:  # shown on the job's page, never a traceback there
            job.error, job.state = f"{type(exc).__name__}: {exc}", "failed"
            traceback.print_exc()
        finally:
            job.ended = time.time()

    def get(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: -j.id)

    def close(self, say: Callable[[str], None] = print) -> None:
        """The server is stopping: let running jobs end (a converge restores its link,
        an up finishes or cleans up), then remove the jobs' files."""
        running = [j for j in self.all() if j.state == "running" and j.thread is not None]
        if running:
            say(f"waiting for {len(running)} running job(s): {', '.join(j.title for j in running)}")
        for job in running:
            assert job.thread is not None
            job.thread.join()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    def _forget_old(self) -> None:
        done = [j for j in self.all() if j.state != "running"]
        for job in done[KEEP:]:
            del self._jobs[job.id]
