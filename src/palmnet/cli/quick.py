"""The lab verbs a user runs most, answered without Typer: `--version`, `plan`,
`up`, `down`, `ls` and `exec`.

Why a second door: Typer 0.29 imports in about 50 ms and coerces every parameter
through a pydantic TypeAdapter built at call time (about 65-85 ms more on this
machine): more than `ls` or `exec` cost themselves, and paid by every `up` and
`down` too. This lane takes only the plain shapes of those verbs, as their
`--help` documents them; anything else (--help, a typo, an option it does not
know) makes `parse` return None and the Typer app answers, so
errors and help read exactly as before. Both doors run the same code
(cli/lab_verbs.py); tests/unit/test_quick.py checks that they parse alike.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

FORMATS = ("table", "json")


@dataclass(frozen=True)
class Spec:
    """A verb's command line: its positional arguments and its options."""

    positionals: tuple[str, ...]  # names, in order
    required: int  # how many of them must be given
    options: dict[str, str] = field(default_factory=dict)  # flag -> destination
    switches: dict[str, str] = field(default_factory=dict)  # boolean flag -> destination


LAB = {"--lab": "lab", "-l": "lab"}
FORMAT = {"--format": "fmt", "-f": "fmt"}
SPECS = {
    "plan": Spec(("topology",), 1, {**FORMAT}, {"--rootless": "rootless"}),
    "up": Spec(
        ("topology",),
        1,
        {**FORMAT, "--backend": "backend"},
        {"--raise-neigh-limit": "raise_neigh_limit", "--rootless": "rootless"},
    ),
    "down": Spec(("lab_arg",), 0, {**LAB}),
    "ls": Spec(("lab_arg",), 0, {**LAB, **FORMAT}, {"--prefixes": "prefixes"}),
}


@dataclass(frozen=True)
class Call:
    """One verb with its arguments, as the Typer command would receive them."""

    verb: str
    args: dict[str, object] = field(default_factory=dict)


def _split(arg: str, spec: Spec) -> tuple[str, str | None] | None:
    """(flag, attached value) of an option token, None if the verb has no such option."""
    if arg in spec.options or arg in spec.switches:
        return arg, None
    flag, eq, value = arg.partition("=")
    if eq and flag.startswith("--") and flag in spec.options:
        return flag, value
    return None


def _parse(verb: str, args: list[str]) -> Call | None:
    spec = SPECS[verb]
    found: dict[str, object] = dict.fromkeys(spec.switches.values(), False)
    found.update(dict.fromkeys(spec.options.values()))
    has_format = "fmt" in spec.options.values()
    if has_format:
        found["fmt"] = "table"
    found.update(dict.fromkeys(spec.positionals))
    given = 0
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-") and arg != "-":
            parts = _split(arg, spec)
            if parts is None:
                return None  # --help, --prefixes, a typo: Typer says what it is
            flag, value = parts
            if flag in spec.switches:
                found[spec.switches[flag]] = True
                i += 1
                continue
            if value is None:
                if i + 1 >= len(args):
                    return None
                value, i = args[i + 1], i + 1
            found[spec.options[flag]] = value
            i += 1
            continue
        if given >= len(spec.positionals):
            return None
        found[spec.positionals[given]] = arg
        given += 1
        i += 1
    if given < spec.required or (has_format and found["fmt"] not in FORMATS):
        return None
    return Call(verb, found)


def _parse_exec(args: list[str]) -> Call | None:
    """`exec [--lab L] NODE [--] COMMAND...`: options only before the node."""
    lab = None
    i = 0
    while i < len(args) and args[i].startswith("-"):
        parts = _split(args[i], SPECS["ls"])
        if parts is None or parts[0] not in LAB:
            return None
        value = parts[1]
        if value is None:
            if i + 1 >= len(args):
                return None
            value, i = args[i + 1], i + 1
        lab, i = value, i + 1
    if i >= len(args):
        return None
    return Call("exec", {"lab": lab, "node": args[i], "command": args[i + 1 :]})


def parse(args: list[str]) -> Call | None:
    """The call for argv[1:], or None when the full command line parser must answer."""
    if args == ["--version"]:
        return Call("version")
    if not args:
        return None
    if args[0] == "exec":
        return _parse_exec(args[1:])
    if args[0] in SPECS:
        return _parse(args[0], args[1:])
    return None


def _dispatch(call: Call) -> None:
    from palmnet.cli import lab_verbs

    a = call.args
    if call.verb == "version":
        from palmnet import __version__

        print(f"palmnet {__version__}")
    elif call.verb == "plan":
        lab_verbs.plan(str(a["topology"]), str(a["fmt"]), bool(a["rootless"]))
    elif call.verb == "up":
        backend = a["backend"]
        lab_verbs.up(
            str(a["topology"]),
            bool(a["raise_neigh_limit"]),
            None if backend is None else str(backend),
            str(a["fmt"]),
            bool(a["rootless"]),
        )
    elif call.verb == "down":
        lab_verbs.down(_lab(a))
    elif call.verb == "ls":
        lab_verbs.ls(_lab(a), str(a["fmt"]), bool(a["prefixes"]))
    elif call.verb == "exec":
        command = a["command"]
        assert isinstance(command, list)
        lab_verbs.exec_(_lab(a), str(a["node"]), command)


def _lab(a: dict[str, object]) -> str | None:
    name = a.get("lab_arg") or a.get("lab")
    return None if name is None else str(name)


def run(call: Call) -> int:
    """Run the call; palmnet's own errors become `palmnet: message` and their exit
    code, as every Typer verb does (cli/app.py)."""
    from palmnet.errors import PalmnetError

    try:
        _dispatch(call)
    except PalmnetError as exc:
        print(f"palmnet: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        from palmnet.cli.broken_pipe import reader_gone

        return reader_gone()
    except OSError as exc:
        print(f"palmnet: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nAborted!", file=sys.stderr)  # as Click says it
        return 1
    return 0
