"""cli/grid.py draws what Rich draws, character for character, or hands over to Rich."""

from __future__ import annotations

import io
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from palmnet.cli.grid import WIDTH, Grid, print_grid

TEXT = st.text(alphabet=string.ascii_letters + string.digits + " :/.()[]-\n", max_size=30)


def rich_text(grid: Grid, styled: bool) -> str:
    out = io.StringIO()
    console = Console(
        file=out,
        width=WIDTH,
        emoji=False,
        markup=False,
        force_terminal=styled,
        color_system="standard" if styled else None,
    )
    console.print(grid.to_rich())
    return out.getvalue()


@st.composite
def grids(draw: st.DrawFn) -> Grid:
    ncols = draw(st.integers(1, 5))
    columns = draw(st.lists(TEXT.filter(lambda t: "\n" not in t), min_size=ncols, max_size=ncols))
    grid = Grid(
        [c.upper() for c in columns],
        draw(st.none() | st.text(alphabet=string.ascii_letters + " ", max_size=40)),
        draw(st.booleans()),
    )
    for row in draw(st.lists(st.lists(TEXT, min_size=ncols, max_size=ncols), max_size=6)):
        grid.add_row(*row)
    return grid


@settings(max_examples=300, deadline=None)
@given(grids(), st.booleans())
def test_same_text_as_rich(grid: Grid, styled: bool) -> None:
    text = grid.draw(styled)
    if text is not None:
        assert text == rich_text(grid, styled)


def test_ls_like_table_is_drawn_here() -> None:
    grid = Grid(("NAME", "STATE", "IPV4", "IPV6", "KIND"), "plan of lab x (x.example)")
    grid.add_row("r", "RUNNING", "", "2001:db8::1 (eth0)\n2001:db8:1::1 (eth1)", "router")
    grid.add_row("h1", "RUNNING\ndnsmasq exited", "192.0.2.7 (eth0)", "", "host")
    assert grid.draw(False) == rich_text(grid, False)
    assert grid.draw(True) == rich_text(grid, True)


@pytest.mark.parametrize(
    "cell",
    [
        "caf\u00e9 \u4e2d\u6587",  # width from Unicode tables
        "a\tb",  # Rich expands tabs
        "x" * (WIDTH + 1),  # wider than the console: Rich shrinks the column
    ],
)
def test_other_cells_go_to_rich(cell: str, capsys: pytest.CaptureFixture[str]) -> None:
    grid = Grid(("WHAT",))
    grid.add_row(cell)
    assert grid.draw(False) is None
    print_grid(grid)
    assert capsys.readouterr().out == rich_text(grid, False)
