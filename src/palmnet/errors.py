"""Errors palmnet reports to the user instead of a traceback.

`InputError` is bad input (exit 2): it carries where the input was wrong
(file, line, key path) so the message can point at it. `CheckFailed` is a
check that ran and failed (exit 1). `LabError` is anything else that stops a
verb; the CLI prints its message and exits 1.
"""

from __future__ import annotations


class PalmnetError(Exception):
    """Base of every error the CLI turns into a message."""

    exit_code = 1


class InputError(PalmnetError):
    """The user gave input that cannot be used (exit code 2)."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        super().__init__(self.render())

    def render(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"


class CheckFailed(PalmnetError):
    """A check ran and its answer was no (exit code 1)."""

    exit_code = 1


class LabError(PalmnetError):
    """A lab operation failed; the message says what did not happen."""

    exit_code = 1


class CommandNotFound(LabError):
    """`exec` of a program the node does not have: 127, as a shell (and `lxc exec`)
    say it, so a script can tell it from the program's own failure."""

    exit_code = 127


class NotExecutable(LabError):
    """`exec` of a file that is not a program (a folder, no x bit): 126, as a shell says."""

    exit_code = 126


class UnknownNode(InputError, KeyError):
    """A node name the lab does not have: said once, where the lookup lives (`Plan.node`).

    Also a KeyError, so code that looks a name up and handles its absence can."""

    def __init__(self, node: str, lab: str, nodes: list[str]) -> None:
        shown = ", ".join(nodes[:12]) + (" ..." if len(nodes) > 12 else "")
        super().__init__(f"no node '{node}' in lab {lab} (nodes: {shown or 'none'})")
        self.node = node

    def __str__(self) -> str:
        return self.render()
