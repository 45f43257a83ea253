"""Lanes launch the compiled CPU kernels on their own cores where numba's layer allows it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import torch
from gigavim.kernels import cpu_fused, launch


def _scan(seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    batch, dim, length, n, rank = 2, 40, 300, 16, 3
    u = torch.randn(batch, dim, length, generator=gen)
    xd = torch.randn(batch, length, rank + 2 * n, generator=gen)
    a = -torch.rand(dim, n, generator=gen) - 0.5
    out = torch.zeros(batch, dim, length)
    cpu_fused.scan_pass(u, a, (xd, rank, rank + n), out, dt_w=torch.randn(dim, rank, generator=gen) * 0.3,
                        delta_bias=torch.zeros(dim), softplus=True, D=torch.ones(dim))
    return out


def test_threads_that_are_not_lanes_take_turns() -> None:
    _scan(0)  # a first launch picks numba's threading layer
    assert launch.launch_slot() is launch._LOCK


def test_a_lane_launches_alone_on_its_share_where_the_layer_allows() -> None:
    _scan(0)
    main_threads = numba.get_num_threads()
    seen: dict[str, object] = {}

    def lane() -> None:
        launch.use_own_cores(1)
        seen["slot"] = launch.launch_slot()
        seen["threads"] = numba.get_num_threads()

    worker = threading.Thread(target=lane)
    worker.start()
    worker.join()
    if numba.threading_layer() in ("omp", "tbb"):
        assert seen["slot"] is not launch._LOCK and seen["threads"] == 1
    else:  # workqueue aborts on concurrent launches: lanes keep taking turns
        assert seen["slot"] is launch._LOCK
    assert numba.get_num_threads() == main_threads  # the lane's count is its own


def test_concurrent_lanes_compute_what_one_thread_does() -> None:
    expected = [_scan(seed) for seed in range(6)]

    def in_lane(seed: int) -> torch.Tensor:
        launch.use_own_cores(1)
        return _scan(seed)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(in_lane, range(6)))
    for got, want in zip(results, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
