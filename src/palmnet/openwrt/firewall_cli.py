"""`python -m palmnet.openwrt.firewall_cli VERB`: an openwrt node's /etc/init.d/firewall.

The node's /etc/init.d/firewall (see `render_init_script`) execs this, so
`/etc/init.d/firewall restart` inside `palmnet exec router sh` behaves as on
OpenWrt:

    start | restart | reload   compile /etc/config/firewall, print warnings,
                               load the table atomically (fw4 makes no
                               difference between them either)
    stop                       delete table inet fw4
    check                      every problem, load nothing (exit 2 unless only notices)
    show                       print the loaded table (nft list table inet fw4)

Exit codes are palmnet's: 0 ok, 2 a file that cannot be used (one line,
`FILE:LINE: message`, never a traceback), 1 anything else (nft refused the
ruleset: the one loaded before stays). It imports only the UCI parser and
the fw4 compiler, so it starts in a fraction of a second.

`--config-dir` (or $PALMNET_UCI_DIR) reads another directory than
/etc/config and `--nft` runs another nft binary: both are for tests.
"""

from __future__ import annotations

import argparse
import os
import sys

from palmnet.errors import InputError, PalmnetError
from palmnet.openwrt import firewall_service as service

VERBS = ("start", "restart", "reload", "stop", "check", "show")
ENV_DIR = "PALMNET_UCI_DIR"

_INIT_SCRIPT = """\
#!/bin/sh
# /etc/init.d/firewall of a palmnet openwrt node: fw4's verbs, run by palmnet.
# Edit /etc/config/firewall, then run: /etc/init.d/firewall restart

usage() {{
\tcat >&2 <<EOF
Syntax: $0 [command]

Available commands:
\tstart\tLoad the firewall from /etc/config/firewall
\tstop\tRemove the firewall (table inet fw4)
\trestart\tReload the firewall (atomic: the old one stays if the new one fails)
\treload\tSame as restart
\tcheck\tReport the first problem in /etc/config/firewall, load nothing
\tshow\tPrint the loaded ruleset
EOF
}}

case "$1" in
\tstart|stop|restart|reload|check|show)
\t\texec {python} -m palmnet.openwrt.firewall_cli "$@" ;;
\t*)
\t\tusage
\t\texit 1 ;;
esac
"""


def render_init_script(python: str) -> str:
    """The text of /etc/init.d/firewall: a POSIX sh script that execs this module
    with `python`, a shell command (an interpreter, or `env ... python3`)."""
    return _INIT_SCRIPT.format(python=python)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="/etc/init.d/firewall",
        description="The firewall of a palmnet openwrt node (fw4 semantics).",
    )
    parser.add_argument("verb", choices=VERBS)
    parser.add_argument(
        "--config-dir",
        default=os.environ.get(ENV_DIR) or service.CONFIG_DIR,
        help=f"UCI directory (default: ${ENV_DIR} or {service.CONFIG_DIR})",
    )
    parser.add_argument("--nft", default="nft", help="nft binary (default: nft)")
    return parser


def run(verb: str, config_dir: str, nft: str = "nft") -> None:
    if verb in ("start", "restart", "reload"):
        service.apply(config_dir, nft=nft)
    elif verb == "stop":
        service.stop(nft)
    elif verb == "check":
        warnings = service.check(config_dir).warnings
        for warning in warnings:
            print(warning, file=sys.stderr)
        problems = [w for w in warnings if not w.notice]
        if problems:  # exit 2: the file needs a fix (notices alone are fine)
            raise CheckRefused(len(problems))
    elif verb == "show":
        sys.stdout.write(service.show(nft))


class CheckRefused(InputError):
    """`check` found problems, already printed one per line above."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} problem{'s' if count > 1 else ''} in the firewall file")
        self.count = count


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        run(args.verb, args.config_dir, args.nft)
    except CheckRefused as exc:
        return exc.exit_code  # each problem is printed already
    except InputError as exc:
        print(exc.render().replace("\n", " "), file=sys.stderr)
        return exc.exit_code
    except PalmnetError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
