"""Network lanes: two batches at once on a CPU, same output as one at a time, threads restored."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from gigavim.engine import lanes as lanes_module
from gigavim.engine import segment
from gigavim.engine.lanes import NetworkLanes, lane_count

from .fakes import FunctionSource, blobs, tiny_bundle


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_two_lanes_on_a_cpu_with_two_threads_one_on_a_gpu_or_one_thread() -> None:
    assert lane_count(torch.device("cpu"), threads=2) == 2
    assert lane_count(torch.device("cpu"), threads=16) == 2
    assert lane_count(torch.device("cpu"), threads=1) == 1
    assert lane_count(torch.device("cuda"), threads=16) == 1


def test_each_lane_gets_its_share_of_threads_and_the_callers_count_comes_back(two_threads) -> None:
    seen: dict[str, int] = {}

    def record() -> None:
        seen[threading.current_thread().name] = torch.get_num_threads()

    with NetworkLanes(2) as lanes:
        for f in [lanes.submit(record) for _ in range(4)]:
            f.result()
    assert set(seen.values()) == {1} and all(n.startswith("gigavim-net") for n in seen)
    assert torch.get_num_threads() == 2
    # a thread started afterwards gets the caller's count again, not a lane's
    later: list[int] = []
    t = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    t.start()
    t.join()
    assert later == [2]


def test_one_lane_runs_in_the_calling_thread_and_its_errors_reach_the_caller() -> None:
    lanes = NetworkLanes(1)
    assert lanes.submit(threading.current_thread).result() is threading.current_thread()

    def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        lanes.submit(fail).result()
    lanes.close()


def test_two_lanes_give_the_same_output_as_one(tmp_path: Path, two_threads,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches finish out of order in two lanes; merging stays in batch order, byte for byte."""
    src = FunctionSource(500, 640, blobs, mpp=0.5)
    outs = {}
    for n in (1, 2):
        monkeypatch.setattr(lanes_module, "MAX_LANES", n)
        out = tmp_path / f"lanes{n}.zarr"
        segment(src, [out], model=tiny_bundle(), level=0, tile=128, overlap=32, batch_size=2,
                probabilities=True, device="cpu")
        root = zarr.open_group(str(out), mode="r")
        outs[n] = (root["labels/segmentation/0"][:], root["probabilities/0"][:])
    assert outs[1][0].any()
    np.testing.assert_array_equal(outs[1][0], outs[2][0])
    np.testing.assert_array_equal(outs[1][1], outs[2][1])
