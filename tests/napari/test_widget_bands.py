"""The napari widget's job takes the same --bands mapping and refuses the same way as the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from gigavim.napari._segment_job import segment_steps
from rasterio.transform import Affine

from gigavim.errors import ModelError


def _run(steps):
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def test_widget_job_refuses_a_grey_band_then_runs_it_mapped(tmp_path: Path) -> None:
    scene = tmp_path / "grey.tif"
    with rasterio.open(scene, "w", driver="GTiff", width=48, height=40, count=1, dtype="uint8",
                       crs="EPSG:32633", transform=Affine(10, 0, 500_000, 0, -10, 5_000_000)) as ds:
        ds.write(np.full((1, 40, 48), 90, np.uint8))
    with pytest.raises(ModelError, match=r"has 1 band \(gray\) but model 'land-water' wants 3 bands"):
        _run(segment_steps(scene, tmp_path / "a.ome.zarr", model="land-water"))
    result = _run(segment_steps(scene, tmp_path / "a.ome.zarr", model="land-water", bands="1,1,1"))
    assert result.input_check["bands"] == [1, 1, 1] and not result.warnings
