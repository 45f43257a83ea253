"""The unit of work a dask worker runs: one ``gigavim.segment`` call, failures as data.

A :class:`gigavim.GigavimError` (bad input, unusable model, existing output) is a verdict, not
bad luck: it is returned as a failed record so dask does not retry it and the other inputs go
on. Anything else (a bug, a flaky disk) propagates, so dask's ``retries`` gets another try and
the client records the exception if it keeps failing. A worker that dies mid-run is rescheduled
by the scheduler; ``resume=True`` lets the new attempt continue from the work dir.

The segmentation's own dask work (the writers' ``da.store``, lazy source views) runs on a local
thread pool inside the task. Left to the default, a ``compute`` inside a task goes to the
cluster and *secedes* the task's thread, so the worker starts its next input while this one is
still writing: one worker then runs several segmentations at once (memory and torch threads
oversubscribed). A worker runs exactly one segmentation per task thread.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import dask
from gigavim.pipelines.manifest import utc_now


def worker_torch_threads(torch_threads: int | None) -> int:
    """Threads torch may use in this worker: given, or the cores shared among its task threads."""
    if torch_threads:
        return torch_threads
    try:
        from distributed import get_worker

        nthreads = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        nthreads = 1
    return max(1, (os.cpu_count() or 1) // max(1, nthreads))


def segment_one(source: str, outputs: list[str], segment_kwargs: dict[str, Any],
                torch_threads: int | None = None) -> dict[str, Any]:
    """Segment one input; returns the fields of an :class:`~pipelines.manifest.InputRecord`."""
    from gigavim.engine import segment
    from gigavim.errors import GigavimError

    threads = worker_torch_threads(torch_threads)
    _limit_threads(threads)
    started, t0 = utc_now(), time.perf_counter()
    record: dict[str, Any] = {"started": started, "worker": _worker_address()}
    try:
        with warnings.catch_warnings(), dask.config.set(scheduler="threads", num_workers=threads):
            warnings.simplefilter("ignore", UserWarning)  # the result carries them
            result = segment(source, outputs, **segment_kwargs)
    except GigavimError as err:
        message = str(err) if source in str(err) else f"{source}: {err}"  # always name the input
        record.update(status="failed", error=message, error_type=type(err).__name__)
    else:
        record.update(status="ok", summary=result.to_dict(), warnings=list(result.warnings))
    record.update(seconds=round(time.perf_counter() - t0, 3), finished=utc_now())
    return record


def _limit_threads(threads: int) -> None:
    """torch's intra-op pool and numba's parallel scan loops share the same budget."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is optional for the engine
        return
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None  # called outside a worker (tests, a synchronous run)
