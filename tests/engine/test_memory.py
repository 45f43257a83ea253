"""``release_free_memory``: freed heap memory goes back to the OS without pinning malloc's settings."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gigavim.engine.memory import release_free_memory

GLIBC = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")


def _rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


@GLIBC
def test_freed_buffers_in_the_middle_of_the_heap_are_returned():
    """200 MB of heap buffers freed below one still in use stay resident until trimmed."""
    buffers = [np.ones(100_000, dtype=np.uint8) for _ in range(2000)]  # below the mmap threshold
    keep = np.ones(100_000, dtype=np.uint8)  # on top of the heap: free() alone cannot shrink it
    del buffers
    before = _rss_mib()
    assert release_free_memory() is True
    after = _rss_mib()
    assert before - after > 100, (before, after)
    assert keep.sum() == 100_000
