"""When a daemon that died is started again, and when palmnet gives up on it.

OpenWrt's procd keeps its services with `respawn THRESHOLD TIMEOUT RETRY`
(3600 5 5 by default): a run shorter than the threshold is a crash, the next
start waits TIMEOUT seconds, and after RETRY crashes in a row the service
stays down. palmnet does the same for a lab's daemons, with a lab's pace: a
first restart after 0.2 s (a DNS server that was killed should answer again
before a user notices), doubling with each crash in a row up to 5 s, given
up after 5 crashes in a row within 60 s of their start (a daemon that keeps
dying would otherwise restart forever). A run that lasted past the threshold
starts the count again.

Pure: the supervisor (lab/supervisor.py) applies it and keeps the record in
the lab's journal, so `ls` and `up` see what happened.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

THRESHOLD = 60.0  # s: a run shorter than this counts as a crash
FIRST_DELAY = 0.2  # s before the first restart
MAX_DELAY = 5.0
RETRY = 5  # crashes in a row before giving up

RUNNING = "running"
RESTARTING = "restarting"  # died, a restart is due
FAILED = "failed"  # given up on: `palmnet up` on the lab tries again


@dataclass(frozen=True)
class Record:
    """What the journal keeps of one daemon's life (kind `respawn`, name NODE/SERVICE)."""

    state: str = RUNNING
    restarts: int = 0  # restarts by the supervisor since the lab (or node) started
    crashes: int = 0  # deaths in a row that came before THRESHOLD
    last_exit: str = ""  # how it last died ("killed by signal 9", "exited with status 1")
    last_death: float = 0.0  # time.time() of that death

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def died(record: Record, ran: float, how: str, now: float) -> Record:
    """The record after a death, `ran` seconds after the daemon's start. The RETRY-th
    crash in a row is the last: given up on, and a daemon given up on has no more
    deaths to count (only `up` starts it again, with a fresh record)."""
    if record.state == FAILED:
        return record
    crashes = record.crashes + 1 if ran < THRESHOLD else 1
    state = FAILED if crashes >= RETRY else RESTARTING
    return replace(record, state=state, crashes=crashes, last_exit=how, last_death=now)


def delay(record: Record) -> float:
    """Seconds to wait before restarting after `record.crashes` crashes in a row."""
    return min(FIRST_DELAY * 2 ** max(record.crashes - 1, 0), MAX_DELAY)


def restarted(record: Record) -> Record:
    return replace(record, state=RUNNING, restarts=record.restarts + 1)
