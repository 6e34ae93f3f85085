"""What BIRD 2.0.12 accepts in a `routing:` section, checked where the file says it.

The limits are BIRD's own (its config grammar, proto/*/config.Y of 2.0.12),
so a value the plan accepts is one BIRD loads and means as written:

- numbers in bird.conf are 32-bit (cf-lex.l: "Number out of range" above
  4294967295), and RIP and OSPF timers are whole seconds;
- Babel's hello and update intervals are 16-bit centiseconds on the wire:
  10 ms to 655.35 s ("Hello interval must be in range 10 ms - 655 s");
- OSPF's hello interval is 1-65535 s; OSPFv3 carries the dead interval in 16
  bits (hello.c), and BIRD sends a longer one cut to 16 bits, which every
  neighbour then refuses as "dead interval mismatch": 2-65535 s here;
- a BFD interval is a 32-bit count of microseconds (at most 4294.967295 s),
  and palmnet writes it in whole milliseconds; at least 1 ms;
- a RIP metric of 16 is unreachable (BIRD's `infinity`).

`interface_problems` takes plain values so that the topology (where the file
wrote them, with its lines) and the BIRD adapter (a defence for plans made
elsewhere) ask the same question.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

PROTOCOL_OPTIONS = {
    "ripng": {"update", "timeout", "garbage", "cost"},
    "babel": {"type", "hello", "update", "rxcost"},
    "ospf3": {"hello", "dead", "cost"},
}
BIRD_NUMBER_MAX = 0xFFFF_FFFF
RIP_INFINITY = 16
BABEL_INTERVAL = (0.01, 655.35, "10 ms to 655.35 s")
OSPF_HELLO = (1, 65535, "1 to 65535 s")
OSPF3_DEAD = (2, 65535, "2 to 65535 s")
BIRD_SECONDS = (1, BIRD_NUMBER_MAX, f"1 to {BIRD_NUMBER_MAX} s")
OSPF_DEFAULT_HELLO = 10
BFD_INTERVAL = (0.001, 4294.967, "1 ms to 4294.967 s")

Problem = tuple[str, str]  # (key below the interface, message)


def _range(key: str, value: float, low: float, high: float, text: str, why: str) -> list[Problem]:
    if low <= value <= high:
        return []
    return [(key, f"{value:g} s is outside {text} ({why})")]


def _whole_seconds(protocol: str, key: str, value: float) -> list[Problem]:
    if not math.isfinite(value) or not float(value).is_integer():
        return [
            (
                key,
                f"{value:g} s: BIRD 2 takes {protocol} timers in whole seconds "
                "(use BFD for sub-second failure detection)",
            )
        ]
    return []


def option_problems(protocol: str, key: str, value: object) -> list[Problem]:
    """One option's value as BIRD reads it (the option is known to exist)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return []  # types are the model's job
    if protocol == "babel" and key in ("hello", "update"):
        return _range(key, value, *BABEL_INTERVAL, "Babel's 16-bit centiseconds")
    if protocol in ("ripng", "ospf3") and key in ("update", "timeout", "garbage", "hello", "dead"):
        whole = _whole_seconds(protocol, key, value)
        if whole:
            return whole
        if protocol == "ospf3" and key == "hello":
            return _range(key, value, *OSPF_HELLO, "BIRD's OSPF hello interval")
        if protocol == "ospf3" and key == "dead":
            return _range(key, value, *OSPF3_DEAD, "OSPFv3 carries it in 16 bits")
        return _range(key, value, *BIRD_SECONDS, "BIRD's numbers are 32-bit")
    if protocol == "ripng" and key == "cost" and value >= RIP_INFINITY:
        return [(key, f"{value}: a RIP metric of {RIP_INFINITY} or more is unreachable")]
    return []


def relation_problems(protocol: str, values: Mapping[str, object]) -> list[Problem]:
    """How one interface's options relate (OSPF: dead longer than hello)."""
    dead, hello = values.get("dead"), values.get("hello", OSPF_DEFAULT_HELLO)
    if protocol != "ospf3" or not isinstance(dead, (int, float)):
        return []
    if isinstance(hello, (int, float)) and dead <= hello:
        return [
            (
                "dead",
                f"{dead:g} s is not longer than the hello interval ({hello:g} s): "
                "neighbours would be declared dead between hellos",
            )
        ]
    return []


def interface_problems(protocol: str, values: Mapping[str, object]) -> list[Problem]:
    """Every option of one interface (defaults overlaid), and how they relate."""
    out: list[Problem] = []
    for key, value in values.items():
        if key in PROTOCOL_OPTIONS[protocol]:
            out += option_problems(protocol, key, value)
    return out + relation_problems(protocol, values)


def bfd_problems(interval: float) -> list[Problem]:
    """A BFD interval as BIRD's 32-bit microseconds, written in whole milliseconds."""
    return _range("interval", interval, *BFD_INTERVAL, "BIRD's 32-bit microseconds")
