"""The dask.distributed client a batch runs on: a fresh LocalCluster, or a scheduler's address.

Workers are processes (spawned by distributed's nannies, so numba/torch state is never forked)
with one task thread each by default: torch already parallelises one segmentation over cores,
so each worker gets ``cores / (workers × threads)`` torch threads rather than all of them.

Local workers start with glibc's malloc left dynamic and one arena (:func:`worker_environ`).
distributed sets ``MALLOC_TRIM_THRESHOLD_=65536`` in every worker it spawns, and setting either
malloc threshold freezes the other: every buffer over 128 KiB becomes a fresh ``mmap`` that the
kernel zero-fills and later unmaps (TLB shootdowns). A batch of two 20k² slides (vim-tiny, 0.5
µm/px, one worker on 2 cores) spent 34 of its 70 CPU seconds in the kernel and took 40 s; with
the default dropped and one arena, 11 s of kernel time and 25.6 s. The engine bounds its own RSS
(``malloc_trim`` past a slack: :mod:`gigavim.engine.memory`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from gigavim.errors import UsageError

if TYPE_CHECKING:
    from distributed import Client

#: Cores per default worker: one segmentation keeps about this many cores busy with torch.
CORES_PER_WORKER = 4
_DASK_TRIM_DEFAULT = 65536  # distributed's own pre-spawn MALLOC_TRIM_THRESHOLD_


def worker_environ() -> dict[str, str]:
    """distributed's pre-spawn environment for local workers, adjusted for gigavim: its default
    ``MALLOC_TRIM_THRESHOLD_`` dropped (a value the user configured stays) and glibc arenas
    capped at :data:`gigavim.malloc.MALLOC_ARENAS` unless the user chose (``MALLOC_ARENA_MAX``,
    ``GIGAVIM_MALLOC_ARENAS``=0); the thread-count variables (``OMP_NUM_THREADS``…) stay."""
    import dask
    import distributed  # noqa: F401  (its import registers the config defaults read below)

    from gigavim.malloc import arena_cap

    environ = {k: str(v) for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()}
    if environ.get("MALLOC_TRIM_THRESHOLD_") == str(_DASK_TRIM_DEFAULT):
        del environ["MALLOC_TRIM_THRESHOLD_"]
    cap = arena_cap()
    if cap is not None:
        environ.setdefault("MALLOC_ARENA_MAX", str(cap))
    return environ


@dataclass
class ClusterPlan:
    """How the batch's cluster is (or was) set up; stored in the manifest."""

    address: str | None
    n_workers: int | None
    threads_per_worker: int
    torch_threads: int | None  # None: each worker divides its host's cores by its task threads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_cluster(address: str | None, n_workers: int | None, threads_per_worker: int,
                 n_inputs: int) -> ClusterPlan:
    """Defaults from the machine's cores; never more local workers than inputs."""
    if threads_per_worker < 1 or (n_workers is not None and n_workers < 1):
        raise UsageError(f"--workers and threads per worker must be at least 1, "
                         f"got {n_workers} and {threads_per_worker}")
    if address:
        return ClusterPlan(address, None, threads_per_worker, None)
    cores = os.cpu_count() or 1
    workers = n_workers or max(1, cores // CORES_PER_WORKER)
    workers = max(1, min(workers, n_inputs))
    torch_threads = max(1, cores // (workers * threads_per_worker))
    return ClusterPlan(None, workers, threads_per_worker, torch_threads)


@contextmanager
def batch_client(plan: ClusterPlan) -> Iterator[Client]:
    """A connected client; a LocalCluster it starts is shut down on exit."""
    from distributed import Client, LocalCluster

    if plan.address:
        _check_reachable(plan.address)
        try:
            client = Client(plan.address, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise UsageError(f"{plan.address}: cannot connect to a dask scheduler ({exc})") from exc
        with client:
            yield client
        return
    import dask

    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}):
        cluster = LocalCluster(n_workers=plan.n_workers, threads_per_worker=plan.threads_per_worker,
                               processes=True, dashboard_address=None, silence_logs=logging.ERROR)
    with cluster, Client(cluster) as client:
        yield client


def _check_reachable(address: str) -> None:
    """A refused TCP connection fails at once (the client itself would retry until its timeout)."""
    import socket

    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    scheme, location = parse_address(address)
    if scheme not in ("tcp", "tls"):
        return
    host, port = parse_host_port(location)
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as exc:
        raise UsageError(f"{address}: cannot connect to a dask scheduler ({exc.strerror or exc})") from exc
