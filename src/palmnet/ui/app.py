"""The Starlette app of `palmnet ui`: routes, templates, and errors as pages.

Endpoints are plain functions (Starlette runs them in its thread pool): the
Lab API they call is blocking (netlink, subprocesses, SQLite). Every error a
verb can raise becomes a page or a JSON body with its message: a lab this
server showed that is no longer running is "gone" (410; one it never showed is
404), bad input 400, anything else 500 with a message; never a traceback in a
page.
"""

from __future__ import annotations

import secrets
import sqlite3
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from palmnet import __version__
from palmnet.errors import InputError, PalmnetError
from palmnet.lab import LabAPI
from palmnet.ui.auth import CSRF_FIELD, TokenAuth, csrf_of
from palmnet.ui.jobs import Jobs

HERE = Path(__file__).parent


class Gone(Exception):
    """The lab a page shows is not running any more."""

    def __init__(self, lab: str) -> None:
        super().__init__(f"lab {lab} is gone (taken down)")
        self.lab = lab


@dataclass
class Ui:
    """What the server keeps: its token, its jobs, one-shot notes for the next page."""

    token: str
    jobs: Jobs = field(default_factory=Jobs)
    templates: Jinja2Templates = field(
        default_factory=lambda: Jinja2Templates(directory=str(HERE / "templates"))
    )
    notes: dict[str, tuple[str, str]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)  # labs a page showed: gone, not unknown

    @property
    def csrf(self) -> str:
        return csrf_of(self.token)

    def page(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        context.update(request=request, csrf=self.csrf, csrf_field=CSRF_FIELD, version=__version__)
        note = self.notes.pop(request.query_params.get("note", ""), None)
        if note is not None and "note" not in context:
            context["note"] = note
        return self.templates.TemplateResponse(request, template, context, status_code=status)

    def note(self, kind: str, text: str) -> str:
        """Keep a message for the page a redirect leads to; its key for `?note=`."""
        if len(self.notes) > 200:  # notes nobody came back for
            self.notes.clear()
        key = secrets.token_hex(6)
        self.notes[key] = (kind, text)
        return key


def gone_or(lab: str | None, exc: BaseException) -> BaseException:
    """A failure while reading a lab: Gone if the lab is not running any more."""
    if lab is not None and lab not in LabAPI().labs():
        return Gone(lab)
    return exc


def guard(ui: Ui, fn: Callable[..., Response]) -> Callable[[Request], Response]:
    """Run a page; turn what it raises into a page (or JSON for the API routes)."""

    def endpoint(request: Request) -> Response:
        lab = request.path_params.get("lab")
        wants_json = request.url.path.endswith(".json") or request.url.path.startswith("/api/")
        try:
            try:
                response = fn(ui, request)
            except (PalmnetError, OSError, sqlite3.Error) as exc:
                raise gone_or(lab, exc) from exc
            if lab is not None and response.status_code < 300:
                ui.seen.add(lab)
            return response
        except Gone as exc:
            if exc.lab not in ui.seen:  # never shown here: unknown, not gone
                running = ", ".join(LabAPI().labs()) or "none"
                return _error(
                    ui,
                    request,
                    wants_json,
                    404,
                    f"no running lab named {exc.lab} (running: {running})",
                )
            if wants_json:
                return JSONResponse({"gone": True, "lab": exc.lab, "error": str(exc)}, 410)
            return ui.page(request, "gone.html", 410, lab=exc.lab)
        except InputError as exc:
            return _error(ui, request, wants_json, 400, str(exc))
        except (PalmnetError, OSError, sqlite3.Error) as exc:
            return _error(ui, request, wants_json, 500, str(exc))
        except Exception as exc:
            traceback.print_exc()
            return _error(ui, request, wants_json, 500, f"{type(exc).__name__}: {exc}")

    return endpoint


def _error(ui: Ui, request: Request, wants_json: bool, status: int, message: str) -> Response:
    if wants_json:
        return JSONResponse({"error": message}, status)
    return ui.page(request, "error.html", status, message=message)


def create_app(token: str) -> Starlette:
    """The app; every route behind the token (auth.py)."""
    from palmnet.ui.views import experiments, firewall, labs, node, topology

    ui = Ui(token)
    pages: list[tuple[str, Callable[..., Response], list[str]]] = [
        *labs.ROUTES,
        *topology.ROUTES,
        *node.ROUTES,
        *firewall.ROUTES,
        *experiments.ROUTES,
    ]
    routes: list[Any] = [Route(path, guard(ui, fn), methods=methods) for path, fn, methods in pages]
    routes += [r for r in experiments.stream_routes(ui)]
    routes.append(Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"))
    app = Starlette(routes=routes, middleware=[Middleware(TokenAuth, token=token)])
    app.state.ui = ui
    return app
