"""The labs page (every running lab, bring one up, take one down) and job pages."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from palmnet.errors import InputError, PalmnetError
from palmnet.lab import LabAPI, LabSummary
from palmnet.ui.form import form_of

if TYPE_CHECKING:
    from palmnet.ui.app import Ui
    from palmnet.ui.jobs import Job


def summaries() -> list[LabSummary]:
    api = LabAPI()
    out = []
    for name in api.labs():
        with contextlib.suppress(PalmnetError, OSError):  # went down while we looked
            out.append(api.summary(name))
    return out


def index(ui: Ui, request: Request) -> Response:
    labs = summaries()
    ui.seen.update(s.name for s in labs)
    return ui.page(request, "labs.html", labs=labs, jobs=ui.jobs.all())


def api_labs(ui: Ui, request: Request) -> Response:
    return JSONResponse([s.__dict__ for s in summaries()])


def up(ui: Ui, request: Request) -> Response:
    path = form_of(request).get("path", "").strip()
    if not path:
        raise InputError("give the path of a lab file (YAML) on this machine", key="path")
    from palmnet.lab import plan_file

    plan = plan_file(path)  # bad input is said now, before a job starts

    def work(job: Job) -> str:
        from palmnet.diagnostics import progress

        # The backends report their steps to one sink: this job's while it runs.
        progress.set_sink(job.step)
        try:
            result = LabAPI(report=job.report).up(path)
        finally:
            progress.set_sink(None)
        job.lab = result.plan.lab
        return f"lab {result.plan.lab}: {result.action} {result.detail}".strip()

    job = ui.jobs.start("up", f"up {path}", plan.lab, work)
    return RedirectResponse(f"/jobs/{job.id}", 303)


def down(ui: Ui, request: Request) -> Response:
    lab = request.path_params["lab"]
    if form_of(request).get("confirm") != lab:
        return ui.page(request, "confirm_down.html", lab=lab)

    def work(job: Job) -> str:
        return f"lab {LabAPI(report=job.report).down(lab)} removed"

    job = ui.jobs.start("down", f"down {lab}", lab, work)
    return RedirectResponse(f"/jobs/{job.id}", 303)


def _job(ui: Ui, request: Request) -> Job:
    job = ui.jobs.get(int(request.path_params["job"]))
    if job is None:
        raise InputError(f"no job {request.path_params['job']} (jobs are kept while the UI runs)")
    return job


def job_page(ui: Ui, request: Request) -> Response:
    job = _job(ui, request)
    return ui.page(request, "job.html", job=job, lab=job.lab)


def job_fragment(ui: Ui, request: Request) -> Response:
    """The job's state for the page's polling; 286 (htmx: stop polling) once it ended."""
    job = _job(ui, request)
    return ui.page(request, "job_body.html", 200 if job.state == "running" else 286, job=job)


def job_file(ui: Ui, request: Request) -> Response:
    job = _job(ui, request)
    name = request.path_params["file"]
    if name not in ("timeline.png", "result.json") or job.folder is None:
        raise InputError(f"no file {name!r}")
    path = job.folder / name
    if not path.is_file():
        raise InputError(f"job {job.id} wrote no {name}")
    return FileResponse(path)


ROUTES = [
    ("/", index, ["GET"]),
    ("/api/labs", api_labs, ["GET"]),
    ("/labs/up", up, ["POST"]),
    ("/lab/{lab}/down", down, ["POST"]),
    ("/jobs/{job:int}", job_page, ["GET"]),
    ("/jobs/{job:int}/body", job_fragment, ["GET"]),
    ("/jobs/{job:int}/{file}", job_file, ["GET"]),
]
