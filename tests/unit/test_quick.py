"""The quick lane (cli/quick.py) against the Typer app: whatever the quick lane
takes, Typer parses to the same arguments; whatever it declines, Typer answers.
And the verb -> module table of cli/app.py against the modules' registrations."""

from __future__ import annotations

import importlib
import subprocess
import sys
from enum import Enum
from pathlib import Path

import pytest
import typer
import typer.main
from hypothesis import given, settings
from hypothesis import strategies as st

from palmnet.cli import quick
from palmnet.cli.app import VERB_MODULE, VERB_MODULES, build_app

ROOT = Path(__file__).resolve().parents[2]


def typer_params(argv: list[str]) -> dict[str, object]:
    """The arguments Typer's parser gives the verb's function (values as plain text)."""
    cmd = typer.main.get_command(build_app(("lab",)))
    ctx = cmd.make_context("palmnet", [argv[0]], resilient_parsing=True)
    sub = cmd.get_command(ctx, argv[0])
    assert sub is not None
    params = sub.make_context(argv[0], argv[1:], parent=ctx).params
    out: dict[str, object] = {}
    for key, value in params.items():
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


def quick_params(call: quick.Call) -> dict[str, object]:
    out = dict(call.args)
    if call.verb == "exec":
        out["command"] = list(out["command"])  # type: ignore[call-overload]
    return out


SAME = [
    ["plan", "lab.yaml"],
    ["plan", "-f", "json", "lab.yaml"],
    ["plan", "lab.yaml", "--format=json"],
    ["up", "lab.yaml"],
    ["up", "--raise-neigh-limit", "lab.yaml", "--backend", "lxd", "-f", "json"],
    ["up", "lab.yaml", "--backend=netns", "--format", "table"],
    ["up", "lab.yaml", "-f", "table", "-f", "json"],
    ["up", "--rootless", "lab.yaml"],
    ["plan", "lab.yaml", "--rootless", "-f", "json"],
    ["down"],
    ["down", "palm"],
    ["down", "--lab", "palm"],
    ["down", "-l", "palm"],
    ["ls"],
    ["ls", "palm", "--format", "json"],
    ["ls", "--lab=palm", "-f", "table"],
    ["ls", "--prefixes", "-f", "json"],
    ["exec", "h1"],
    ["exec", "h1", "--", "ls", "-l"],
    ["exec", "--lab", "palm", "h1", "ip", "-6", "addr"],
    ["exec", "-l", "palm", "h1", "sh", "-c", "echo --lab"],
    ["exec", "--lab=palm", "h1", "--help"],
]


@pytest.mark.parametrize("argv", SAME, ids=" ".join)
def test_quick_lane_parses_as_typer_does(argv: list[str]) -> None:
    call = quick.parse(argv)
    assert call is not None, f"the quick lane should take {argv}"
    assert quick_params(call) == typer_params(argv)


DECLINED = [
    [],
    ["--help"],
    ["--version", "--help"],
    ["up"],
    ["up", "--help"],
    ["up", "a.yaml", "b.yaml"],
    ["up", "a.yaml", "--format", "yaml"],
    ["up", "a.yaml", "--format"],
    ["up", "a.yaml", "--rootles"],
    ["ls", "a", "b"],
    ["ls", "-fjson"],
    ["down", "--help"],
    ["exec"],
    ["exec", "--lab"],
    ["exec", "--help", "h1"],
    ["exec", "--format", "json", "h1"],
    ["launch", "w1", "w11"],
    ["link", "down", "r:eth0"],
]


@pytest.mark.parametrize("argv", DECLINED, ids=lambda a: " ".join(a) or "(none)")
def test_quick_lane_leaves_the_rest_to_typer(argv: list[str]) -> None:
    assert quick.parse(argv) is None


WORDS = ["plan", "up", "down", "ls", "exec", "lab.yaml", "h1", "palm", "json", "table"]
FLAGS = ["--lab", "-l", "--format", "-f", "--backend", "--raise-neigh-limit", "--prefixes"]
ODD = ["--", "-", "--format=json", "--lab=x", "--help", "-x", "--bogus"]
TOKENS = st.sampled_from([*WORDS, *FLAGS, *ODD])


@settings(max_examples=300, deadline=None)
@given(
    verb=st.sampled_from(["plan", "up", "down", "ls", "exec"]),
    rest=st.lists(TOKENS, max_size=6),
)
def test_what_the_quick_lane_takes_typer_takes_alike(verb: str, rest: list[str]) -> None:
    argv = [verb, *rest]
    call = quick.parse(argv)
    if call is None:
        return
    assert quick_params(call) == typer_params(argv)


def test_verb_table_matches_the_registrations() -> None:
    """Every verb a module registers is in VERB_MODULE under that module (a verb
    missing there still works, only slower: all modules are loaded for it)."""
    registered: dict[str, str] = {}
    for name in VERB_MODULES:
        app = typer.Typer()
        app.callback()(lambda: None)  # a group even for a module with one verb
        importlib.import_module(f"palmnet.cli.{name}").register(app)
        cmd = typer.main.get_command(app)
        ctx = cmd.make_context("palmnet", [], resilient_parsing=True)
        for verb in cmd.list_commands(ctx):  # type: ignore[attr-defined]
            registered[verb] = name
    assert registered == VERB_MODULE


def _fresh_python(code: str) -> list[str]:
    """Lines `code` prints in a new interpreter that sees palmnet's sources only."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src")},
        check=True,
    ).stdout.splitlines()


def test_version_without_typer() -> None:
    """`palmnet --version` loads neither Typer nor Rich nor pydantic."""
    out = _fresh_python(
        "import sys; sys.argv = ['palmnet', '--version']\n"
        "from palmnet.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('typer', 'rich', 'pydantic') if m in sys.modules))"
    )
    assert out[0].startswith("palmnet ")
    assert out[1] == "[]"


def test_ls_and_exec_load_no_topology_model() -> None:
    """What `ls` and `exec` import (the Lab API, the netns backend, the tables) loads
    neither pydantic nor the YAML reader: 85 ms of start-up each time they crept in;
    nor every daemon's adapter (15 ms: ls reads the daemons' names stored with the plan)."""
    out = _fresh_python(
        "import sys\n"
        "import palmnet.cli.lab_verbs, palmnet.cli.tables, palmnet.lab.api, palmnet.lab.health\n"
        "import palmnet.backends.netns.backend\n"
        "print(sorted(m for m in ('pydantic', 'ruamel', 'typer', 'palmnet.services.registry')"
        " if m in sys.modules))"
    )
    assert out == ["[]"]


def test_a_reader_gone_ends_the_verb_quietly() -> None:
    """`palmnet plan lab.yaml | head -1`: the pipe's reader leaves; no `[Errno 32]` line,
    no traceback at exit, the exit code a shell gives a process SIGPIPE ended."""
    import os

    read, write = os.pipe()
    os.close(read)  # gone before palmnet writes its first line
    try:
        done = subprocess.run(
            [sys.executable, "-m", "palmnet", "plan", str(ROOT / "examples" / "palm.yaml")],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")


def test_a_reader_gone_in_a_typer_verb_is_the_same_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    from palmnet.cli import broken_pipe
    from palmnet.cli.app import _guarded

    gone: list[bool] = []
    monkeypatch.setattr(broken_pipe, "reader_gone", lambda: gone.append(True) or 141)

    def verb() -> None:
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(typer.Exit) as exit_:
        _guarded(verb)()
    assert exit_.value.exit_code == 141 and gone == [True]  # stdout left for /dev/null
