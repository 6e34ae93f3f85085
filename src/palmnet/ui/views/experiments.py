"""Experiments: fail a link and restore it, run `converge`, watch a node's ND live.

Links fail as `palmnet link` fails them (links/control.py, at the ports of the
lab's switch); converge runs as a job (toolbox/converge.py, the CLI's code) and
its page shows the timeline picture and the table; the NDP view is a stream of
server-sent events fed by `palmnet ndp watch`'s decoder (toolbox/ndp_capture.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from palmnet.errors import InputError, PalmnetError
from palmnet.lab import LabAPI
from palmnet.ui.form import form_of

if TYPE_CHECKING:
    from palmnet.ui.app import Ui
    from palmnet.ui.jobs import Job

# One stream at most this long (the browser's EventSource reconnects after it); a page
# that goes away stops its capture at the next ND frame.
NDP_WATCH_SECONDS = 60.0


def _control(lab: str) -> Any:
    from palmnet.links.control import LinkControl

    with LabAPI().session(lab) as s:
        return LinkControl(s.plan, s.switch())


def experiments(ui: Ui, request: Request) -> Response:
    lab = request.path_params["lab"]
    control = _control(lab)
    from palmnet.links.names import links_of

    links = links_of(control.plan)
    states = {r.link.name: r for r in control.status()}
    return ui.page(
        request,
        "experiments.html",
        lab=lab,
        plan=control.plan,
        links=links,
        states=states,
        jobs=[j for j in ui.jobs.all() if j.kind == "converge" and j.lab == lab],
    )


def _int(form: dict[str, str], key: str, default: int | None = None) -> int | None:
    value = form.get(key, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{value!r} is not a whole number", key=key) from None


def _float(form: dict[str, str], key: str, default: float | None) -> float | None:
    value = form.get(key, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise InputError(f"{value!r} is not a number", key=key) from None


def link_action(ui: Ui, request: Request) -> Response:
    """down (carrier loss), silent (blackhole), loss N %, restore."""
    from palmnet.links.names import resolve_link

    lab = request.path_params["lab"]
    form = form_of(request)
    control = _control(lab)
    link = resolve_link(control.plan, form.get("link", ""))
    how = form.get("how", "")
    if how == "down":
        control.set_carrier(link, False)
        said = f"link {link.describe()} down"
    elif how == "silent":
        control.impair(link, None)
        said = f"link {link.describe()} silently failed (blackhole)"
    elif how == "loss":
        loss = _int(form, "loss")
        if loss is None:
            raise InputError("give the loss in percent (1..100)", key="loss")
        if not 1 <= loss <= 100:
            raise InputError(f"loss must be 1..100 percent, not {loss}", key="loss")
        control.impair(link, loss)
        said = f"link {link.describe()} impaired: loss {loss}% in each direction"
    elif how == "restore":
        control.clear(link)
        said = f"link {link.describe()} whole"
    else:
        raise InputError(f"how must be down, silent, loss or restore, not {how!r}", key="how")
    key = ui.note("ok", said)
    back = form.get("back") or f"/lab/{lab}/experiments"
    if not back.startswith(f"/lab/{lab}"):
        back = f"/lab/{lab}/experiments"
    return RedirectResponse(f"{back}?note={key}", 303)


def converge(ui: Ui, request: Request) -> Response:
    from palmnet.toolbox.converge import ConvergeRequest, check_request

    lab = request.path_params["lab"]
    form = form_of(request)
    mode = form.get("mode", "down")
    req = ConvergeRequest(
        source=form.get("source", ""),
        target=form.get("target", ""),
        fail=form.get("fail", ""),
        mode=mode,
        loss=_int(form, "loss") if mode == "silent" else None,
        interval=_float(form, "interval", 0.05) or 0.05,
        duration=_float(form, "duration", None),
        fail_after=_float(form, "fail_after", 2.0) or 0.0,
        lab=lab,
    )
    check_request(LabAPI().plan_of(lab), req)  # bad input now, not in the job

    def work(job: Job) -> dict[str, Any]:
        from palmnet.toolbox.converge import converge as run
        from palmnet.toolbox.converge import summary, write_outputs

        result = run(req, report=job.report)
        assert job.folder is not None
        write_outputs(result, job.folder, report=job.report)
        job.report(summary(result))
        return result

    title = f"converge {req.source} -> {req.target}, fail {req.fail}"
    job = ui.jobs.start("converge", title, lab, work)
    return RedirectResponse(f"/jobs/{job.id}", 303)


def ndp_page(ui: Ui, request: Request) -> Response:
    lab, node = request.path_params["lab"], request.path_params["node"]
    LabAPI().plan_of(lab).node(node)
    return ui.page(request, "ndp.html", lab=lab, name=node, seconds=NDP_WATCH_SECONDS)


def _open_ndp(lab: str, node: str) -> dict[Any, str]:
    """The capture sockets on the node's interfaces (blocking: run in a thread)."""
    from palmnet.toolbox import ndp_capture

    with LabAPI().session(lab) as s:
        netns = s.running_node(node).netns
    return ndp_capture.open_sockets(netns, None, node=node)


def _ndp_stream(sockets: dict[Any, str]) -> StreamingResponse:
    """RS/RA/NS/NA/Redirect of the node as server-sent events (`data:` a JSON message)."""
    from palmnet.toolbox import ndp_capture
    from palmnet.toolbox.ndp import summary

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def heard(message: Any) -> None:
        data = message.to_json()
        data["summary"] = summary(message)
        data["clock"] = time.strftime("%H:%M:%S", time.localtime(message.time or time.time()))
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, json.dumps(data))

    stop = threading.Event()

    def run() -> None:
        try:
            ndp_capture.watch(sockets, heard, timeout=NDP_WATCH_SECONDS, stop=stop)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closed: server stopping
                loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=run, daemon=True).start()

    async def events() -> Any:
        try:
            yield f"event: hello\ndata: {json.dumps({'watching': sorted(sockets.values())})}\n\n"
            while True:
                item = await queue.get()
                if item is None:
                    yield "event: end\ndata: {}\n\n"
                    return
                yield f"data: {item}\n\n"
        finally:
            stop.set()  # the page went away: the capture ends at its next frame

    return StreamingResponse(events(), media_type="text/event-stream")


def stream_routes(ui: Ui) -> list[Route]:
    async def ndp_events(request: Request) -> Response:
        lab, node = request.path_params["lab"], request.path_params["node"]
        try:
            sockets = await run_in_threadpool(_open_ndp, lab, node)
        except (PalmnetError, OSError) as exc:
            gone = lab not in LabAPI().labs()
            body = f"event: failed\ndata: {json.dumps({'error': str(exc), 'gone': gone})}\n\n"
            return Response(body, media_type="text/event-stream")
        return _ndp_stream(sockets)

    return [Route("/lab/{lab}/node/{node}/ndp/events", ndp_events, methods=["GET"])]


ROUTES = [
    ("/lab/{lab}/experiments", experiments, ["GET"]),
    ("/lab/{lab}/links", link_action, ["POST"]),
    ("/lab/{lab}/converge", converge, ["POST"]),
    ("/lab/{lab}/node/{node}/ndp", ndp_page, ["GET"]),
]
