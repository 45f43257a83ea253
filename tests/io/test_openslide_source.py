"""OpenSlideSource against the real slides' documented facts, and its window arithmetic."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from gigavim.errors import InputError
from gigavim.io import Window, open_image
from gigavim.io.openslide_source import OpenSlideSource, composite_on_white

# file, vendor, (width, height), downsamples, mpp, objective power  (data/real/README.md)
SLIDES = [
    ("wsi/CMU-1-Small-Region.svs", "aperio", (2220, 2967), [1.0], 0.499, 20.0),
    ("wsi/small.svs", "aperio", (16, 16), [1.0], 0.499, 20.0),
    ("wsi/boxes_0.dcm", "dicom", (16, 16), [1.0], 0.499, 20.0),
    ("wsi/boxes_1.dcm", "dicom", (16, 16), [1.0], 0.499, 20.0),  # the series' thumbnail instance
    ("wsi/boxes.tiff", "generic-tiff", (300, 250), [1.0, 2.0, 4.016, 8.086], 352.8, None),
]


@pytest.mark.parametrize(("name", "vendor", "size", "downsamples", "mpp", "power"), SLIDES)
def test_real_slide_facts(real_data, name, vendor, size, downsamples, mpp, power):
    with open_image(real_data / name) as src:
        assert isinstance(src, OpenSlideSource)
        assert (src.kind, src.vendor, src.format) == ("slide", vendor, vendor)
        assert (src.width, src.height) == size
        assert [lv.downsample for lv in src.levels] == pytest.approx(downsamples, abs=1e-3)
        assert src.mpp == pytest.approx(mpp, rel=1e-3)
        assert src.objective_power == power
        assert (src.bands, src.dtype, src.nodata) == (3, np.uint8, None)
        tile = src.read(0, Window(0, 0, min(8, src.height), min(8, src.width)))
        assert tile.shape == (min(8, src.height), min(8, src.width), 3) and tile.dtype == np.uint8


def test_boxes_level_sizes(real_data):
    with open_image(real_data / "wsi/boxes.tiff") as src:
        assert [(lv.width, lv.height) for lv in src.levels] == [(300, 250), (150, 125), (75, 62), (37, 31)]


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_windows_match_whole_level_read(real_data, level):
    """Tiles stitch into the level: exact at integer downsamples, sub-pixel close otherwise."""
    with open_image(real_data / "wsi/boxes.tiff") as src:
        lv = src.levels[level]
        whole = src.read(level, Window(0, 0, lv.height, lv.width)).astype(int)
        rng = np.random.default_rng(level)
        for _ in range(12):
            h, w = rng.integers(1, lv.height // 2 + 2), rng.integers(1, lv.width // 2 + 2)
            y, x = rng.integers(0, lv.height - h + 1), rng.integers(0, lv.width - w + 1)
            part = src.read(level, Window(int(y), int(x), int(h), int(w))).astype(int)
            crop = whole[y : y + h, x : x + w]
            if float(lv.downsample).is_integer():
                np.testing.assert_array_equal(part, crop)
            else:  # OpenSlide samples at an offset under 0.5/downsample px: only edges blur
                assert np.abs(part - crop).mean() < 8


def test_cmu_windows_equal_crops(real_data):
    with open_image(real_data / "wsi/CMU-1-Small-Region.svs") as src:
        whole = src.read(0, Window(0, 0, src.height, src.width))
        assert whole.shape == (2967, 2220, 3)
        for y, x, h, w in [(0, 0, 240, 240), (1000, 700, 333, 517), (2967 - 50, 2220 - 70, 50, 70)]:
            np.testing.assert_array_equal(src.read(0, Window(y, x, h, w)), whole[y : y + h, x : x + w])
        # real H&E: mostly bright background with darker stained tissue
        assert 100 < whole.mean() < 240 and whole.min() < 100


def test_out_of_bounds_is_white_and_invalid(real_data):
    with open_image(real_data / "wsi/boxes.tiff") as src:
        whole = src.read(1, Window(0, 0, 125, 150))
        over = src.read(1, Window(-10, 140, 30, 25))  # hangs over the top and right edges
        assert over.shape == (30, 25, 3)
        np.testing.assert_array_equal(over[10:, :10], whole[0:20, 140:150])
        assert (over[:10] == 255).all() and (over[:, 10:] == 255).all()
        valid = src.read_valid(1, Window(-10, 140, 30, 25))
        assert valid[10:, :10].all() and not valid[:10].any() and not valid[:, 10:].any()
        assert (src.read(0, Window(1000, 1000, 4, 4)) == 255).all()


def test_composite_on_white_blends_alpha():
    rgba = np.array([[[10, 20, 30, 255], [10, 20, 30, 0], [0, 0, 0, 128]]], dtype=np.uint8)
    rgb = composite_on_white(rgba)
    np.testing.assert_array_equal(rgb[0, 0], [10, 20, 30])
    np.testing.assert_array_equal(rgb[0, 1], [255, 255, 255])
    np.testing.assert_array_equal(rgb[0, 2], [127, 127, 127])


def test_dask_view_equals_reads(real_data):
    with open_image(real_data / "wsi/boxes.tiff") as src:
        np.testing.assert_array_equal(src.to_dask(0, chunk=64).compute(), src.read(0, Window(0, 0, 250, 300)))


def test_source_survives_pickling(real_data):
    """Sources travel to dask workers: the handle is reopened on the other side."""
    with open_image(real_data / "wsi/small.svs") as src:
        copy = pickle.loads(pickle.dumps(src))
        np.testing.assert_array_equal(copy.read(0, Window(0, 0, 16, 16)), src.read(0, Window(0, 0, 16, 16)))
        copy.close()


def test_corrupt_tiles_raise_input_error_naming_file(real_data):
    path = real_data / "bad_input/unreadable.svs"
    with open_image(path) as src:  # headers are fine
        assert (src.vendor, src.width, src.height) == ("aperio", 16, 16)
        for _ in range(2):  # the handle stays in its error state: still one clear error
            with pytest.raises(InputError, match=r"unreadable\.svs.*Bogus marker length"):
                src.read(0, Window(0, 0, 16, 16))


def test_dicom_and_svs_copies_of_the_same_crop_read_identically(real_data):
    """README: boxes_0.dcm holds the same 16×16 CMU-1 pixels as small.svs."""
    with open_image(real_data / "wsi/small.svs") as svs, open_image(real_data / "wsi/boxes_0.dcm") as dcm:
        np.testing.assert_array_equal(svs.read(0, Window(0, 0, 16, 16)), dcm.read(0, Window(0, 0, 16, 16)))
