"""Network → Firewall of an openwrt node, as LuCI shows it, with rule edits and apply.

Reads and writes the node's /etc/config/firewall through the node handle and
reloads it the way `palmnet firewall reload` does (toolbox/firewall.py); the
rule form is checked by fw4's own option parsers (ui/fwform.py) before anything
is written, and fw4's warnings of the reload are shown on the page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from palmnet.errors import InputError
from palmnet.toolbox.firewall import openwrt_handle, read_package, run_verb, write_config
from palmnet.ui import fwform
from palmnet.ui.form import form_of

if TYPE_CHECKING:
    from palmnet.ui.app import Ui


def _state(lab: str, node: str) -> dict[str, Any]:
    handle = openwrt_handle(lab, node)
    text, firewall = read_package(handle, "firewall")
    _, network = read_package(handle, "network")
    return {
        "handle": handle,
        "text": text,
        "firewall": firewall,
        "network": network,
        "view": fwform.view(firewall),
        "digest": fwform.digest(text),
    }


def _page(
    ui: Ui,
    request: Request,
    status: int = 200,
    form: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """The page; `form`: what a refused edit sent, shown again in the rule form (an
    edit stays an edit of the same rule)."""
    lab, node = request.path_params["lab"], request.path_params["node"]
    state = _state(lab, node)
    edit_index = request.query_params.get("edit")
    if form and form.get("action") == "edit":
        edit_index = form.get("index")
    editing = None
    if edit_index is not None and edit_index.isdigit():
        rules = state["view"].rules
        index = int(edit_index)
        editing = rules[index] if index < len(rules) else None
    values = form if form and form.get("action") in ("add", "edit") else None
    context = {
        "lab": lab,
        "name": node,
        "editing": editing,
        "values": values or (editing.values if editing else {}),
        "choices": fwform.choices(state["view"]),
        **{k: v for k, v in state.items() if k != "handle"},
        **extra,
    }
    return ui.page(request, "firewall.html", status, **context)


def firewall_page(ui: Ui, request: Request) -> Response:
    return _page(ui, request)


def reload(handle: Any) -> tuple[str, str]:
    """Run the reload; (kind, message) for the page: fw4's warnings or nft's refusal."""
    proc = run_verb(handle, "reload")
    said = "\n".join(x for x in (proc.stdout.strip(), proc.stderr.strip()) if x)
    if proc.returncode == 0:
        return "ok", "firewall reloaded" + (f"; fw4 says:\n{said}" if said else "")
    return "error", f"reload failed (exit {proc.returncode}); the old ruleset stays:\n{said}"


def rules(ui: Ui, request: Request) -> Response:
    """Add / edit / enable / disable / delete a rule; write it; apply if asked."""
    lab, node = request.path_params["lab"], request.path_params["node"]
    form = form_of(request)
    state = _state(lab, node)
    action = form.get("action", "add")
    index = int(form["index"]) if form.get("index", "").isdigit() else None
    try:
        if form.get("digest") != state["digest"]:
            raise InputError(
                "/etc/config/firewall changed since this page was loaded: look again, then redo"
            )
        package, said = fwform.edited(
            state["firewall"], state["network"], fwform.Edit(action, index), form
        )
    except InputError as exc:
        return _page(
            ui,
            request,
            422,
            note=("error", f"refused, nothing written: {exc}"),
            form=form,
        )
    write_config(state["handle"], "firewall", fwform.text_of(package))
    if form.get("apply"):
        kind, applied = reload(state["handle"])
        key = ui.note(kind, f"{said}; {applied}")
    else:
        key = ui.note("ok", f"{said} (written to /etc/config/firewall; not applied yet)")
    return RedirectResponse(f"/lab/{lab}/node/{node}/firewall?note={key}", 303)


def apply(ui: Ui, request: Request) -> Response:
    lab, node = request.path_params["lab"], request.path_params["node"]
    kind, said = reload(openwrt_handle(lab, node))
    key = ui.note(kind, said)
    return RedirectResponse(f"/lab/{lab}/node/{node}/firewall?note={key}", 303)


ROUTES = [
    ("/lab/{lab}/node/{node}/firewall", firewall_page, ["GET"]),
    ("/lab/{lab}/node/{node}/firewall/rules", rules, ["POST"]),
    ("/lab/{lab}/node/{node}/firewall/apply", apply, ["POST"]),
]
