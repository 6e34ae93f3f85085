"""Lab verbs: plan, up, down, ls, exec, stop, start, restart (DESIGN.md §5)."""

from __future__ import annotations

import typer

from palmnet.cli import lab_verbs
from palmnet.cli.options import FORMAT, LAB, Format


def _say(msg: str) -> None:
    typer.echo(msg, err=True)


def plan(
    # str, not Path: Path("") is ".", and `plan ""` said ". : a folder"
    topology: str = typer.Argument(..., help="The lab file (YAML)."),
    rootless: bool = typer.Option(
        False, "--rootless", help="Also refuse what a lab without root cannot have."
    ),
    fmt: Format = FORMAT,
) -> None:
    """Print every node's addresses, computed offline (no root)."""
    lab_verbs.plan(topology, fmt.value, rootless)


def up(
    topology: str = typer.Argument(..., help="The lab file (YAML)."),  # str: as `plan`'s
    raise_neigh_limit: bool = typer.Option(
        False,
        "--raise-neigh-limit",
        help="Raise the machine's IPv6 neighbour table limit for this lab (restored at down).",
    ),
    backend: str | None = typer.Option(
        None, "--backend", help="netns (default) or lxd; overrides the topology's `backend:`."
    ),
    rootless: bool = typer.Option(
        False,
        "--rootless",
        help="Build the lab in a user namespace of its own (the default for a user "
        "who is not root).",
    ),
    fmt: Format = FORMAT,
) -> None:
    """Build and start a lab; on a running lab, reconcile it to the file."""
    lab_verbs.up(topology, raise_neigh_limit, backend, fmt.value, rootless)


def down(
    lab_arg: str | None = typer.Argument(None, metavar="LAB", help="The lab."),
    lab: str | None = LAB,
) -> None:
    """Remove every trace of a lab (also after a crash or kill -9)."""
    lab_verbs.down(lab_arg or lab)


def ls(
    lab_arg: str | None = typer.Argument(None, metavar="LAB", help="The lab."),
    lab: str | None = LAB,
    prefixes: bool = typer.Option(
        False,
        "--prefixes",
        help="Each PD router's delegated prefix and the /64 of each of its LANs.",
    ),
    fmt: Format = FORMAT,
) -> None:
    """List nodes with the addresses the kernel holds, like `lxc ls`."""
    lab_verbs.ls(lab_arg or lab, fmt.value, prefixes)


def exec_(
    node: str = typer.Argument(..., help="The node."),
    command: list[str] = typer.Argument(None, help="Command and arguments (default: sh)."),
    lab: str | None = LAB,
) -> None:
    """Run a command inside a node; its exit code is passed through."""
    lab_verbs.exec_(lab, node, list(command or []))


def stop(node: str, lab: str | None = LAB) -> None:
    """Stop one node (its namespace and processes go; its addresses come back on start)."""
    from palmnet.lab import LabAPI

    stopped = LabAPI(report=_say).stop(lab, node)
    _say(f"{node} stopped" if stopped else f"{node} is stopped already")


def start(node: str, lab: str | None = LAB) -> None:
    """Start a stopped node again, with the same addresses."""
    from palmnet.lab import LabAPI

    started = LabAPI(report=_say).start(lab, node)
    _say(f"{node} started" if started else f"{node} is running already")


def restart(node: str, lab: str | None = LAB) -> None:
    """Stop and start one node."""
    from palmnet.lab import LabAPI

    LabAPI(report=_say).restart(lab, node)
    _say(f"{node} restarted")


def launch(
    template: str = typer.Argument(..., help="The node (or count: entry) to copy."),
    names: list[str] = typer.Argument(..., help="Names of the new nodes."),
    image: str | None = typer.Option(
        None, "--image", help="LXD: start the copies from this image (a published node)."
    ),
    lab: str | None = LAB,
    fmt: Format = FORMAT,
) -> None:
    """Add copies of a node to a running lab, like `lxc launch IMAGE NAME`."""
    from palmnet.lab import LabAPI

    api = LabAPI(report=_say)
    plan = api.launch(lab, template, names, image=image)
    lab_verbs.show(api, plan.lab, fmt.value)


def register(app: typer.Typer) -> None:
    app.command()(plan)
    app.command()(up)
    app.command()(down)
    app.command()(ls)
    app.command(
        "exec",
        context_settings={"allow_interspersed_args": False},
    )(exec_)
    app.command()(stop)
    app.command()(start)
    app.command()(restart)
    app.command()(launch)
