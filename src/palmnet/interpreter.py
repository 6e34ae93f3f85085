"""The command that runs this very palmnet, for scripts that daemons start.

dhcpcd and kea start palmnet's hooks with an environment of their own (no
PYTHONPATH), and `palmnet exec` runs a node's /etc/init.d/firewall the same
way. Run as plain `python3 -m ...`, a hook would import whichever palmnet that
interpreter finds installed, which is not the code that wrote the lab when it
runs from a source checkout or a second checkout beside the installed one: the
RA a hook renders would then differ from the one the lab planned. So every
such script names the interpreter and, first on its path, the directory this
palmnet was imported from.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the directory holding palmnet/


def this_palmnet() -> str:
    """A shell command prefix: `/usr/bin/env PYTHONPATH=<root> <python>`."""
    return f"/usr/bin/env PYTHONPATH={shlex.quote(str(PACKAGE_ROOT))} {shlex.quote(sys.executable)}"
