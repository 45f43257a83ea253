"""Print a rich table whole at any terminal width: as a table when it fits, else as blocks.

Squeezed into 80 columns, rich cuts cells short ("land-w…") or folds them mid-word. A table
wider than the terminal is printed instead one block per row: the first cell as a heading, then
``header: value`` lines that wrap at spaces, so names are never cut.
"""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


def print_table(console: Console, table: Table) -> None:
    """``table`` as is when its natural width fits ``console``, else row by row."""
    natural = Measurement.get(console, console.options.update_width(1 << 20), table).maximum
    if natural <= console.width:
        console.print(table)
        return
    if table.title:
        console.print(Text(str(table.title), style="bold"), soft_wrap=True)
    headers = [str(column.header) for column in table.columns]
    cells = [list(column.cells) for column in table.columns]
    for row in range(table.row_count):
        values = [str(column[row]) for column in cells]
        console.print(Text(values[0], style="bold"), soft_wrap=True)
        for header, value in zip(headers[1:], values[1:], strict=True):
            if value:
                line = Text("  ")
                line.append(f"{header}: ", style="dim")
                line.append(value)
                console.print(line)
