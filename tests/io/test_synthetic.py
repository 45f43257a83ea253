"""The synthetic slide writer: OpenSlide sees scanner-like pyramids; big slides stream."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from gigavim.io import Window, open_image
from gigavim.io.synthetic import default_level_count, write_synthetic_slide


def test_aperio_slide_opens_with_vendor_mpp_and_levels(tmp_path):
    path = write_synthetic_slide(tmp_path / "s.svs", 1500, 2100, mpp=0.25)
    with open_image(path) as src:
        assert (src.kind, src.vendor) == ("slide", "aperio")
        assert src.mpp == pytest.approx(0.25) and src.objective_power == 40
        assert [(lv.width, lv.height) for lv in src.levels] == [(2100, 1500), (525, 375)]
        assert [lv.downsample for lv in src.levels] == pytest.approx([1.0, 4.0])
        assert src.properties["aperio.AppMag"] == "40"


def test_generic_pyramid_gets_mpp_from_resolution(tmp_path):
    path = write_synthetic_slide(tmp_path / "g.tif", 1000, 1000, mpp=0.5, vendor="generic", levels=3)
    with open_image(path) as src:
        assert src.vendor == "generic-tiff" and src.level_count == 3
        assert src.mpp == pytest.approx(0.5, rel=1e-3)


def test_lossless_gradient_puts_each_pixel_where_it_belongs(tmp_path):
    """Red encodes x and green y (of the pixel centre in level-0 pixels), at every level."""
    height, width = 700, 900
    path = write_synthetic_slide(
        tmp_path / "z.svs", height, width, pattern="gradient", compression="zlib", levels=2, tile=128
    )
    with open_image(path) as src:
        for level in (0, 1):
            lv = src.levels[level]
            pixels = src.read(level, Window(0, 0, lv.height, lv.width)).astype(float)
            x0 = (np.arange(lv.width) + 0.5) * width / lv.width
            y0 = (np.arange(lv.height) + 0.5) * height / lv.height
            np.testing.assert_allclose(pixels[0, :, 0], np.floor(x0 * 255 / width + 0.5), atol=0)
            np.testing.assert_allclose(pixels[:, 0, 1], np.floor(y0 * 255 / height + 0.5), atol=0)
            assert (pixels[..., 2] == 128).all()


def test_tissue_pattern_is_deterministic_blobs_on_white(tmp_path):
    a = write_synthetic_slide(tmp_path / "a.svs", 1024, 1024, seed=3, levels=1)
    b = write_synthetic_slide(tmp_path / "b.svs", 1024, 1024, seed=3, levels=1)
    c = write_synthetic_slide(tmp_path / "c.svs", 1024, 1024, seed=4, levels=1)
    whole = Window(0, 0, 1024, 1024)
    with open_image(a) as sa, open_image(b) as sb, open_image(c) as sc:
        pa, pb, pc = sa.read(0, whole), sb.read(0, whole), sc.read(0, whole)
    np.testing.assert_array_equal(pa, pb)
    assert np.abs(pa.astype(int) - pc).mean() > 5
    saturation = pa.max(axis=-1).astype(int) - pa.min(axis=-1)
    tissue = saturation > 40
    assert 0.2 < tissue.mean() < 0.6  # blobs cover a fair share, not everything
    assert pa[~tissue].mean() > 235  # background is white
    purple = (pa[..., 2] > pa[..., 0]) & tissue  # nuclei: more blue than red
    assert 0.02 < purple.sum() / tissue.sum() < 0.4


def test_big_slide_is_written_in_bounded_memory(tmp_path):
    """An 8,000² slide (192 MB of RGB) streams tile by tile: Python memory stays small."""
    write_synthetic_slide(tmp_path / "warm.svs", 300, 300)  # imports and caches, not counted
    tracemalloc.start()
    try:
        path = write_synthetic_slide(tmp_path / "big.svs", 8_000, 8_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40e6  # a fifth of the image; it does not grow with the slide
    with open_image(path) as src:
        assert (src.width, src.height, src.level_count) == (8_000, 8_000, 3)
        corner = src.read(2, Window(0, 0, 500, 500))
        assert corner.shape == (500, 500, 3) and corner.std() > 5  # a picture, not a blank


def test_default_level_count():
    assert default_level_count(50_000, 50_000) == 4  # 50k, 12.5k, 3125, 781
    assert default_level_count(1000, 800) == 1
    assert default_level_count(4097, 10) == 2


def test_bigtiff_slides_open_in_openslide(tmp_path, monkeypatch):
    """Big slides (over 2 GiB raw) are written as BigTIFF; OpenSlide must still see an Aperio slide."""
    import tifffile

    import gigavim.io.synthetic as synthetic

    monkeypatch.setattr(synthetic, "BIGTIFF_ABOVE_BYTES", 0)
    path = write_synthetic_slide(tmp_path / "big.svs", 700, 900, mpp=0.5, levels=2)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff
    with open_image(path) as src:
        assert (src.vendor, src.level_count, src.mpp) == ("aperio", 2, 0.5)
        assert src.read(1, Window(0, 0, 175, 225)).std() > 5
