"""Resampling tiles to the working grid: exact positions, so overlapping tiles agree."""

from __future__ import annotations

import numpy as np
import pytest

from gigavim.engine.plan import resolve_resolution
from gigavim.engine.reader import TileReader
from gigavim.io.base import Window

from .fakes import ArraySource


def _ramp_source(levels: int = 1) -> ArraySource:
    yy, xx = np.mgrid[0:600, 0:800].astype(np.float32)
    ramp = np.stack([0.5 * yy + 0.25 * xx, yy, xx], axis=-1)
    arrays = [ramp] + [ramp[:: 2**i, :: 2**i] for i in range(1, levels)]
    return ArraySource(arrays, mpp=0.5)


def _expected(win: Window, f: float) -> np.ndarray:
    """A linear image resampled by factor f: the value at each working pixel's centre."""
    yc = (np.arange(win.y, win.y + win.height) + 0.5) * f - 0.5
    xc = (np.arange(win.x, win.x + win.width) + 0.5) * f - 0.5
    return 0.5 * yc[:, None] + 0.25 * xc[None, :]


@pytest.mark.parametrize("mpp, factor", [(0.5, 1.0), (1.0, 2.0), (1.25, 2.5), (0.75, 1.5), (0.4, 0.8)])
def test_tiles_sample_the_linear_image_at_their_exact_centres(mpp: float, factor: float) -> None:
    src = _ramp_source()
    res = resolve_resolution(src, mpp=mpp)
    assert res.read_factor == pytest.approx(factor)
    reader = TileReader(src, res)
    win = Window(40, 60, 64, 80)  # well inside: no edge padding involved
    pixels, valid = reader.read(win)
    assert pixels.shape == (64, 80, 3) and valid.all()
    np.testing.assert_allclose(pixels[..., 0], _expected(win, factor), atol=1e-3)


def test_overlapping_tiles_agree_on_shared_pixels() -> None:
    reader = TileReader(_ramp_source(), resolve_resolution(_ramp_source(), mpp=1.3))
    a, _ = reader.read(Window(10, 10, 100, 100))
    b, _ = reader.read(Window(60, 70, 100, 100))
    np.testing.assert_allclose(a[50:, 60:], b[:50, :40], atol=1e-3)


def test_a_matching_level_is_read_directly() -> None:
    src = _ramp_source(levels=2)
    res = resolve_resolution(src, mpp=1.0)
    reader = TileReader(src, res)
    pixels, _ = reader.read(Window(0, 0, 50, 50))
    assert {lvl for lvl, _ in src.reads} == {1}
    np.testing.assert_array_equal(pixels, src.arrays[1][:50, :50])


def test_validity_is_resampled_with_the_pixels() -> None:
    valid = np.ones((600, 800), bool)
    valid[:, 400:] = False
    src = ArraySource([np.zeros((600, 800, 3), np.uint8)], kind="raster", mpp=None, gsd_m=1.0, valid=valid)
    _pixels, mask = TileReader(src, resolve_resolution(src, gsd_m=2.0)).read(Window(0, 150, 10, 100))
    assert mask[:, :50].all() and not mask[:, 50:].any()


@pytest.mark.parametrize("mpp", [0.5, 1.0, 1.25])
def test_what_marks_nodata_never_reaches_the_pixels(mpp: float) -> None:
    """A float raster's nodata sentinel (GDAL's usual -3.4e38) must not leak into the tile:
    the model would see it next to valid pixels (and a Vim block across the whole tile)."""
    rng = np.random.default_rng(0)
    data = rng.random((96, 96, 1)).astype(np.float32)
    valid = np.ones((96, 96), dtype=bool)
    valid[:, :40] = False
    tiles = []
    for sentinel in (np.float32(-3.4028235e38), np.float32(-9999.0)):
        marked = data.copy()
        marked[~valid] = sentinel
        src = ArraySource([marked], kind="raster", mpp=0.5, nodata=float(sentinel), valid=valid)
        pixels, ok = TileReader(src, resolve_resolution(src, mpp=mpp)).read(Window(0, 0, 48, 48))
        assert np.isfinite(pixels).all()
        tiles.append((pixels, ok))
    np.testing.assert_array_equal(tiles[0][1], tiles[1][1])
    np.testing.assert_array_equal(tiles[0][0], tiles[1][0])


@pytest.mark.parametrize("gsd_m", [2.0, 2.5])
def test_a_working_pixel_half_over_the_edge_keeps_its_data(gsd_m: float) -> None:
    """717 × 791 px at 2 or 2.5 px per working pixel: the last row/column overhangs the raster.
    It holds data (at least half of it) and its value is the mean of the data, not of the fill."""
    data = np.full((717, 791, 1), 100, dtype=np.uint8)
    src = ArraySource([data], kind="raster", mpp=None, gsd_m=1.0, nodata=0)
    res = resolve_resolution(src, gsd_m=gsd_m)
    h, w = res.shape
    pixels, valid = TileReader(src, res).read(Window(h - 40, w - 40, 40, 40))
    assert valid.all()
    np.testing.assert_allclose(pixels, 100, atol=1e-3)


@pytest.mark.parametrize("k", [1, 2, 3, 16, 17])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.bool_, np.float32])
def test_box_mean_equals_numpys_float32_mean_of_each_block(k: int, dtype: type) -> None:
    """The fast strided sum gives numpy's float32 block mean bit for bit (integers exactly)."""
    from gigavim.io.box import box_mean

    rng = np.random.default_rng(k)
    a = (rng.random((3 * k, 5 * k, 2)) * (1 if dtype in (np.bool_, np.float32) else 255 * k)).astype(dtype)
    expected = a.reshape(3, k, 5, k, 2).mean(axis=(1, 3), dtype=np.float32)
    got = box_mean(a, k)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("mpp", [0.5, 1.0, 0.75])
def test_keep_dtype_gives_the_stored_bytes_only_where_nothing_is_resampled(mpp: float) -> None:
    """The engine's reader keeps 8-bit tiles as bytes at the level's own resolution and as exact
    block sums at an integer factor (the same values as the float32 read, once divided); anything
    else resampled stays float32 and unchanged."""
    from gigavim.io.box import mean_of_sums

    yy, xx = np.mgrid[0:600, 0:800]
    src = ArraySource([np.stack([yy % 256, xx % 256, (yy + xx) % 256], axis=-1).astype(np.uint8)], mpp=0.5)
    res = resolve_resolution(src, mpp=mpp)
    win = Window(590, 40, 64, 80)  # over the bottom edge: padding included
    kept, kept_valid = TileReader(src, res, keep_dtype=True).read(win)
    plain, plain_valid = TileReader(src, res).read(win)
    assert plain.dtype == np.float32 and np.array_equal(kept_valid, plain_valid)
    reader = TileReader(src, res, keep_dtype=True)
    assert kept.dtype == {0.5: np.uint8, 1.0: np.uint16, 0.75: np.float32}[mpp]
    assert reader.sum_count == (4 if mpp == 1.0 else 1)
    np.testing.assert_array_equal(mean_of_sums(kept, reader.sum_count), plain)
