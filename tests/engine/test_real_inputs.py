"""segment() on the real rasters and slides: output geometry, georeference and nodata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import zarr
from rasterio.transform import Affine

from gigavim.engine import NODATA_LABEL, segment

from .fakes import tiny_bundle


def test_cog_overview_is_used_and_the_transform_scaled_exactly(real_data: Path, tmp_path: Path) -> None:
    path, out = real_data / "geo" / "cogeo.tif", tmp_path / "cog.tif"
    ground = 0.4722861  # m/px on the ground: 0.597 Web Mercator metres × cos(37.7°)
    result = segment(path, [out], model=tiny_bundle(tile=256, overlap=32), gsd=2 * ground)
    assert (result.level, result.downsample, result.shape) == (1, 2.0, (512, 512))
    with rasterio.open(path) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs and dst.shape == (512, 512)
        assert dst.transform == src.transform * Affine.scale(2)


def test_nan_pixels_get_the_nodata_label(real_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "nan.zarr"
    segment(real_data / "geo" / "float_nan.tif", [out], model=tiny_bundle(), bands="1,1,1")  # 1 band, asked
    root = zarr.open_group(str(out), mode="r")
    labels = root["labels/segmentation/0"][:]
    with rasterio.open(real_data / "geo" / "float_nan.tif") as src:
        nan = np.isnan(src.read(1))
    assert labels.shape == (2, 3) and nan.sum() == 1
    assert (labels[nan] == NODATA_LABEL).all() and (labels[~nan] < 2).all()
    assert root.attrs["gigavim"]["nodata_label"] == NODATA_LABEL


def test_four_band_float64_scene_keeps_its_grid(real_data: Path, tmp_path: Path) -> None:
    path, out = real_data / "geo" / "ms1.tif", tmp_path / "ms1.tif"
    model = tiny_bundle(bands=4, tile=128, overlap=16)
    model.meta.input_scale = 1 / 1753.0  # raw DN-like values up to ~1753
    result = segment(path, [out], model=model)
    with rasterio.open(path) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs and dst.transform == src.transform and dst.shape == (300, 300)
        labels = dst.read(1)
    assert set(np.unique(labels)) <= {0, 1} and result.gsd_m == pytest.approx(1.0, rel=1e-3)


def test_pyramid_level_of_a_generic_tiff_slide(real_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "boxes.zarr"
    result = segment(real_data / "wsi" / "boxes.tiff", [out], model=tiny_bundle(), level=2)
    attrs = zarr.open_group(str(out), mode="r").attrs["gigavim"]
    assert result.shape == (62, 75) and result.downsample == pytest.approx(4.016, abs=1e-3)
    assert attrs["scale_to_level0"] == pytest.approx(result.downsample)
    assert attrs["mpp"] == pytest.approx(352.78 * result.downsample, rel=1e-3)


def test_a_level_read_as_is_keeps_its_own_x_and_y_factors(real_data: Path, tmp_path: Path) -> None:
    """boxes.tiff level 3 is 37×31 for 300×250: 8.108 in x, 8.065 in y (OpenSlide's downsample,
    8.086, is their mean); outputs place the map with each axis's own factor."""
    out = tmp_path / "boxes.zarr"
    result = segment(real_data / "wsi" / "boxes.tiff", [out], model=tiny_bundle(tile=32, overlap=8),
                     level=3)
    attrs = zarr.open_group(str(out), mode="r").attrs["gigavim"]
    assert result.shape == (31, 37)
    assert attrs["scale_to_level0_yx"] == pytest.approx([250 / 31, 300 / 37])
    assert attrs["pixel_size_yx"] == pytest.approx([352.7778 * 250 / 31, 352.7778 * 300 / 37], rel=1e-5)
