"""Old import path of the benchmark helpers, kept so scripts that use it keep working.

The helpers live in :mod:`gigavim.benchmarks.report`; new code imports them from there.
"""

from __future__ import annotations

from gigavim.benchmarks.report import DOC, machine_info, machine_line, markdown_table, update_section

__all__ = ["DOC", "machine_info", "machine_line", "markdown_table", "update_section"]
