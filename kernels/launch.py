"""Who may launch the compiled (numba) CPU kernels at once.

numba's default threading layer (workqueue) aborts the process when two threads launch parallel
kernels at the same time (threaded dask workers, a prefetch thread), and each launch already uses
every core, so callers take turns under one lock. The engine's network lanes are the exception:
each lane is a thread with its own share of the cores, and under a threading layer that takes
concurrent launches (OpenMP, TBB) a lane runs its kernels on its share without waiting for the
other lane's scan — `segment` with a small Vim on 2 cores ran 8–13 % faster (docs/benchmarks.md,
sixth pass). numba's thread count is per calling thread, so a lane's setting stays its own.
"""

from __future__ import annotations

import contextlib
import threading

_LOCK = threading.Lock()
_THREAD = threading.local()
_CONCURRENT_LAYERS = ("omp", "tbb")


def use_own_cores(threads: int) -> None:
    """Mark the calling thread as a lane with ``threads`` cores of its own for the compiled kernels."""
    _THREAD.share = max(1, int(threads))
    _THREAD.own = None  # decided at its first launch


def launch_slot() -> contextlib.AbstractContextManager[object]:
    """Enter around a compiled kernel's launch: the shared lock, or nothing in a lane that may
    launch on its own cores (see the module doc)."""
    share = getattr(_THREAD, "share", 0)
    if share and _launches_alone(share):
        return contextlib.nullcontext()
    return _LOCK


def _launches_alone(share: int) -> bool:
    own = getattr(_THREAD, "own", None)
    if own is None:
        import numba

        try:
            layer = numba.threading_layer()
        except ValueError:  # no parallel launch yet in this process: take turns until there is one
            return False
        own = layer in _CONCURRENT_LAYERS
        if own:
            numba.set_num_threads(min(share, numba.config.NUMBA_NUM_THREADS))
        _THREAD.own = own
    return own
