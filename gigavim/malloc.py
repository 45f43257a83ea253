"""glibc malloc controls (ctypes): hand freed memory back, cap the number of arenas.

Kept out of :mod:`gigavim.engine` so the command line can call :func:`limit_malloc_arenas`
before it imports anything heavy (torch, zarr) or starts a thread. Why these matter for the
engine: :mod:`gigavim.engine.memory`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from functools import cache
from typing import Any

MALLOC_ARENAS = 1
"""glibc malloc arenas the command line allows (``GIGAVIM_MALLOC_ARENAS`` overrides; 0: glibc's own)."""
_M_ARENA_MAX = -8  # mallopt parameter (malloc.h)


@cache
def libc_function(name: str) -> Any:
    """A C library function (ctypes), or None where there is none to load (Windows)."""
    if sys.platform == "win32":
        return None
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def _glibc(name: str) -> Any:
    """A glibc malloc function, or None on another libc/platform (musl, macOS, Windows)."""
    return libc_function(name) if sys.platform.startswith("linux") else None


def release_free_memory() -> bool:
    """Return memory malloc holds but nobody uses to the OS; False where that is not possible."""
    trim = _glibc("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True


def arena_cap(arenas: int | None = None) -> int | None:
    """How many malloc arenas gigavim should allow (``arenas``, else ``GIGAVIM_MALLOC_ARENAS``,
    else :data:`MALLOC_ARENAS`), or None where the user chose: ``MALLOC_ARENA_MAX``, a
    ``GLIBC_TUNABLES`` arena setting, or 0."""
    if arenas is None:
        arenas = int(os.environ.get("GIGAVIM_MALLOC_ARENAS", MALLOC_ARENAS))
    if (arenas <= 0 or "MALLOC_ARENA_MAX" in os.environ
            or "arena_max" in os.environ.get("GLIBC_TUNABLES", "")):
        return None
    return arenas


def limit_malloc_arenas(arenas: int | None = None) -> bool:
    """Cap glibc's malloc arenas for this process at :func:`arena_cap` (``M_ARENA_MAX``); whether
    a cap was set.

    Only effective before a second thread first allocates (glibc fixes its arena limit then),
    so the command line and benchmark children call it first thing. Left alone when the user
    chose or off glibc. Library callers who want the same can start Python with
    ``MALLOC_ARENA_MAX=1``.
    """
    cap = arena_cap(arenas)
    mallopt = _glibc("mallopt")
    return cap is not None and mallopt is not None and mallopt(_M_ARENA_MAX, cap) == 1


__all__ = ["MALLOC_ARENAS", "arena_cap", "libc_function", "limit_malloc_arenas", "release_free_memory"]
