"""`palmnet plan` on mutated example files: exit 0, or exit 2 with a message; never a
traceback, never a hang, never unbounded memory (issue 11).

Each case mutates one of examples/*.yaml or one of the UCI files under
examples/*/ (and the stock dhcp and firewall files an openwrt node falls back
on): byte flips, lines deleted, duplicated or swapped, and YAML- or UCI-aware
changes (values swapped or replaced by huge numbers, long strings, names with a
newline, special addresses; nesting deepened; anchors, aliases, an alias bomb,
tags and merge keys inserted). `palmnet plan` then runs in-process (Typer's
CliRunner) in a forked child with an address-space limit (RLIMIT_AS), a CPU
time limit (RLIMIT_CPU) and a wall-clock alarm, so the bounds are real: a case
that allocates too much dies with MemoryError (a traceback, which fails the
test), one that computes too long or waits is killed, and each must finish in
2 s of CPU time (CPU, not wall time: other work on a shared machine would make
a wall-clock bound flaky). The bounds detect hangs and blow-ups; they are not
speed measurements (benchmarks/ measure speed). PALMNET_FUZZ_EXAMPLES raises
the number of cases for a longer campaign (with `--timeout 0`)."""

from __future__ import annotations

import functools
import json
import os
import re
import resource
import shutil
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from palmnet.cli.app import build_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LABS = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
# UCI files: the examples' own, and the stock files written into a folder that lacks them.
UCI = sorted(str(p.relative_to(EXAMPLES)) for p in EXAMPLES.glob("*/*") if p.is_file())
STOCK = ["palm-router/dhcp", "palm-router/firewall"]
SECONDS = 2  # CPU time of one case: the machine's load does not make it flaky
WALL_SECONDS = 20  # a case still running after this is a hang, whatever the load
MEMORY = 768 * 1024 * 1024  # address space a case may add to what the test process has
# 120 cases (about 35 s here) keep the suite inside its 25 minutes; a deeper run:
# PALMNET_FUZZ_EXAMPLES=2000.
EXAMPLES_TO_RUN = int(os.environ.get("PALMNET_FUZZ_EXAMPLES", "120"))

NUMBERS = ["0", "-1", "4294967295", "4294967296", "1000000000000", "10001", "1e308", ".inf",
           ".nan", "9" * 40, "0x10", "0o17", "1.5", "-0"]  # fmt: skip
ADDRESSES = ["ff02::1/64", "::/64", "::1/64", "224.0.0.1/4", "127.0.0.1/8", "fe80::1/10",
             "fe80::1/64", "::/0", "2001:db8::/64", "0.0.0.0/0", "192.0.2.0/24",
             "2001:db8:ebbd:2080::1/64", "::ffff:192.0.2.1/96", "255.255.255.255/32",
             "2001:db8::1", "192.0.2.1"]  # fmt: skip
WORDS = ["lo", "all", "default", "br-lan", "eth0", "router", "up", "", "~", "true", "[]", "{}",
         "x" * 5000, "a" * 16, "w1", "-", "*undefined", "@wan", "@lo"]  # fmt: skip
YAML_ONLY = ['"rel\\n"', '"\\0"', '"a\\tb"', "!foo [1]", "!!omap [a: 1]", "!!set {a}",
             "!!binary aGk=", "!!timestamp 2001-12-14", "!!int x", "!!python/object:os.system x",
             "[a, [b, [c]]]", "{<<: {a: 1}}", '"\\u2028x"', "'it''s'"]  # fmt: skip
UCI_ONLY = ["'a\nb'", '"unterminated', "'\\'", "x;y", "'#'", "'192.0.2.1 192.0.2.2'", "'²'",
            "'/lan/'", "'1.2.3.4#99999'", "'12h'", "'infinite'", "'0'", "'-5'"]  # fmt: skip
TAGS = ["!foo", "!!omap", "!!set", "!!binary", "!!str", "!!int", "!!float", "!!timestamp",
        "!!python/tuple", "!"]  # fmt: skip
KEYS = ['"rel\\n"', "lo", "all", "a" * 5000, "1", "<<", "x y", "w1", "eth0", "UPPER", "-a", "a-"]
BOMB = "".join(
    f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 8) if i else ', '.join(['x'] * 8)}]\n"
    for i in range(9)
)
YAML_VALUE = re.compile(r"(?<=: )(?![&*!|>{\[])[^\s,\[\]{}#][^,\[\]{}#\n]*")
YAML_KEY = re.compile(r"^( *)([A-Za-z0-9_.-]+)(?=:)", re.M)
UCI_VALUE = re.compile(r"^\t(?:option|list) (\w+) (.*)$", re.M)


@dataclass(frozen=True)
class Outcome:
    code: int | None  # None: the child died (signal)
    stderr: str
    seconds: float
    error: str = ""  # a traceback, if the CLI let an exception through


# -- running one case ---------------------------------------------------------------------
@functools.cache
def _app() -> object:
    """The CLI, warmed up once in this process (its verbs import lazily), so that each
    forked child starts with everything imported."""
    app = build_app()
    CliRunner().invoke(app, ["plan", str(EXAMPLES / "palm.yaml")])
    return app


def _vm_size() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _child(lab: Path, out: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_vm_size() + MEMORY, resource.RLIM_INFINITY))
    resource.setrlimit(resource.RLIMIT_CPU, (SECONDS + 2, SECONDS + 3))
    signal.alarm(WALL_SECONDS)  # wall clock too: a case that waits is a hang as well
    start = time.process_time()
    result = CliRunner().invoke(_app(), ["plan", str(lab)])
    error = ""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        exc = result.exception
        error = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    report = {
        "code": result.exit_code,
        "stderr": result.stderr,
        "seconds": time.process_time() - start,
        "error": error,
    }
    os.write(out, json.dumps(report).encode())


def plan_isolated(lab: Path) -> Outcome:
    """`palmnet plan LAB` in a forked child under the time and memory bounds."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            _child(lab, write)
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 1 << 16):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        why = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"status {status}"
        return Outcome(None, f"the child died ({why}): a hang or a blow-up", WALL_SECONDS)
    report = json.loads(b"".join(chunks))
    return Outcome(report["code"], report["stderr"], report["seconds"], report["error"])


# -- mutations ------------------------------------------------------------------------------
def _pick(data: st.DataObject, items: list[re.Match[str]]) -> re.Match[str] | None:
    return data.draw(st.sampled_from(items)) if items else None


def _replace(text: str, match: re.Match[str] | None, new: str, group: int = 0) -> str:
    if match is None:
        return text
    return text[: match.start(group)] + new + text[match.end(group) :]


def _lines(data: st.DataObject, text: str) -> str:
    lines = text.split("\n")
    i = data.draw(st.integers(0, len(lines) - 1))
    j = data.draw(st.integers(0, len(lines) - 1))
    how = data.draw(st.sampled_from(["delete", "duplicate", "swap"]))
    if how == "delete":
        del lines[i]
    elif how == "duplicate":
        lines.insert(i, lines[i])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def _two(text: str, a: re.Match[str], b: re.Match[str], new_a: str, new_b: str) -> str:
    """`text` with matches a and b (a before b, not overlapping) replaced."""
    return text[: a.start()] + new_a + text[a.end() : b.start()] + new_b + text[b.end() :]


def _pair(data: st.DataObject, values: list[re.Match[str]]) -> tuple[re.Match[str], ...]:
    first, second = data.draw(st.lists(st.sampled_from(values), min_size=2, max_size=2))
    return tuple(sorted({m.start(): m for m in (first, second)}.values(), key=re.Match.start))


def _yaml_value(data: st.DataObject, text: str, values: list[re.Match[str]]) -> str:
    new = data.draw(st.sampled_from(NUMBERS + ADDRESSES + WORDS + YAML_ONLY))
    return _replace(text, _pick(data, values), new)


def _yaml_swap(data: st.DataObject, text: str, values: list[re.Match[str]]) -> str:
    pair = _pair(data, values) if len(values) >= 2 else ()
    return _two(text, *pair, pair[1].group(), pair[0].group()) if len(pair) == 2 else text


def _yaml_deepen(data: st.DataObject, text: str, values: list[re.Match[str]]) -> str:
    depth = data.draw(st.integers(1, 300))
    match = _pick(data, values)
    return _replace(text, match, "[" * depth + (match.group() if match else "") + "]" * depth)


def _yaml_alias(data: st.DataObject, text: str, values: list[re.Match[str]]) -> str:
    pair = _pair(data, values) if values else ()
    if len(pair) == 2:
        return _two(text, *pair, f"&a {pair[0].group()}", "*a")
    return _replace(text, pair[0], f"&a {pair[0].group()}") if pair else text


def _yaml_bomb(data: st.DataObject, text: str, values: list[re.Match[str]]) -> str:
    return BOMB + text if data.draw(st.booleans()) else _replace(text, _pick(data, values), "*b8")


def _yaml_tag(data: st.DataObject, text: str, values: list[re.Match[str]]) -> str:
    tag = data.draw(st.sampled_from(TAGS))
    match = _pick(data, values)
    return _replace(text, match, f"{tag} {match.group() if match else ''}")


def _yaml_merge(data: st.DataObject, text: str, values: list[re.Match[str]]) -> str:
    key = _pick(data, list(YAML_KEY.finditer(text)))
    end = text.find("\n", key.end()) if key is not None else -1
    if key is None or end < 0:
        return text
    text = text[:end] + f"\n{key.group(1)}  <<: *a" + text[end:]
    return _replace(text, _pick(data, list(YAML_VALUE.finditer(text))), "&a {x: 1}")


def _yaml_key(data: st.DataObject, text: str, values: list[re.Match[str]]) -> str:
    new = data.draw(st.sampled_from(KEYS))
    return _replace(text, _pick(data, list(YAML_KEY.finditer(text))), new, group=2)


def _yaml_count(data: st.DataObject, text: str, values: list[re.Match[str]]) -> str:
    number = data.draw(st.sampled_from(NUMBERS))
    return re.sub(r"count: \S+", f"count: {number}", text, count=1)


YAML_MUTATIONS = [_yaml_value, _yaml_swap, _yaml_deepen, _yaml_alias, _yaml_bomb, _yaml_tag,
                  _yaml_merge, _yaml_key, _yaml_count]  # fmt: skip


def _yaml(data: st.DataObject, text: str) -> str:
    mutation = data.draw(st.sampled_from(YAML_MUTATIONS))
    return mutation(data, text, list(YAML_VALUE.finditer(text)))


def _uci(data: st.DataObject, text: str) -> str:
    values = list(UCI_VALUE.finditer(text))
    how = data.draw(st.sampled_from(["value", "add"]))
    if how == "value":
        new = data.draw(st.sampled_from(NUMBERS + ADDRESSES + WORDS + UCI_ONLY))
        quoted = new if new[:1] in "'\"" else f"'{new}'"
        return _replace(text, _pick(data, values), quoted, group=2)
    option = data.draw(st.sampled_from(["ip6hint", "ip6assign", "gateway", "ipaddr", "netmask",
                                        "ip6addr", "reqprefix", "start", "limit", "leasetime",
                                        "device", "ports", "server", "proto", "name", "ula_prefix",
                                        "type", "dhcpv6", "interface"]))  # fmt: skip
    value = data.draw(st.sampled_from(NUMBERS + ADDRESSES + WORDS + UCI_ONLY))
    kind = data.draw(st.sampled_from(["option", "list"]))
    match = _pick(data, values)
    if match is None:
        return text
    end = text.find("\n", match.end())
    line = f"\n\t{kind} {option} {value if value[:1] in chr(39) + chr(34) else repr(value)}"
    return text[:end] + line + text[end:] if end >= 0 else text + line


def _flip(data: st.DataObject, raw: bytes) -> bytes:
    if not raw:
        return raw
    i = data.draw(st.integers(0, len(raw) - 1))
    return raw[:i] + bytes([data.draw(st.integers(0, 255))]) + raw[i + 1 :]


def _mutate(data: st.DataObject, text: str, aware: object) -> bytes:
    for _ in range(data.draw(st.integers(1, 3))):
        how = data.draw(st.sampled_from(["aware", "aware", "aware", "lines"]))
        text = aware(data, text) if how == "aware" else _lines(data, text)  # type: ignore[operator]
    raw = text.encode("utf-8", "surrogatepass")
    if data.draw(st.integers(0, 5)) == 0:
        raw = _flip(data, raw)
    return raw


def _stock(name: str) -> str:
    from palmnet.openwrt.defaults import DHCP, FIREWALL

    return {"dhcp": DHCP, "firewall": FIREWALL}[name]


# -- the test -------------------------------------------------------------------------------
def _check(lab: Path) -> None:
    _app()
    outcome = plan_isolated(lab)
    shown = lab.read_bytes()[:3000].decode("utf-8", "replace")
    assert outcome.code is not None, f"{outcome.stderr}\n--- case:\n{shown}"
    assert not outcome.error, f"{outcome.error}\n--- case:\n{shown}"
    assert outcome.code in (0, 2), f"exit {outcome.code}: {outcome.stderr}\n--- case:\n{shown}"
    assert "Traceback" not in outcome.stderr
    if outcome.code == 2:
        assert outcome.stderr.startswith("palmnet: "), outcome.stderr
    assert outcome.seconds < SECONDS, f"{outcome.seconds:.2f} s\n--- case:\n{shown}"


@settings(
    max_examples=EXAMPLES_TO_RUN,
    deadline=None,  # the child's own alarm bounds each case (fork and exec vary)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_plan_on_mutated_examples_never_crashes(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory(prefix="palmnet-fuzz-") as tmp:
        root = Path(tmp)
        shutil.copytree(EXAMPLES, root, dirs_exist_ok=True)
        target = data.draw(st.sampled_from(LABS + UCI + STOCK))
        path = root / target
        if target in LABS:
            lab = path
            path.write_bytes(_mutate(data, path.read_text(), _yaml))
        else:
            folder = target.split("/")[0]
            lab = root / {"palm-router": "palm.yaml"}.get(folder, "cascade.yaml")
            text = path.read_text() if path.exists() else _stock(target.split("/")[1])
            path.write_bytes(_mutate(data, text, _uci))
        _check(lab)
