"""The `palmnet` command: builds the Typer app from the verb modules.

Each verb module exposes `register(app)`. Errors palmnet knows about become a
message and an exit code (2 bad input, 1 failed check or operation), never a
traceback.

Start-up is part of every command's cost, so `main` first offers the command line
to the quick lane (cli/quick.py: --version, ls, exec without Typer), and otherwise
imports only the verb module that registers the verb asked for (VERB_MODULE; a test
checks it against the registrations). Help, or a verb not in the table, loads all.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from palmnet.errors import PalmnetError

if TYPE_CHECKING:
    import typer

VERB_MODULES = (
    "lab",
    "addr",
    "serve",
    "forward",
    "ndp",
    "dns",
    "firewall",
    "routing",
    "link",
    "audit",
    "lxd",
    "isp",
    "ui",
)

# The top-level verb (command or group) -> the module whose register() adds it.
VERB_MODULE = {
    "plan": "lab",
    "up": "lab",
    "down": "lab",
    "ls": "lab",
    "exec": "lab",
    "stop": "lab",
    "start": "lab",
    "restart": "lab",
    "launch": "lab",
    "addr": "addr",
    "serve": "serve",
    "forward": "forward",
    "ndp": "ndp",
    "dns": "dns",
    "firewall": "firewall",
    "route": "routing",
    "neighbors": "routing",
    "link": "link",
    "converge": "link",
    "audit": "audit",
    "lxd": "lxd",
    "image": "lxd",
    "docker": "lxd",
    "snapshot": "lxd",
    "publish": "lxd",
    "isp": "isp",
    "ui": "ui",
}


def _version(value: bool) -> None:
    import typer

    from palmnet import __version__

    if value:
        typer.echo(f"palmnet {__version__}")
        raise typer.Exit()


def modules_for(args: list[str]) -> tuple[str, ...]:
    """The verb modules a command line needs: the one of its verb, or all of them."""
    verb = next((a for a in args if not a.startswith("-")), None)
    if verb in VERB_MODULE:
        return (VERB_MODULE[verb],)
    return VERB_MODULES


def build_app(modules: tuple[str, ...] = VERB_MODULES) -> typer.Typer:
    import typer

    app = typer.Typer(
        name="palmnet",
        help="A virtual IPv6 network in the palm of your hand.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Print the version."
        ),
    ) -> None:
        """A virtual IPv6 network in the palm of your hand."""

    import importlib

    for name in modules:
        module = importlib.import_module(f"palmnet.cli.{name}")
        module.register(app)
    _guard(app)
    return app


def _guard(app: typer.Typer) -> None:
    """Turn palmnet's own errors into a one-line message and the exit code, in every verb."""
    for info in app.registered_commands:
        if info.callback is not None and not getattr(info.callback, "_guarded", False):
            info.callback = _guarded(info.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            _guard(group.typer_instance)


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    import typer

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PalmnetError as exc:
            typer.echo(f"palmnet: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:
            from palmnet.cli.broken_pipe import reader_gone

            raise typer.Exit(reader_gone()) from None
        except OSError as exc:
            # The kernel said no (EEXIST, EPERM...): a message, not a traceback.
            typer.echo(f"palmnet: {exc}", err=True)
            raise typer.Exit(1) from None

    run._guarded = True  # type: ignore[attr-defined]
    return run


def main() -> None:
    from palmnet.cli import quick

    args = sys.argv[1:]
    call = quick.parse(args)
    if call is not None:
        sys.exit(quick.run(call))
    try:
        build_app(modules_for(args))(standalone_mode=True)
    except PalmnetError as exc:
        print(f"palmnet: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
