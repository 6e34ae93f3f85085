"""The scorecard of an audit: one verdict and one line of evidence per check.

Pure data and text: the runner fills it, the CLI prints it. The exit code
follows DESIGN.md §5: 1 when any check failed, 0 otherwise (N/A is not a
failure: a network that offers no DHCPv6 cannot be blamed on the node).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Verdict(str, enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    NA = "N/A"


@dataclass(frozen=True)
class Outcome:
    """What a check returns: the verdict and the evidence for it, one line."""

    verdict: Verdict
    evidence: str

    @classmethod
    def passed(cls, evidence: str) -> Outcome:
        return cls(Verdict.PASS, evidence)

    @classmethod
    def failed(cls, evidence: str) -> Outcome:
        return cls(Verdict.FAIL, evidence)

    @classmethod
    def na(cls, evidence: str) -> Outcome:
        return cls(Verdict.NA, evidence)


@dataclass(frozen=True)
class CheckResult:
    check: str  # the name `--only` takes
    criterion: str  # the line of the checklist it judges
    verdict: Verdict
    evidence: str
    seconds: float  # how long the check (stimulus, wait and cleanup) took

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "criterion": self.criterion,
            "verdict": self.verdict.value,
            "evidence": self.evidence,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Scorecard:
    lab: str
    node: str
    interface: str | None = None  # the target's interface the stimuli went to
    stimulus: str | None = None  # the node that sent them
    stimulus_interface: str | None = None
    results: list[CheckResult] = field(default_factory=list)

    def add(self, result: CheckResult) -> None:
        self.results.append(result)

    def counts(self) -> dict[Verdict, int]:
        out = dict.fromkeys(Verdict, 0)
        for r in self.results:
            out[r.verdict] += 1
        return out

    @property
    def verdict(self) -> Verdict:
        """FAIL if any check failed, PASS if any passed, else N/A."""
        counts = self.counts()
        if counts[Verdict.FAIL]:
            return Verdict.FAIL
        return Verdict.PASS if counts[Verdict.PASS] else Verdict.NA

    @property
    def exit_code(self) -> int:
        return 1 if self.verdict is Verdict.FAIL else 0

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.results)

    def ordered(self, order: list[str]) -> list[CheckResult]:
        """Results in checklist order (they may have run in another one)."""
        rank = {name: i for i, name in enumerate(order)}
        return sorted(self.results, key=lambda r: rank.get(r.check, len(rank)))

    def to_json(self, order: list[str] | None = None) -> dict[str, Any]:
        results = self.ordered(order) if order else self.results
        return {
            "lab": self.lab,
            "node": self.node,
            "interface": self.interface,
            "from": self.stimulus,
            "from_interface": self.stimulus_interface,
            "verdict": self.verdict.value,
            "seconds": round(self.seconds, 3),
            "checks": [r.to_json() for r in results],
        }

    def render(self, order: list[str] | None = None) -> str:
        """The scorecard for people: a header, a line per check, a summary."""
        results = self.ordered(order) if order else self.results
        head = f"audit of {self.node} in lab {self.lab}"
        if self.stimulus:
            head += (
                f": stimuli from {self.stimulus} ({self.stimulus_interface}) to {self.interface}"
            )
        width = max([len("CHECK"), *(len(r.check) for r in results)])
        lines = [head, f"{'CHECK':<{width}}  RESULT  {'TIME':>6}  EVIDENCE"]
        for r in results:
            lines.append(
                f"{r.check:<{width}}  {r.verdict.value:<6}  {format_seconds(r.seconds):>6}  "
                f"{r.evidence}"
            )
        counts = self.counts()
        lines.append(
            f"{self.verdict.value}: {counts[Verdict.PASS]} pass, {counts[Verdict.FAIL]} fail, "
            f"{counts[Verdict.NA]} n/a in {format_seconds(self.seconds)}"
        )
        return "\n".join(lines) + "\n"


def format_seconds(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds >= 10 else f"{seconds:.2f}s"
