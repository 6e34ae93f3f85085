"""`palmnet link ...` (fail and heal links) and `palmnet converge` (measure the healing).

    palmnet link down|up [--lab L] A:B        carrier loss on every end, and back
    palmnet link impair [--lab L] A:B --loss PERCENT | --blackhole
                                              silent failure (nftables), interfaces up
    palmnet link clear [--lab L] A:B | --all  no impairment, every end up
    palmnet link show [--lab L] [--all]       links that are down or impaired
    palmnet converge [--lab L] --from N --to N --fail A:B [--mode down|silent [--loss N]] ...

`A:B` names the network nodes A and B share, `A:IFACE` the network on A's
interface (links/names.py). Everything happens at the ports of the lab's
switch (its own bridges): the nodes' own firewalls are never touched.
"""

from __future__ import annotations

import enum
import json
import os
from pathlib import Path

import typer

from palmnet.cli.options import FORMAT, LAB, Format
from palmnet.errors import InputError, LabError

LINK = typer.Argument(..., metavar="A:B", help="The link: A:B (two nodes) or A:IFACE.")


class Mode(str, enum.Enum):
    down = "down"
    silent = "silent"


def _say(msg: str) -> None:
    typer.echo(msg, err=True)


def _control(lab: str | None):  # type: ignore[no-untyped-def]
    from palmnet.lab import LabAPI
    from palmnet.links.control import LinkControl

    with LabAPI().session(lab) as s:
        if os.geteuid() != 0:  # root of the machine, or of a rootless lab once entered
            raise LabError("palmnet link needs root (network namespaces): run it with sudo")
        return LinkControl(s.plan, s.switch())


def _resolve(control, text: str):  # type: ignore[no-untyped-def]
    from palmnet.links.names import resolve_link

    return resolve_link(control.plan, text)


def down(link: str = LINK, lab: str | None = LAB) -> None:
    """Pull the cable: every end of the link down, the nodes see NO-CARRIER."""
    control = _control(lab)
    resolved = _resolve(control, link)
    control.set_carrier(resolved, False)
    _say(f"link {resolved.describe()} down")


def up(link: str = LINK, lab: str | None = LAB) -> None:
    """Plug the cable back: every end of the link up (an impairment stays)."""
    control = _control(lab)
    resolved = _resolve(control, link)
    control.set_carrier(resolved, True)
    state = control.status_of(resolved)
    extra = f" (still {state.state()}: `palmnet link clear`)" if state.impaired else ""
    _say(f"link {resolved.describe()} up{extra}")


def impair(
    link: str = LINK,
    loss: int | None = typer.Option(
        None, "--loss", help="Drop this percent (1-100) of the frames in each direction."
    ),
    blackhole: bool = typer.Option(False, "--blackhole", help="Drop every frame."),
    lab: str | None = LAB,
) -> None:
    """Fail silently: nftables drops frames on the link, the interfaces stay up."""
    if (loss is None) == (not blackhole):
        raise InputError("say how: --loss PERCENT or --blackhole (one of them)")
    if loss is not None and not 1 <= loss <= 100:
        raise InputError(f"--loss must be 1..100 percent, not {loss}")
    control = _control(lab)
    resolved = _resolve(control, link)
    control.impair(resolved, None if blackhole else loss)
    how = "blackhole" if blackhole else f"loss {loss}% in each direction"
    _say(f"link {resolved.describe()} impaired: {how}")


def clear(
    link: str | None = typer.Argument(None, metavar="[A:B]", help="The link."),
    all_links: bool = typer.Option(False, "--all", help="Every link of the lab."),
    lab: str | None = LAB,
) -> None:
    """Heal a link: no impairment, every end up."""
    if (link is None) == (not all_links):
        raise InputError("name a link (A:B) or say --all")
    control = _control(lab)
    if all_links:
        control.clear_all()
        _say(f"every link of lab {control.plan.lab} is whole")
        return
    assert link is not None
    resolved = _resolve(control, link)
    control.clear(resolved)
    _say(f"link {resolved.describe()} whole")


def show(
    lab: str | None = LAB,
    all_links: bool = typer.Option(False, "--all", help="Every link, also the whole ones."),
    fmt: Format = FORMAT,
) -> None:
    """Links that are down or impaired (with --all: every link)."""
    control = _control(lab)
    rows = control.status(only_failed=not all_links)
    if fmt is Format.json:
        typer.echo(json.dumps([r.to_json() for r in rows], indent=2))
        return
    if not rows:
        _say(f"lab {control.plan.lab}: no link is down or impaired")
        return
    from palmnet.cli.grid import Grid, print_grid

    t = Grid(("LINK", "NETWORK", "STATE", "ENDS", "DROPPED"), lines=False)
    for r in rows:
        ends = ", ".join(f"{e.node} {e.interface}" for e in r.link.ends)
        dropped = sum(i.dropped for i in r.impaired.values())
        t.add_row(r.link.name, r.link.network, r.state(), ends, str(dropped) if r.impaired else "")
    print_grid(t)


def converge(
    source: str = typer.Option(..., "--from", help="The node the probes leave from."),
    target: str = typer.Option(..., "--to", help="The node probed (its first global address)."),
    fail: str = typer.Option(..., "--fail", metavar="A:B", help="The link to fail."),
    mode: Mode = typer.Option(
        Mode.down, "--mode", help="down: carrier loss; silent: frames dropped, links up."
    ),
    loss: int | None = typer.Option(
        None, "--loss", help="With --mode silent: drop this percent of frames (default all)."
    ),
    interval: float = typer.Option(0.05, "--interval", help="Seconds between probes."),
    duration: float | None = typer.Option(
        None,
        "--duration",
        help="Seconds to watch after the failure (default: until routing settles, max 300).",
    ),
    fail_after: float = typer.Option(
        2.0, "--fail-after", help="Seconds of answered probes before the failure."
    ),
    out: Path | None = typer.Option(None, "--out", help="Folder for result.json and timeline.png."),
    lab: str | None = LAB,
    fmt: Format = FORMAT,
) -> None:
    """Fail a link under a running ping; report outage, paths, route churn, settling."""
    from palmnet.toolbox.converge import (
        ConvergeRequest,
        summary,
        write_outputs,
    )
    from palmnet.toolbox.converge import (
        converge as run_converge,
    )

    req = ConvergeRequest(
        source=source,
        target=target,
        fail=fail,
        mode=mode.value,
        loss=loss,
        interval=interval,
        duration=duration,
        fail_after=fail_after,
        lab=lab,
    )
    result = run_converge(req, report=_say)
    if out is not None:
        write_outputs(result, out, report=_say)
    if fmt is Format.json:
        shown = {k: v for k, v in result.items() if k != "samples"}
        typer.echo(json.dumps(shown, indent=2))
    else:
        typer.echo(summary(result))


def register(app: typer.Typer) -> None:
    """Add `palmnet link` (down, up, impair, clear, show) and `palmnet converge`."""
    link_app = typer.Typer(help="Fail and heal links of a running lab.", no_args_is_help=True)

    @link_app.callback()
    def _link() -> None:
        """Fail and heal links of a running lab."""

    link_app.command("down")(down)
    link_app.command("up")(up)
    link_app.command("impair")(impair)
    link_app.command("clear")(clear)
    link_app.command("show")(show)
    app.add_typer(link_app, name="link")
    app.command("converge")(converge)
