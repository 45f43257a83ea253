"""segment(image_mpp=...): the pixel size of an input that records none (a PNG or TIFF tile)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gigavim.engine import segment
from gigavim.errors import UsageError

from .fakes import ArraySource, tiny_bundle


def _tile() -> ArraySource:
    rng = np.random.default_rng(0)
    return ArraySource([rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)], kind="image", mpp=None)


def test_without_a_pixel_size_a_resolution_bound_model_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no physical pixel size.*--image-mpp"):
        segment(_tile(), [tmp_path / "a.zarr"], model=tiny_bundle(mpp=0.5))
    assert list(tmp_path.iterdir()) == []


def test_image_mpp_sets_the_pixel_size_the_model_resolution_is_measured_in(tmp_path: Path) -> None:
    result = segment(_tile(), [tmp_path / "a.zarr"], model=tiny_bundle(mpp=0.5), image_mpp=0.25)
    assert result.mpp == pytest.approx(0.5) and result.shape == (60, 80)
    native = segment(_tile(), [tmp_path / "b.zarr"], model=tiny_bundle(mpp=0.5), image_mpp=0.5)
    assert native.shape == (120, 160)


def test_an_image_that_records_its_pixel_size_keeps_it(tmp_path: Path) -> None:
    src = _tile()
    src.mpp = 0.5
    result = segment(src, [tmp_path / "a.zarr"], model=tiny_bundle(mpp=0.5), image_mpp=0.25)
    assert result.shape == (120, 160)


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_a_pixel_size_that_is_not_positive_is_refused(tmp_path: Path, value: float) -> None:
    with pytest.raises(UsageError, match="--image-mpp must be a positive"):
        segment(_tile(), [tmp_path / "a.zarr"], model=tiny_bundle(mpp=0.5), image_mpp=value)


def test_a_raster_takes_its_pixel_size_from_its_georeference(tmp_path: Path) -> None:
    src = ArraySource([np.zeros((64, 64, 3), np.uint8)], kind="raster", mpp=None, gsd_m=10.0)
    with pytest.raises(UsageError, match="--image-mpp is for microscopy"):
        segment(src, [tmp_path / "a.tif"], model=tiny_bundle(gsd_m=10.0), image_mpp=0.5)
