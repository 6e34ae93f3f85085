"""Several input problems reported together as one `InputError`.

A lab file with three mistakes should cost the user one run, not three: the
loader collects every problem it finds and raises them at once, one per line,
sorted by line. The first problem fills the usual `InputError` fields so code
that reads `.line` or `.key` still sees the earliest mistake.
"""

from __future__ import annotations

from dataclasses import dataclass

from palmnet.errors import InputError


@dataclass(frozen=True, order=True)
class Problem:
    """One mistake: where it is (line, key path) and what is wrong."""

    line: int
    key: str
    message: str


class TopologyError(InputError):
    """Every problem found in one lab file; renders one `FILE:LINE: key: msg` per line."""

    def __init__(self, problems: list[Problem], *, file: str) -> None:
        # Stable sort by line only: problems on one line keep discovery order.
        unique = list(dict.fromkeys(problems))
        self.problems = sorted(unique, key=lambda p: p.line)
        first = self.problems[0]
        super().__init__(first.message, file=file, line=first.line, key=first.key or None)

    def render(self) -> str:
        return "\n".join(
            InputError(p.message, file=self.file, line=p.line, key=p.key or None).render()
            for p in self.problems
        )


class ProblemsInFiles(InputError):
    """Several files' problems at once (two openwrt nodes, each with its own broken
    UCI folder): each error renders as itself, one after the other."""

    def __init__(self, errors: list[InputError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.message, file=first.file, line=first.line, key=first.key)

    def render(self) -> str:
        return "\n".join(e.render() for e in getattr(self, "errors", [])) or super().render()
