"""A dask worker runs one segmentation at a time, even while the writers compute with dask."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

import pytest

import gigavim.engine


def test_a_single_thread_worker_never_runs_two_segmentations_at_once(
        real_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The OME-Zarr writer's ``da.store`` inside the task must not hand the worker's only thread
    to the next input (distributed secedes a task that computes on the cluster)."""
    from distributed import Client, LocalCluster
    from gigavim.pipelines.task import segment_one

    real_segment, lock = gigavim.engine.segment, threading.Lock()
    running, most = [0], [0]

    def counted(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return real_segment(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(gigavim.engine, "segment", counted)
    inputs = []
    for i in range(2):
        inputs.append(tmp_path / f"scene{i}.tif")
        shutil.copy(real_data / "geo" / "world.rgb.tif", inputs[-1])
    # In-process workers (threads) so the counting wrapper sees every task.
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        futures = [client.submit(segment_one, str(p), [str(p.with_suffix(".zarr"))],
                                 {"model": "land-water"}, 1, pure=False) for p in inputs]
        records = client.gather(futures)
    assert [r["status"] for r in records] == ["ok"] * 2, records
    assert most[0] == 1
