"""A reader that went away (`palmnet ls | head`): stop quietly, as cat does.

Python ignores SIGPIPE, so a write to a closed pipe is an error; it is not the
verb's failure (the lab changed as asked), so no `palmnet: [Errno 32]` line.
"""

from __future__ import annotations

import os
import sys

EXIT = 128 + 13  # what a shell reports for a process that SIGPIPE ended


def reader_gone() -> int:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail
    again at exit; the exit code."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT
