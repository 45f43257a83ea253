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


def _sparse_geotiff(path, side: int, squares: list[tuple[float, float]], size: int = 1024):
    """A real ``side``² GeoTIFF without overviews whose only tiles are ``size``² squares of 200
    (GDAL's SPARSE_OK: the rest of the file is absent, so a 1.6 GP image is a few kB)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    with rasterio.open(path, "w", driver="GTiff", width=side, height=side, count=3, dtype="uint8",
                       crs="EPSG:32631", transform=from_origin(500000, 4000000, 0.5, 0.5), tiled=True,
                       blockxsize=512, blockysize=512, compress="DEFLATE", sparse_ok=True, nodata=0) as ds:
        for cy, cx in squares:
            ds.write(np.full((3, size, size), 200, np.uint8),
                     window=Window(int(cx * side), int(cy * side), size, size))
    return path


def test_a_huge_raster_without_overviews_is_not_read_whole_for_its_thumbnail_or_mask(
        tmp_path, monkeypatch):
    """40,000² px (1.6 GP), no overviews: `info`'s thumbnail and the mask each read one row in 40
    (block rows sampled within the budget, 40 MP), in bounded memory, and still show the squares."""
    import tracemalloc

    from gigavim.io import masks

    budget = 1 << 26  # 67 MP (the default is 268 MP)
    monkeypatch.setattr(base, "THUMBNAIL_READ_BUDGET", budget)
    monkeypatch.setattr(masks, "MASK_READ_BUDGET", budget)
    path = _sparse_geotiff(tmp_path / "huge.tif", 40_000, [(0.25, 0.25), (0.6, 0.7)])
    with open_image(path) as src:
        assert src.level_count == 1 and src.width == src.height == 40_000
        pixels = {"read": 0, "read_valid": 0}
        for name in pixels:
            def counted(level, window, _call=getattr(src, name), _name=name):
                pixels[_name] += window.height * window.width
                return _call(level, window)
            monkeypatch.setattr(src, name, counted)
        tracemalloc.start()
        thumb = src.thumbnail(1024)
        mask = masks.foreground_mask(src)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # one row per block of 39 (thumbnail: 40,000 / 1024 px) or 40 (mask) level rows, of 1.6 GP
    assert pixels["read"] == 1026 * 40_000 and pixels["read_valid"] == 1000 * 40_000
    assert peak < 128 << 20  # (level 0 is 4.8 GB)
    assert thumb.shape == (1024, 1024, 3)
    seen = np.argwhere(thumb[..., 0] > 100) / 1024  # where the squares are, as image fractions
    assert (seen.min(0) >= [0.245, 0.245]).all() and (seen.max(0) <= [0.63, 0.73]).all()
    assert thumb[270, 270, 0] > 100 and thumb[625, 725, 0] > 100 and thumb[100, 100, 0] == 0
    assert mask.mask.shape == (1000, 1000)
    assert mask.fraction == pytest.approx(2 * 1024**2 / 40_000**2, rel=0.3)
