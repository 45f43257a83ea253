"""A mixed input folder (synthetic slide, real raster, bad inputs) and a running dask cluster."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gigavim.io.synthetic import write_synthetic_slide

GOOD_RASTER = "geo/world.rgb.tif"  # 512×256 RGB, land-water model: a second or two
BAD_INPUTS = ("bad_input/broken.svs", "bad_input/corrupt.tif")


@pytest.fixture(scope="session")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory, real_data: Path) -> Path:
    """Two good inputs (a slide, a raster), two bad ones and a sidecar file that is no image."""
    folder = tmp_path_factory.mktemp("batch-inputs")
    write_synthetic_slide(folder / "slide.svs", 2000, 2000, mpp=0.5)
    for name in (GOOD_RASTER, *BAD_INPUTS):
        shutil.copy(real_data / name, folder / Path(name).name)
    (folder / "README.txt").write_text("not an image\n")
    return folder


@pytest.fixture(scope="session")
def dask_address() -> Iterator[str]:
    """A LocalCluster of two worker processes, started by the test, used through its address."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="session")
def dask_workers(dask_address: str) -> set[str]:
    """The addresses of that cluster's workers."""
    from distributed import Client

    with Client(dask_address) as client:
        return set(client.scheduler_info()["workers"])
