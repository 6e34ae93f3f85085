"""The firewall runtime of openwrt nodes: /etc/init.d/firewall and `palmnet firewall`.

Root tests run the real firewall command (`python -m palmnet.openwrt.firewall_cli`)
inside a network namespace of their own (`pnfwrt-*`, deleted afterwards) with a
config dir in tmp, and read back what the kernel holds with `nft list table`.
Tests without root check the init script, the loading protocol (through a fake
nft that records what it is given) and the `palmnet firewall` verbs (through a
fake Lab API that runs the firewall command here).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

from palmnet.errors import InputError, LabError
from palmnet.openwrt import defaults, firewall_service
from palmnet.openwrt.firewall_cli import render_init_script
from palmnet.openwrt.uci import UciError

ULA = "fd12:3456:789a::/48"
NFT = shutil.which("nft")
MODULE = "palmnet.openwrt.firewall_cli"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or NFT is None, reason="needs root and nft (network namespaces)"
)

EXT_WEB = """
config rule
\toption name 'ext_web'
\toption src 'wan'
\toption proto 'tcp'
\toption dest_port '80'
\toption target 'ACCEPT'
"""

BAD_SECTIONS = """
config rule
\toption name 'ext_web'
\toption src 'wan'
\toption proto 'tcp'
\toption dest_port '80'
\toption target 'ACCEPT'
\toption colour 'blue'

config rule
\toption name 'bad_range'
\toption src 'wan'
\toption proto 'tcp'
\toption dest_port '9000-80x'
\toption target 'ACCEPT'

config forwarding
\toption src 'lan'
\toption dest 'dmz'
"""


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line holding `needle`."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def write_config(directory: Path, firewall: str = defaults.FIREWALL) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "firewall").write_text(firewall)
    (directory / "network").write_text(defaults.network_text(ULA))
    return directory / "firewall"


def script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def recording_nft(tmp_path: Path, status: int = 0) -> tuple[Path, Path]:
    """A fake nft that saves its argv and stdin and exits with `status`."""
    log = tmp_path / "nft.log"
    fake = script(
        tmp_path / "fake-nft",
        f'#!/bin/sh\necho "$@" > {log}.args\ncat > {log}\n'
        + (f"echo 'Error: no, thanks' >&2\nexit {status}\n" if status else ""),
    )
    return fake, log


# ---------------------------------------------------------------- no root


def test_init_script_is_posix_sh_and_execs_the_module(tmp_path):
    text = render_init_script(shlex.quote("/opt/py env/bin/python3"))
    assert text.startswith("#!/bin/sh\n")
    assert "exec '/opt/py env/bin/python3' -m palmnet.openwrt.firewall_cli \"$@\"" in text
    init = script(tmp_path / "firewall", text)
    assert subprocess.run(["sh", "-n", str(init)]).returncode == 0

    usage = subprocess.run([str(init)], capture_output=True, text=True)
    assert usage.returncode == 1
    assert usage.stderr.startswith(f"Syntax: {init} [command]")
    assert "restart" in usage.stderr and not usage.stdout
    assert subprocess.run([str(init), "bogus"], capture_output=True).returncode == 1

    echo = script(tmp_path / "py", '#!/bin/sh\necho "$@"\n')
    ran = subprocess.run(
        [str(script(tmp_path / "fw", render_init_script(str(echo)))), "restart"],
        capture_output=True,
        text=True,
    )
    assert ran.stdout == "-m palmnet.openwrt.firewall_cli restart\n"


def test_apply_prints_warnings_then_loads_one_nft_file(tmp_path):
    text = defaults.FIREWALL + BAD_SECTIONS
    path = write_config(tmp_path / "config", text)
    fake, log = recording_nft(tmp_path)
    err = tmp_path / "stderr"
    with err.open("w") as out:
        result = firewall_service.apply(str(tmp_path / "config"), nft=str(fake), err=out)
    assert Path(f"{log}.args").read_text() == "-f -\n"
    loaded = log.read_text()
    assert loaded == result.nft_text
    assert loaded.startswith("table inet fw4\nflush table inet fw4\n")  # one transaction
    printed = err.read_text().splitlines()
    assert printed == [str(w) for w in result.warnings]
    colour = line_of(text, "option colour")
    assert printed[0] == (
        f"{path}:{colour}: Section @rule[9] (ext_web) specifies unknown option 'colour'"
    )


def test_apply_reports_nft_refusal(tmp_path):
    write_config(tmp_path / "config")
    fake, _ = recording_nft(tmp_path, status=1)
    with pytest.raises(LabError, match=r"(?s)nft refused the ruleset.*unchanged.*no, thanks"):
        firewall_service.apply(str(tmp_path / "config"), nft=str(fake))
    with pytest.raises(LabError, match="command not found"):
        firewall_service.apply(str(tmp_path / "config"), nft=str(tmp_path / "no-nft"))


def test_load_errors_name_file_and_line(tmp_path):
    config = tmp_path / "config"
    text = defaults.FIREWALL + "\nconfig rule\n\toption name 'oops\n"
    write_config(config, text)
    with pytest.raises(UciError) as info:
        firewall_service.load(str(config))
    assert (info.value.file, info.value.line) == (str(config / "firewall"), line_of(text, "'oops"))
    (config / "firewall").unlink()
    with pytest.raises(InputError, match="firewall: no such file"):
        firewall_service.load(str(config))
    (config / "firewall").write_bytes(b"config rule\n\toption name '\xff'\n")
    with pytest.raises(UciError, match="not UTF-8"):
        firewall_service.load(str(config))


def test_load_without_network_file(tmp_path):
    (tmp_path / "firewall").write_text(defaults.FIREWALL)
    firewall, network = firewall_service.load(str(tmp_path))
    assert firewall.of_type("zone") and network.sections == []


def test_check_reports_every_problem_and_loads_nothing(tmp_path):
    text = defaults.FIREWALL + BAD_SECTIONS
    write_config(tmp_path, text)
    found = firewall_service.check(str(tmp_path)).warnings
    assert [(w.line, w.level) for w in found if w.level != "notice"][:1] == [
        (line_of(text, "option colour"), "warning")
    ]
    assert {w.value for w in found} >= {"9000-80x", "dmz"}  # not only the first one
    write_config(tmp_path)
    assert firewall_service.check(str(tmp_path)).warnings == []


# `palmnet firewall ...` against a fake Lab API that runs the firewall command here.


class FakeLab:
    """Stands in for the LabAPI class: a session whose node handle runs the firewall
    command here, with the test's config dir as the node's /etc/config."""

    def __init__(self, config: Path, nft: Path, kind: str = "openwrt") -> None:
        self.config, self.nft, self.kind = config, nft, kind
        self.argv: list[str] = []
        self.plan = SimpleNamespace(node=lambda name: SimpleNamespace(name=name, kind=self.kind))

    def __call__(self) -> FakeLab:
        return self

    @contextlib.contextmanager
    def session(self, lab):
        yield self

    def running_node(self, name):
        return self

    def host_path(self, path):
        assert path == "/etc/config"
        return self.config

    def tool(self, argv, stdin=None, timeout=60):
        self.argv = argv
        return subprocess.run(
            [*argv, "--nft", str(self.nft)], capture_output=True, text=True, timeout=timeout
        )


def firewall_app() -> typer.Typer:
    from palmnet.cli import firewall
    from palmnet.cli.app import _guard

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """palmnet"""

    firewall.register(app)
    _guard(app)
    return app


@pytest.fixture
def cli(tmp_path, monkeypatch):
    import palmnet.lab

    write_config(tmp_path / "config")
    fake, log = recording_nft(tmp_path)
    lab = FakeLab(tmp_path / "config", fake)
    monkeypatch.setattr(palmnet.lab, "LabAPI", lab)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(firewall_app(), ["firewall", *args])

    return SimpleNamespace(invoke=invoke, lab=lab, log=log, tmp=tmp_path)


def test_cli_reload_runs_the_node_command(cli):
    res = cli.invoke("reload", "router")
    assert res.exit_code == 0, res.output
    assert cli.lab.argv[:4] == [sys.executable, "-m", MODULE, "reload"]
    assert cli.lab.argv[4:] == ["--config-dir", str(cli.lab.config)]
    assert cli.log.read_text().startswith("table inet fw4\n")


def test_cli_check_exits_2_naming_file_and_line(cli):
    text = defaults.FIREWALL + BAD_SECTIONS
    path = write_config(cli.tmp / "config", text)
    res = cli.invoke("check", "router")
    assert res.exit_code == 2
    colour = line_of(text, "option colour")
    said = res.output.strip().splitlines()
    assert said[0] == (
        f"{path}:{colour}: Section @rule[9] (ext_web) specifies unknown option 'colour'"
    )
    # every problem of the file, not only the first: the bad range and the unknown zone
    assert any("'9000-80x'" in line for line in said), said
    assert any("'dmz'" in line for line in said), said


def test_cli_reload_exits_1_when_nft_refuses(cli):
    fake, _ = recording_nft(cli.tmp, status=1)
    cli.lab.nft = fake
    res = cli.invoke("reload", "--lab", "palm", "router")
    assert res.exit_code == 1
    assert "nft refused the ruleset" in res.output and "Traceback" not in res.output


def test_cli_refuses_other_kinds(cli):
    cli.lab.kind = "host"
    res = cli.invoke("show", "router")
    assert res.exit_code == 2 and "only openwrt nodes" in res.output


# ---------------------------------------------------------------- root


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"pnfwrt-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def in_ns(ns: str, argv: list[str], env: dict[str, str] | None = None):
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def firewall(ns: str, verb: str, config: Path, *extra: str):
    return in_ns(ns, [sys.executable, "-m", MODULE, verb, "--config-dir", str(config), *extra])


def nft_table(ns: str) -> str:
    proc = in_ns(ns, ["nft", "list", "table", "inet", "fw4"])
    return proc.stdout if proc.returncode == 0 else ""


root = pytest.mark.root


@root
@needs_root
def test_restart_loads_the_stock_firewall(netns, tmp_path):
    config = tmp_path / "config"
    write_config(config)
    init = script(tmp_path / "firewall.init", render_init_script(sys.executable))
    proc = in_ns(netns, [str(init), "restart"], {"PALMNET_UCI_DIR": str(config)})
    assert (proc.returncode, proc.stderr) == (0, "")
    table = nft_table(netns)
    for chain in (
        "input",
        "forward",
        "output",
        "input_wan",
        "forward_lan",
        "srcnat_wan",
        "handle_reject",
        "mangle_forward",
    ):
        assert f"chain {chain} {{" in table
    assert 'iifname "eth1" jump input_wan' in table
    assert 'iifname "br-lan" jump input_lan' in table

    shown = firewall(netns, "show", config)
    assert (shown.returncode, shown.stdout) == (0, table)
    assert firewall(netns, "stop", config).returncode == 0
    assert nft_table(netns) == ""
    assert firewall(netns, "stop", config).returncode == 0  # nothing to stop: still fine
    gone = firewall(netns, "show", config)
    assert gone.returncode == 1 and "no firewall is loaded" in gone.stderr
    assert firewall(netns, "start", config).returncode == 0
    assert nft_table(netns) == table


@root
@needs_root
def test_bad_sections_are_reported_and_skipped(netns, tmp_path):
    config = tmp_path / "config"
    text = defaults.FIREWALL + BAD_SECTIONS
    path = write_config(config, text)
    proc = firewall(netns, "restart", config)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    colour, rng = line_of(text, "option colour"), line_of(text, "'9000-80x'")
    dest = line_of(text, "option dest 'dmz'")
    assert lines == [
        f"{path}:{colour}: Section @rule[9] (ext_web) specifies unknown option 'colour'",
        f"{path}:{rng}: Section @rule[10] (bad_range) option 'dest_port' "
        "specifies invalid value '9000-80x'",
        f"{path}:{line_of(text, 'bad_range') - 1}: Section @rule[10] (bad_range) "
        "skipped due to invalid options",
        f"{path}:{dest}: Section @forwarding[1] option 'dest' specifies invalid value 'dmz'",
        f"{path}:{dest - 2}: Section @forwarding[1] skipped due to invalid options",
    ]
    table = nft_table(netns)
    # the unknown option is only reported (fw4 does the same): ext_web is in
    assert 'tcp dport 80 counter packets 0 bytes 0 accept comment "!fw4: ext_web"' in table
    assert "bad_range" not in table and "dmz" not in table

    check = firewall(netns, "check", config)  # every problem in one run, as restart says them
    assert check.returncode == 2 and check.stdout == ""
    assert check.stderr.splitlines() == lines


@root
@needs_root
def test_uci_syntax_error_keeps_the_loaded_ruleset(netns, tmp_path):
    config = tmp_path / "config"
    write_config(config)
    assert firewall(netns, "restart", config).returncode == 0
    before = nft_table(netns)
    assert before

    broken = defaults.FIREWALL + EXT_WEB + "\tbogus_command 'x'\n"
    path = write_config(config, broken)
    proc = firewall(netns, "restart", config)
    assert proc.returncode == 2
    assert proc.stderr == f"{path}:{len(broken.splitlines())}: invalid command 'bogus_command'\n"
    assert nft_table(netns) == before

    (config / "firewall").write_text(defaults.FIREWALL + "config rule\n\toption name 'x\n")
    proc = firewall(netns, "reload", config)
    assert proc.returncode == 2 and "unterminated" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert nft_table(netns) == before


@root
@needs_root
@pytest.mark.parametrize(
    "corruption",
    [
        "this is not nftables\n",  # refused while parsing
        "add rule inet fw4 input_wan jump no_such_chain\n",  # refused while evaluating
    ],
)
def test_ruleset_nft_refuses_keeps_the_loaded_one(netns, tmp_path, corruption):
    config = tmp_path / "config"
    write_config(config)
    assert firewall(netns, "restart", config).returncode == 0
    before = nft_table(netns)

    # a real nft, handed the compiled text plus one line it refuses
    (tmp_path / "extra.nft").write_text(corruption)
    wrapper = script(
        tmp_path / "nft-wrapper",
        f'#!/bin/sh\n{{ cat; cat {tmp_path / "extra.nft"}; }} | {NFT} "$@"\n',
    )
    write_config(config, defaults.FIREWALL + EXT_WEB)  # a change that would show
    proc = firewall(netns, "restart", config, "--nft", str(wrapper))
    assert proc.returncode == 1
    assert proc.stderr.startswith("nft refused the ruleset; the firewall loaded before")
    assert "Error:" in proc.stderr
    assert nft_table(netns) == before

    assert firewall(netns, "restart", config).returncode == 0  # the real nft takes it
    assert "ext_web" in nft_table(netns)
