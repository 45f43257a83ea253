"""A process's own resource use (peak RSS, CPU seconds), standard library only.

Kept free of gigavim and third-party imports so a benchmark child running under another
interpreter (``bench engines``' TIAToolbox case, in a side venv without gigavim) measures
itself with exactly the code every other case uses.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def peak_rss_mib() -> float:
    """This process's peak resident set size since its exec.

    ``VmHWM`` (Linux) rather than ``ru_maxrss``: a child's ``ru_maxrss`` starts at its parent's
    RSS at fork and survives exec, so a child of a big parent (torch imported) would report the
    parent's size, not its own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 2**20)


def cpu_seconds() -> float:
    """This process's user + system CPU time, all threads (torch's spinning workers included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
