"""A POSTed form, read in a sync endpoint (Starlette parses forms asynchronously)."""

from __future__ import annotations

from urllib.parse import parse_qs

import anyio.from_thread
from starlette.requests import Request


async def _multipart(request: Request) -> dict[str, str]:
    data = await request.form()
    return {k: v for k, v in data.items() if isinstance(v, str)}


def form_of(request: Request) -> dict[str, str]:
    """The last value of each field of a urlencoded or multipart form ({} for a GET)."""
    if request.method in ("GET", "HEAD"):
        return {}
    cached = getattr(request.state, "form", None)
    if cached is not None:
        return cached
    kind = request.headers.get("content-type", "")
    if kind.startswith("application/x-www-form-urlencoded"):
        body = anyio.from_thread.run(request.body)
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        form = {k: v[-1] for k, v in parsed.items()}
    else:
        form = anyio.from_thread.run(_multipart, request)
    request.state.form = form
    return form
