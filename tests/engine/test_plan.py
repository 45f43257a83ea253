"""Working resolution and tile-grid arithmetic: what a user's --mpp/--gsd/--level turns into."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gigavim.engine.plan import TileGrid, axis_origins, resolve_resolution
from gigavim.errors import UsageError

from .fakes import ArraySource


def _pyramid(kind: str = "slide", **kw) -> ArraySource:
    return ArraySource([np.zeros((800, 1000, 3), np.uint8), np.zeros((200, 250, 3), np.uint8)],
                       kind=kind, **kw)


def test_mpp_matching_a_level_snaps_to_that_level() -> None:
    res = resolve_resolution(_pyramid(mpp=0.5), mpp=2.0)
    assert (res.level, res.downsample, res.read_factor, res.shape) == (1, 4.0, 1.0, (200, 250))
    assert res.mpp == pytest.approx(2.0)


def test_mpp_between_levels_reads_the_finer_level_and_resamples() -> None:
    res = resolve_resolution(_pyramid(mpp=0.5), mpp=1.0)
    assert res.level == 0 and res.read_factor == pytest.approx(2.0)
    assert res.shape == (400, 500) and res.mpp == pytest.approx(1.0)
    res = resolve_resolution(_pyramid(mpp=0.5), mpp=3.0)  # 6× : level 1 (4×) then 1.5×
    assert res.level == 1 and res.read_factor == pytest.approx(1.5)
    assert res.shape == (133, 167)


def test_model_resolution_is_the_default_and_explicit_options_win() -> None:
    src = _pyramid(mpp=0.25)
    assert resolve_resolution(src, model_mpp=0.5).downsample == pytest.approx(2.0)
    assert resolve_resolution(src, mpp=1.0, model_mpp=0.5).downsample == pytest.approx(4.0)
    assert resolve_resolution(src, level=1, model_mpp=0.5).level == 1
    assert resolve_resolution(src).downsample == 1.0  # no resolution anywhere: native pixels


def test_rasters_use_metres() -> None:
    src = _pyramid(kind="raster", mpp=None, gsd_m=10.0)
    res = resolve_resolution(src, gsd_m=40.0)
    assert res.level == 1 and res.gsd_m == pytest.approx(40.0) and res.mpp is None
    # a slide model's µm/px means nothing for a raster: native pixels, not an error
    assert resolve_resolution(src, model_mpp=0.5, model_gsd_m=None).downsample == 1.0
    assert resolve_resolution(src, model_gsd_m=20.0).downsample == pytest.approx(2.0)


def test_missing_pixel_size_fails_clearly() -> None:
    src = _pyramid(kind="image", mpp=None)
    with pytest.raises(UsageError, match=r"no physical pixel size.*--image-mpp.*--level"):
        resolve_resolution(src, model_mpp=0.5)
    with pytest.raises(UsageError, match="no physical pixel size"):
        resolve_resolution(src, mpp=1.0)
    assert resolve_resolution(src, level=0, model_mpp=0.5).shape == (800, 1000)


@pytest.mark.parametrize("kwargs, message", [
    ({"mpp": 1.0, "level": 0}, "only one of"),
    ({"level": 5}, "level 5 does not exist"),
    ({"mpp": -1.0}, "positive"),
])
def test_bad_resolution_options(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve_resolution(_pyramid(), **kwargs)


def test_axis_origins_cover_the_axis_with_tiles_inside_it() -> None:
    assert axis_origins(1000, 256, 32) == (256, (0, 224, 448, 672, 744))
    assert axis_origins(100, 256, 32) == (100, (0,))  # smaller than a tile: one tile, image-sized


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 700), w=st.integers(1, 700), tile=st.integers(16, 200), frac=st.floats(0, 0.5))
def test_grid_tiles_and_blocks_are_consistent(h: int, w: int, tile: int, frac: float) -> None:
    grid = TileGrid((h, w), tile, int(tile * frac))
    covered = np.zeros((h, w), int)
    for t in grid.tiles():
        win = grid.tile_window(*t)
        assert win.y >= 0 and win.x >= 0 and win.y + win.height <= h and win.x + win.width <= w
        covered[win.y:win.y + win.height, win.x:win.x + win.width] += 1
        for b in grid.blocks_covered(*t):
            assert t in grid.tiles_covering(*b)
    assert covered.min() >= 1
    blocks = np.zeros((h, w), int)
    for b in grid.blocks():
        win = grid.block_window(*b)
        blocks[win.y:win.y + win.height, win.x:win.x + win.width] += 1
        for t in grid.tiles_covering(*b):
            assert b in grid.blocks_covered(*t)
    assert (blocks == 1).all()  # blocks partition the image


@pytest.mark.parametrize("tile, overlap", [(8, 0), (64, 40), (64, -1)])
def test_bad_tile_options(tile: int, overlap: int) -> None:
    with pytest.raises(UsageError):
        TileGrid((500, 500), tile, overlap)
