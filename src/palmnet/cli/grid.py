"""Tables drawn exactly as Rich draws its default table, without Rich for plain text.

Why not Rich alone: importing it and laying out a 100-node `ls` took 70-90 ms of a
300 ms command (benchmarks/bringup.py, issue 15), most of it per-cell segment work that
a table of short printable-ASCII cells does not need. Such a table is drawn here, the
same characters as Rich's (tests/unit/test_grid.py compares the two). Anything else
(other characters, whose width needs Unicode tables, or a table wider than the console,
which Rich shrinks) is handed to Rich.
"""

from __future__ import annotations

import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

WIDTH = 200  # the console width every table is drawn for (`lxc ls`-wide rows)
PLAIN = frozenset(string.printable) - frozenset("\t\r\x0b\x0c")
BOLD, ITALIC, RESET = "\x1b[1m", "\x1b[3m", "\x1b[0m"


@dataclass
class Grid:
    """Columns, rows of text cells (a newline starts a line within a cell), a title."""

    columns: Sequence[str]
    title: str | None = None
    lines: bool = True  # a rule between rows, as `lxc ls` draws
    rows: list[tuple[str, ...]] = field(default_factory=list)

    def add_row(self, *cells: str) -> None:
        self.rows.append(cells)

    def draw(self, styled: bool) -> str | None:
        """The table's text, or None where only Rich draws it right."""
        cells = [tuple(self.columns), *self.rows]
        if any(not PLAIN.issuperset(c) for row in cells for c in row):
            return None
        if not all(c.strip() for c in self.columns):  # Rich styles a blank header its own way
            return None
        if self.title and self.title != self.title.strip():  # and strips a title's ends
            return None
        split = [[c.split("\n") for c in row] for row in cells]
        widths = [
            max(len(line) for row in split for line in row[k]) for k in range(len(self.columns))
        ]
        total = sum(widths) + 3 * len(widths) + 1
        if total > WIDTH or len(self.title or "") > total:
            return None
        return "".join(self._lines(split, widths, total, styled))

    def _lines(
        self, split: list[list[list[str]]], widths: list[int], total: int, styled: bool
    ) -> list[str]:
        def rule(left: str, fill: str, mid: str, right: str) -> str:
            return left + mid.join(fill * (w + 2) for w in widths) + right + "\n"

        out = []
        if self.title:
            title = _centred(self.title, total)
            out.append(f"{ITALIC}{title}{RESET}\n" if styled else title + "\n")
        out.append(rule("┏", "━", "┳", "┓"))
        out += _row(split[0], widths, "┃", BOLD if styled else "")
        out.append(rule("┡", "━", "╇", "┩"))
        for k, row in enumerate(split[1:]):
            if k and self.lines:
                out.append(rule("├", "─", "┼", "┤"))
            out += _row(row, widths, "│", "")
        out.append(rule("└", "─", "┴", "┘"))
        return out

    def to_rich(self) -> Table:
        from rich.table import Table

        t = Table(title=self.title, show_lines=self.lines, header_style="bold")
        for col in self.columns:
            t.add_column(col, no_wrap=True)
        for row in self.rows:
            t.add_row(*row)
        return t


def _centred(text: str, width: int) -> str:
    """Rich's centring: the odd space goes to the right."""
    if len(text) >= width:
        return text
    left = (width - len(text)) // 2
    return " " * left + text + " " * (width - len(text) - left)


def _row(cells: list[list[str]], widths: list[int], bar: str, style: str) -> list[str]:
    height = max(len(c) for c in cells)
    out = []
    for n in range(height):
        parts = []
        for lines, w in zip(cells, widths, strict=True):
            text = (lines[n] if n < len(lines) else "").ljust(w)
            parts.append(
                f"{style} {RESET}{style}{text}{RESET}{style} {RESET}" if style else f" {text} "
            )
        out.append(bar + bar.join(parts) + bar + "\n")
    return out


def print_grid(grid: Grid) -> None:
    """Cells are data, never Rich markup: with markup on, a BIRD route's
    `[rip1 16:20:01]` or an address like `[fd00::1]:53` was taken for a style tag
    and vanished, and `[/x]` in a cell raised MarkupError."""
    text = grid.draw(styled=sys.stdout.isatty())
    if text is not None:
        sys.stdout.write(text)
        return
    from rich.console import Console

    Console(width=WIDTH, emoji=False, markup=False).print(grid.to_rich())
