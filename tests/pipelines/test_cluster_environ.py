"""Local batch workers start with glibc's malloc left dynamic and one arena (pipelines/cluster.py)."""

from __future__ import annotations

import os

import dask
import pytest
from gigavim.pipelines.cluster import ClusterPlan, batch_client, worker_environ


def test_dasks_trim_default_goes_and_one_arena_comes(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("GIGAVIM_MALLOC_ARENAS", raising=False)
    env = worker_environ()
    assert "MALLOC_TRIM_THRESHOLD_" not in env  # it froze the mmap threshold: page faults
    assert env["MALLOC_ARENA_MAX"] == "1"
    assert env["OMP_NUM_THREADS"] == "1"  # distributed's thread settings stay


def test_the_users_own_settings_stay(monkeypatch):
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 1000}):
        assert worker_environ()["MALLOC_TRIM_THRESHOLD_"] == "1000"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert "MALLOC_ARENA_MAX" not in worker_environ()  # the workers inherit the user's own
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.setenv("GIGAVIM_MALLOC_ARENAS", "0")
    assert "MALLOC_ARENA_MAX" not in worker_environ()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX process workers")
def test_local_workers_start_with_that_environment(monkeypatch):
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)  # another cluster's, leaked here
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("GIGAVIM_MALLOC_ARENAS", raising=False)
    keys = ("MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_")
    with batch_client(ClusterPlan(None, 1, 1, 1)) as client:
        (seen,) = client.run(lambda: {k: os.environ.get(k) for k in keys}).values()
    assert seen == {"MALLOC_ARENA_MAX": "1", "MALLOC_TRIM_THRESHOLD_": None}
