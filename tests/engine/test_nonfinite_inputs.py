"""Non-finite pixels never reach a model, and a model's non-finite output is never written.

Pixels are computed as float32: NaN, ±inf and float64 values beyond float32's range (an
undeclared −DBL_MAX fill) become nodata in the readers, so a run gives the nodata label there
instead of garbage (or, through the scan kernels, a segmentation fault).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from gigavim.engine import segment
from gigavim.errors import ModelError
from gigavim.io import open_image
from gigavim.io.base import Window
from gigavim.models.bundle import ModelBundle

from .fakes import tiny_bundle

DBL_MAX = np.finfo(np.float64).max


def _float64_scene(path: Path) -> np.ndarray:
    """A 3-band float64 GeoTIFF without nodata: a −DBL_MAX fill, 1e300 and NaN blocks; returns
    the mask of pixels that hold real data."""
    rng = np.random.default_rng(0)
    data = rng.uniform(0, 255, (3, 96, 96))
    data[:, :30, :30] = -DBL_MAX
    data[:, 60:, 70:] = 1e300
    data[1, 40:50, :] = np.nan
    with rasterio.open(path, "w", driver="GTiff", width=96, height=96, count=3, dtype="float64",
                       crs="EPSG:32631", transform=from_origin(500000, 4000000, 10, 10)) as ds:
        ds.write(data)
    return np.isfinite(data).all(axis=0) & (np.abs(data) < 1e38).all(axis=0)


def test_values_beyond_float32_are_nodata_for_the_reader(tmp_path: Path) -> None:
    valid = _float64_scene(tmp_path / "scene.tif")
    with open_image(tmp_path / "scene.tif") as src:
        assert src.nodata is None and src.dtype == np.float64
        assert np.array_equal(src.read_valid(0, Window(0, 0, 96, 96)), valid)


def test_a_float64_scene_with_an_undeclared_fill_gives_nodata_labels_there(tmp_path: Path) -> None:
    valid = _float64_scene(tmp_path / "scene.tif")
    model = tiny_bundle(gsd_m=10.0, tile=64, overlap=16)
    segment(tmp_path / "scene.tif", [tmp_path / "labels.tif"], model=model)
    with rasterio.open(tmp_path / "labels.tif") as ds:
        labels = ds.read(1)
    assert (labels[~valid] == 255).all()
    assert set(np.unique(labels[valid])) <= {0, 1}


def test_the_default_vim_model_runs_such_a_scene_to_a_clean_result(tmp_path: Path) -> None:
    """In a subprocess: before the fix this killed the process (SIGSEGV in the CPU scan)."""
    valid = _float64_scene(tmp_path / "scene.tif")
    out = tmp_path / "labels.tif"
    run = subprocess.run([sys.executable, "-m", "gigavim", "segment", str(tmp_path / "scene.tif"),
                          "-o", str(out), "-q"], capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr  # (numba may note its compile)
    with rasterio.open(out) as ds:
        labels = ds.read(1)
    assert (labels[~valid] == 255).all() and (labels[valid] != 255).all()


class _NaNNet(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 2, *x.shape[2:])
        out[:, :, 5, 5] = float("nan")
        return out


def test_non_finite_logits_are_a_model_error_and_nothing_is_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    with rasterio.open(tmp_path / "scene.tif", "w", driver="GTiff", width=64, height=64, count=3,
                       dtype="uint8", crs="EPSG:32631", transform=from_origin(0, 0, 10, 10)) as ds:
        ds.write(rng.integers(0, 255, (3, 64, 64), dtype=np.uint8))
    meta = tiny_bundle(gsd_m=10.0).meta
    with pytest.raises(ModelError, match="non-finite outputs"):
        segment(tmp_path / "scene.tif", [tmp_path / "labels.tif"], model=ModelBundle(_NaNNet(), meta))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]
