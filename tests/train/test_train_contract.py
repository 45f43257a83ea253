"""What a training run records as its input contract: dtype, band names, value range, scaling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gigavim.errors import UsageError
from gigavim.train.contract import training_contract
from gigavim.train.dataset import TrainImage
from gigavim.train.metrics import IGNORE_LABEL


def image(pixels: np.ndarray, labels: np.ndarray | None = None) -> TrainImage:
    labels = np.zeros(pixels.shape[:2], np.uint8) if labels is None else labels
    return TrainImage(pixels, labels, Path("x.tif"))


def test_uint8_images_get_rgb_names_and_fixed_1_over_255() -> None:
    c = training_contract([image(np.zeros((8, 8, 3), np.uint8))])
    assert c.bands == ["red", "green", "blue"] and c.dtype == "uint8"
    assert c.value_range == [[0.0, 255.0]] * 3 and c.scaling == {"method": "fixed", "scale": 1 / 255}


def test_uint16_images_get_per_band_percentiles_of_labelled_pixels_only() -> None:
    rng = np.random.default_rng(0)
    bands = [rng.uniform(100, 200, (64, 64)), rng.uniform(1000, 5000, (64, 64))]
    pixels = np.stack(bands, -1).astype(np.uint16)
    labels = np.zeros((64, 64), np.uint8)
    pixels[:, :8] = 0  # nodata collar, read as 0 and labelled ignore: not part of the range
    labels[:, :8] = IGNORE_LABEL
    c = training_contract([image(pixels, labels)], names=["B4", "B8"], sensor="Sentinel-2")
    assert c.dtype == "uint16" and c.bands == ["B4", "B8"] and c.sensor == "Sentinel-2"
    assert c.scaling["method"] == "percentile"
    (lo1, hi1), (lo2, hi2) = c.value_range
    assert 100 <= lo1 < 103 and 197 < hi1 <= 200 and 1000 <= lo2 < 1060 and 4940 < hi2 <= 5000
    assert c.scaling["low"] == [lo1, lo2] and c.scaling["high"] == [hi1, hi2]


def test_fixed_scale_for_non_8bit_data_needs_a_factor() -> None:
    img = image(np.full((4, 4, 1), 3000, np.uint16))
    assert training_contract([img], scale=1e-4).scaling == {"method": "fixed", "scale": 1e-4}
    with pytest.raises(UsageError, match="needs --scale"):
        training_contract([img], scaling="fixed")
    with pytest.raises(UsageError, match="--band-names gives 2 names but the training images have 1 band"):
        training_contract([img], names=["a", "b"])
    with pytest.raises(UsageError, match="--scale is for --scaling fixed"):
        training_contract([img], scaling="percentile", scale=0.5)
