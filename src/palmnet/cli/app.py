"""The `palmnet` command: builds the Typer app from the verb modules.

Each verb module exposes `register(app)`. Errors palmnet knows about become a
message and an exit code (2 bad input, 1 failed check or operation), never a
traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import typer

from palmnet import __version__
from palmnet.errors import PalmnetError

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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"palmnet {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
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

    for name in VERB_MODULES:
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
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PalmnetError as exc:
            typer.echo(f"palmnet: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:
            # The kernel said no (EEXIST, EPERM...): a message, not a traceback.
            typer.echo(f"palmnet: {exc}", err=True)
            raise typer.Exit(1) from None

    run._guarded = True  # type: ignore[attr-defined]
    return run


def main() -> None:
    try:
        build_app()(standalone_mode=True)
    except PalmnetError as exc:
        typer.echo(f"palmnet: {exc}", err=True)
        sys.exit(exc.exit_code)
