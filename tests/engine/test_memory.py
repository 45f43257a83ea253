"""``release_free_memory``: freed heap memory goes back to the OS without pinning malloc's settings."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gigavim.engine.memory import MemoryReleaser, release_free_memory, resident_bytes

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


@GLIBC
def test_releaser_trims_only_once_rss_has_grown_past_its_slack():
    """Trimming every batch made the next batch fault its buffers in again; growth past the
    slack is what must be handed back (RSS then bounded by what is live plus the slack)."""
    rss = iter([100, 150, 199, 260, 170, 200]).__next__  # MiB; construction reads the first
    releaser = MemoryReleaser(slack=100, rss=rss)
    assert releaser.release() is False  # +50
    assert releaser.release() is False  # +99
    assert releaser.release() is True   # +160: trims, then 170 is the new floor
    assert releaser.release() is False  # +30 over 170
    assert abs(resident_bytes() / 2**20 - _rss_mib()) < 64
