"""An openwrt node's firewall as verbs see it: its /etc/config files and its init verbs.

`palmnet firewall reload|show|check` and the web UI's firewall page both come
here, so a rule the UI writes is loaded exactly as `palmnet firewall reload`
loads it: `python -m palmnet.openwrt.firewall_cli VERB` (what the node's own
/etc/init.d/firewall execs) run from the host in the node's network namespace,
on the node's /etc/config as the host sees it through the node handle. So it
works the same on every backend, whatever the node's image holds.
"""

from __future__ import annotations

import subprocess
import sys

from palmnet.errors import InputError, LabError
from palmnet.lab import NodeHandle
from palmnet.openwrt.uci import UciPackage, parse

MODULE = "palmnet.openwrt.firewall_cli"
CONFIG = "/etc/config"


def openwrt_handle(lab: str | None, node: str) -> NodeHandle:
    """A running openwrt node (InputError for another kind, LabError if stopped)."""
    from palmnet.lab import LabAPI  # looked up at each call (tests stand a fake lab in)

    with LabAPI().session(lab) as s:
        kind = s.plan.node(node).kind
        if kind != "openwrt":
            raise InputError(f"node '{node}' is a {kind} node: only openwrt nodes have a firewall")
        return s.running_node(node)


def run_verb(handle: NodeHandle, verb: str) -> subprocess.CompletedProcess[str]:
    """`/etc/init.d/firewall VERB` of the node, its output collected (exit 2: a file
    that cannot be used, 1: nft refused the ruleset and the old one stays)."""
    config = str(handle.host_path(CONFIG))
    argv = [sys.executable, "-m", MODULE, verb, "--config-dir", config]
    try:
        return handle.tool(argv, timeout=60)
    except subprocess.TimeoutExpired:
        raise LabError(f"firewall {verb} on node {handle.name} did not finish in time") from None


def read_package(handle: NodeHandle, name: str) -> tuple[str, UciPackage]:
    """The text of /etc/config/NAME in the node and its parse (UciError: file + line);
    a missing file is an empty package."""
    path = f"{CONFIG}/{name}"
    text = handle.read_file(path) or ""
    return text, parse(text, name, file=path)


def write_config(handle: NodeHandle, name: str, text: str) -> None:
    """Replace /etc/config/NAME in the node, as `uci commit` does: a new file renamed
    over the old one, written by the node's own `sh` inside it, so it lands in the
    node's /etc on every backend (a namespace node's /etc is an overlay only its
    mount namespace sees). The text goes in on stdin, never on a command line."""
    path = f"{CONFIG}/{name}"
    script = 'cat > "$0.palmnet-new" && mv -f "$0.palmnet-new" "$0"'
    proc = handle.run(["sh", "-c", script, path], stdin=text, timeout=30)
    if proc.returncode != 0:
        raise LabError(f"cannot write {path} in node {handle.name}: {proc.stderr.strip()}")
