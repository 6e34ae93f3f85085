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
