"""Tissue and nodata masks: what decides which tiles the engine skips."""

from __future__ import annotations

import numpy as np
import pytest
from engine.fakes import FunctionSource, blobs  # tests/ is on sys.path (root conftest)

from gigavim.io import open_image
from gigavim.io.masks import foreground_mask, tissue_mask, valid_mask


def test_tissue_mask_finds_synthetic_tissue_blobs() -> None:
    src = FunctionSource(2400, 3000, blobs)
    m = tissue_mask(src, max_size=600)
    assert m.mask.shape == (480, 600) and m.downsample == 5
    yy, xx = np.mgrid[0:480, 0:600] * 5 + 2
    truth = blobs(yy, xx)[..., 1] < 200  # disc pixels are (200, 90, 160)
    inter, union = (m.mask & truth).sum(), (m.mask | truth).sum()
    assert inter / union > 0.75
    assert m.mask[truth].all()  # the dilated mask never cuts tissue off
    corners = ((yy % 300) < 40) & ((xx % 300) < 40)  # glass between the discs
    assert not m.mask[corners].any()
    assert m.any_in(150, 150, 160, 160) and not m.any_in(0, 0, 30, 30)


def test_blank_glass_has_no_tissue() -> None:
    def glass(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return np.full((*np.broadcast_shapes(yy.shape, xx.shape), 3), 242)

    src = FunctionSource(1000, 1000, glass)
    assert not tissue_mask(src).mask.any()


def test_tissue_mask_on_the_real_sample_slide(real_data) -> None:
    src = open_image(real_data / "wsi" / "CMU-1-Small-Region.svs")
    m = tissue_mask(src)
    assert m.mask.shape == (989, 740) and m.overview is not None
    assert 0.3 < m.fraction < 0.5  # a skin section with a wide margin of glass on the left
    assert m.mask[:150, :100].mean() < 0.05  # glass, top left
    assert m.mask[800:950, 300:450].mean() > 0.95  # dermis, bottom centre


def test_nodata_mask_on_a_landsat_scene(real_data) -> None:
    src = open_image(real_data / "geo" / "RGB.byte.tif")
    m = valid_mask(src)
    assert m.downsample == 1 and m.mask.shape == (718, 791)
    assert 0.6 < m.fraction < 0.72  # about a third is the nodata collar of the rotated scene
    assert not m.mask[0, 0] and not m.mask[-1, -1] and m.mask[359, 395]
    assert foreground_mask(src).fraction == m.fraction  # rasters: data, not tissue


def test_float_nan_pixels_are_not_valid(real_data) -> None:
    src = open_image(real_data / "geo" / "float_nan.tif")
    assert valid_mask(src).mask.sum() == 5  # 3×2 with one NaN


def test_overview_box_filter_and_saturation_equal_skimages() -> None:
    """The fast overview (padded box mean) and saturation give skimage's block_reduce / rgb2hsv."""
    from skimage.color import rgb2hsv
    from skimage.measure import block_reduce

    from gigavim.io.box import box_mean_padded
    from gigavim.io.masks import _saturation

    rgb = np.random.default_rng(3).integers(0, 256, (31, 23, 3)).astype(np.uint8)
    rgb[0, 0] = 0  # black: saturation 0
    for k in (2, 3, 5):
        np.testing.assert_allclose(box_mean_padded(rgb, k), block_reduce(rgb, (k, k, 1), np.mean),
                                   rtol=1e-6)
    unit = rgb / 255.0
    np.testing.assert_allclose(_saturation(unit), rgb2hsv(unit)[..., 1], atol=1e-12)


@pytest.mark.parametrize("radius", [1, 2, 4, 7])
def test_binary_dilation_equals_the_grey_dilation_the_mask_used_before(radius: int) -> None:
    """The tissue mask's dilation switched from skimage's grey dilation (reflected borders) to a
    binary one (outside is False): the same mask, borders included."""
    from scipy import ndimage
    from skimage.morphology import dilation, disk

    rng = np.random.default_rng(radius)
    mask = rng.random((61, 47)) > 0.985
    mask[0, 5] = mask[-1, -1] = mask[30, 0] = True  # on the borders and corners
    np.testing.assert_array_equal(ndimage.binary_dilation(mask, disk(radius)), dilation(mask, disk(radius)))
