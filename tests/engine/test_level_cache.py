"""A small slide's level 0 in memory: the same pixels and outputs as window reads, only where fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from gigavim.data import sample_slide
from gigavim.engine import level_cache, segment
from gigavim.engine.level_cache import LevelCache, cached_level0
from gigavim.engine.plan import resolve_resolution
from gigavim.io import open_image
from gigavim.io.base import Window

from .fakes import ArraySource, FunctionSource, blobs, tiny_bundle

SAMPLE = sample_slide()


@pytest.fixture(scope="module")
def sample() -> tuple[object, LevelCache]:
    src = open_image(SAMPLE)  # the bundled CMU-1 region: a single-level slide read by OpenSlide
    return src, LevelCache(src)


@pytest.mark.parametrize("window", [Window(0, 0, 256, 256), Window(1000, 777, 300, 410),
                                    Window(-64, -64, 256, 256), Window(2900, 2100, 256, 256),
                                    Window(5000, 5000, 64, 64)])
def test_reads_of_the_cached_sample_slide_equal_openslides(sample, window: Window) -> None:
    src, cached = sample
    got = cached.read(0, window)
    np.testing.assert_array_equal(got, src.read(0, window))
    assert got.dtype == np.uint8 and got.shape == (window.height, window.width, 3)
    np.testing.assert_array_equal(cached.read_valid(0, window), src.read_valid(0, window))
    assert not got.flags.writeable or not np.shares_memory(got, cached.pixels)


def test_only_small_slides_whose_mask_reads_level0_are_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    slide = FunctionSource(600, 800, blobs, mpp=0.5)
    at = resolve_resolution(slide, level=0)
    assert isinstance(cached_level0(slide, at), LevelCache)
    assert cached_level0(slide, at, mask_from_model=True) is slide  # the model reads an overview
    raster = ArraySource([np.zeros((600, 800, 3), np.uint8)], kind="raster", mpp=None)
    assert cached_level0(raster, resolve_resolution(raster, level=0)) is raster
    monkeypatch.setattr(level_cache, "CACHE_PIXELS", 600 * 800 - 1)
    assert cached_level0(slide, at) is slide


def test_a_cached_run_writes_the_same_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = FunctionSource(700, 900, blobs, mpp=0.5)
    outs = {}
    for name, budget in (("cached", level_cache.CACHE_PIXELS), ("windows", 0)):
        monkeypatch.setattr(level_cache, "CACHE_PIXELS", budget)
        out = tmp_path / f"{name}.zarr"
        segment(src, [out], model=tiny_bundle(), level=0, tile=128, overlap=32, probabilities=True,
                with_image=True, device="cpu")
        root = zarr.open_group(str(out), mode="r")
        outs[name] = [root[k][:] for k in ("labels/segmentation/0", "probabilities/0", "0")]
    assert outs["cached"][0].any() and not outs["cached"][0].all()
    for a, b in zip(outs["cached"], outs["windows"], strict=True):
        np.testing.assert_array_equal(a, b)
