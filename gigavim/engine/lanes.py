"""Run a CPU network as two single-threaded lanes instead of one call on torch's whole thread pool.

A tile-sized torch op parallelised over torch's intra-op (OpenMP) threads ends in a barrier, and
the threads spin while they wait for the slowest one. Small networks (a U-Net with 8–64 channels,
the FPN head's GroupNorms, instance norms, activations) run hundreds of such ops per batch, so on
a few cores the barriers cost more than they save — and when the host is busy, one descheduled
thread stalls its partner, which spins. Two batches through the network at once, each on
``threads // 2`` intra-op threads, keep the same cores busy without the barriers: the U-Net of
``bench engines`` took ~2× less CPU time on an idle 2-core host and 14× less under load
(docs/benchmarks.md, "Engine speed: before / after"). The price is one more batch of activations
in memory (``nuclei-he``: ~+450 MiB at tile 256, batch 4), still independent of the image size.

OpenMP's thread count is per calling thread, so each lane sets its own; ``torch.set_num_threads``
also sets the process-wide default for threads started later, which :class:`NetworkLanes` puts
back when it closes. On a GPU, or with one torch thread, there is one lane: the calling thread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import torch

from gigavim.kernels.launch import use_own_cores

T = TypeVar("T")
MAX_LANES = 2
"""More lanes would hold more batches' activations at once for little gain on a few cores."""


def lane_count(device: torch.device, threads: int | None = None) -> int:
    """How many batches run through the network at once: 2 on a CPU with ≥ 2 torch threads, else 1."""
    if device.type != "cpu":
        return 1
    threads = torch.get_num_threads() if threads is None else threads
    return max(1, min(MAX_LANES, threads))


def _start_lane(threads: int) -> None:
    """A lane thread's own share of the cores: torch's intra-op threads and the compiled kernels'."""
    torch.set_num_threads(threads)
    use_own_cores(threads)


class NetworkLanes:
    """``submit(fn, ...)`` runs ``fn`` in one of ``lanes`` threads (each with an equal share of the
    caller's torch threads), or right away in the calling thread when there is one lane."""

    def __init__(self, lanes: int) -> None:
        self.lanes = max(1, lanes)
        self._threads = torch.get_num_threads()
        self._pool: ThreadPoolExecutor | None = None
        if self.lanes > 1:
            share = max(1, self._threads // self.lanes)
            self._pool = ThreadPoolExecutor(max_workers=self.lanes, thread_name_prefix="gigavim-net",
                                            initializer=_start_lane, initargs=(share,))

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        if self._pool is not None:
            return self._pool.submit(fn, *args)
        done: Future[T] = Future()
        try:
            done.set_result(fn(*args))
        except Exception as exc:  # handed to the caller through the future, as from a lane
            done.set_exception(exc)
        return done

    def close(self) -> None:
        """Wait for running batches, then restore the caller's torch thread count as the default."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            torch.set_num_threads(self._threads)

    def __enter__(self) -> NetworkLanes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
