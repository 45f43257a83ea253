"""Give freed tile buffers back to the operating system between batches, so RSS stays bounded.

The engine allocates and frees tile-sized buffers (tens of MB) thousands of times from several
threads. glibc's malloc raises its mmap threshold dynamically and keeps such buffers in its heap
arenas after they are freed, so resident memory creeps up to hundreds of MB above what is live.

This module used to pin the mmap threshold at 1 MiB for the whole process. That bounded RSS but
made every large torch temporary a fresh ``mmap`` that page-faults on first touch: the Vim
forward ran 1.9× slower (``nuclei-he`` on the sample slide 19.1 s vs 11.8 s) and so did any later
torch work in the same process. Instead, :func:`release_free_memory` calls ``malloc_trim(0)``
after each batch: it hands the free pages of every arena back (``madvise``) in about a
millisecond and changes nothing about how memory is allocated. Measurements: docs/segment.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None on another libc/platform (musl, macOS, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Return memory malloc holds but nobody uses to the OS; False where that is not possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
