"""ImageSource.thumbnail: the same picture whether a level is read whole or window by window."""

from __future__ import annotations

import numpy as np
import pytest

import gigavim.io.base as base
from gigavim.io import open_image


@pytest.mark.parametrize(
    ("name", "max_size"), [("geo/RGB.byte.tif", 128), ("geo/ms1.tif", 64), ("wsi/small.svs", 5)]
)
def test_windowed_thumbnail_matches_whole_read(real_data, monkeypatch, name, max_size):
    with open_image(real_data / name) as src:
        whole = src.thumbnail(max_size)
        monkeypatch.setattr(base, "_WHOLE_READ_PIXELS", 10_000)  # force the bounded path
        windowed = src.thumbnail(max_size)
    assert windowed.shape == whole.shape and windowed.dtype == whole.dtype == src.dtype
    assert max(whole.shape[:2]) == max_size
    # two honest downsamplings (block mean vs anti-aliased resize): same picture, same levels
    a, b = windowed.astype(float).ravel(), whole.astype(float).ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.95
    assert abs(a.mean() - b.mean()) < 0.02 * abs(b.mean())


def test_thumbnail_uses_the_pyramid(real_data):
    with open_image(real_data / "geo/cogeo.tif") as src:
        thumb = src.thumbnail(100)
        assert thumb.shape == (100, 100, 3)
        assert np.abs(thumb.astype(float).mean() - src.thumbnail(1024).mean()) < 3
