"""Give freed tile buffers back to the operating system between batches, so RSS stays bounded.

The engine allocates and frees tile-sized buffers (tens of MB) thousands of times from several
threads. glibc's malloc raises its mmap threshold dynamically and keeps such buffers in its heap
arenas after they are freed, so resident memory creeps up to hundreds of MB above what is live.

This module used to pin the mmap threshold at 1 MiB for the whole process. That bounded RSS but
made every large torch temporary a fresh ``mmap`` that page-faults on first touch: the Vim
forward ran 1.9× slower (``nuclei-he`` on the sample slide 19.1 s vs 11.8 s) and so did any later
torch work in the same process. Instead, :func:`release_free_memory` calls ``malloc_trim(0)``
when resident memory has grown: it hands the free pages of every arena back (``madvise``) in
about a millisecond and changes nothing about how memory is allocated. Not after every batch:
memory handed back is page-faulted in again by the next allocation (normalising a 256² tile
then took 1.7 ms instead of 0.4), so :class:`MemoryReleaser` trims only when RSS has grown by
more than a slack since the last trim — RSS stays within the slack of what is live, whatever
the image size.

Trims still cost page faults: every buffer handed back is zero-filled by the kernel when touched
again (on the 50k² bench slide, 2.8 M faults and a third of the run's CPU time in the kernel).
Two settings cut that. The slack is 256 MiB (was 64). And the command line caps glibc at one
malloc arena before any thread starts (:func:`limit_malloc_arenas`): each thread otherwise gets
its own arena, every arena keeps its own freed tile buffers, and RSS grows with the thread
count, so trims came often. One arena: the 50k² case 35 → 29 s (kernel time 20 → 9 s) at the
same peak RSS, the Vim sample run 10.6–11.0 → 10.2 s. Measurements: docs/segment.md.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from gigavim.malloc import release_free_memory

TRIM_SLACK = 256 << 20
"""Resident bytes a run may gain over its last trim before freed memory is handed back."""

def resident_bytes() -> int | None:
    """This process's resident memory (Linux ``/proc/self/statm``), or None where unknown."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * _page_size()
    except (OSError, ValueError, IndexError):
        return None


@lru_cache(maxsize=1)
def _page_size() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE")


class MemoryReleaser:
    """``release()`` after each batch: trims only once RSS has grown by more than ``slack``
    bytes since the last trim (or since construction), so RSS stays bounded without handing
    back, and faulting in again, every batch's buffers. Where RSS cannot be read, always trims."""

    def __init__(self, slack: int = TRIM_SLACK, rss: Callable[[], int | None] = resident_bytes) -> None:
        self.slack, self._rss = slack, rss
        self._floor = rss()

    def release(self) -> bool:
        """Whether memory was handed back (False: under the slack, or not possible here)."""
        now = self._rss()
        if now is not None and self._floor is not None and now - self._floor <= self.slack:
            return False
        released = release_free_memory()
        self._floor = self._rss()
        return released
