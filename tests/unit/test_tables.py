"""Tables print their cells as they are (cli/tables.py)."""

from __future__ import annotations

import pytest

from palmnet.cli.grid import print_grid
from palmnet.cli.tables import rows_table


@pytest.mark.parametrize(
    "cell",
    [
        "unicast [rip1 16:20:01.123] * (120/2)",  # BIRD's route line
        "[fd00::1]:53",  # an address with a port
        "ip6 saddr [/bogus] drop",  # a closing tag Rich would refuse
    ],
)
def test_bracketed_cells_are_printed_verbatim(
    cell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    print_grid(rows_table([{"what": cell}]))
    assert cell in capsys.readouterr().out
