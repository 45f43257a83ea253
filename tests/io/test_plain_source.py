"""PlainImageSource: PNG tiles (RGBA, 16-bit labels) and small TIFFs with resolution tags."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from gigavim.errors import InputError
from gigavim.io import Window, open_image
from gigavim.io.plain_source import PlainImageSource


def test_rgba_nuclei_tile_reads_as_rgb(real_data):
    path = real_data / "nuclei_miccai2015/image01.png"
    with open_image(path) as src:
        assert isinstance(src, PlainImageSource)
        assert (src.kind, src.format, src.width, src.height) == ("image", "png", 643, 488)
        assert (src.bands, src.dtype, src.mpp, src.level_count) == (3, np.uint8, None, 1)
        expected = np.asarray(Image.open(path))[..., :3]
        np.testing.assert_array_equal(src.read(0, Window(0, 0, 488, 643)), expected)
        np.testing.assert_array_equal(src.read(0, Window(100, 200, 50, 60)), expected[100:150, 200:260])
        assert src.read_valid(0, Window(0, 0, 488, 643)).all()  # alpha is 255 everywhere


def test_sixteen_bit_label_png_keeps_its_ids(real_data):
    with open_image(real_data / "nuclei_miccai2015/image01_label.png") as src:
        assert (src.bands, src.dtype) == (1, np.uint16)
        labels = src.read(0, Window(0, 0, 488, 643))[..., 0]
        assert len(np.unique(labels)) - 1 == 351  # README: 351 nuclei
        assert (labels > 0).mean() == pytest.approx(0.138, abs=0.002)


def test_alpha_says_which_pixels_are_valid(tmp_path):
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., :3] = 90
    rgba[5:, 10:, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    with open_image(tmp_path / "a.png") as src:
        assert src.bands == 3
        valid = src.read_valid(0, Window(0, 0, 25, 30))
        np.testing.assert_array_equal(valid[:20], rgba[..., 3] > 0)
        assert not valid[20:].any()  # outside the image
        out = src.read(0, Window(15, 25, 10, 10))
        assert (out[:5, :5] == 90).all() and (out[5:] == 0).all() and (out[:, 5:] == 0).all()


def test_tiff_resolution_gives_mpp_and_planar_is_interleaved(tmp_path):
    planar = np.arange(3 * 40 * 50, dtype=np.uint16).reshape(3, 40, 50)
    path = tmp_path / "p.tif"
    tifffile.imwrite(
        path, planar, photometric="rgb", planarconfig="separate",
        resolution=(1e4 / 0.25, 1e4 / 0.25), resolutionunit="CENTIMETER",
    )  # fmt: skip
    with open_image(path) as src:
        assert (src.kind, src.format, src.width, src.height, src.bands) == ("image", "tiff", 50, 40, 3)
        assert src.mpp == pytest.approx(0.25)
        np.testing.assert_array_equal(src.read(0, Window(0, 0, 40, 50)), np.moveaxis(planar, 0, -1))


def test_undecodable_image_is_an_input_error(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.zeros((300, 300, 3), np.uint8) + 7).save(path)
    path.write_bytes(path.read_bytes()[:200])  # header intact, pixel data cut
    with pytest.raises(InputError, match=r"cut\.png"):
        with open_image(path, kind="image") as src:
            src.read(0, Window(0, 0, 10, 10))


def test_nan_pixels_of_a_float_tiff_hold_no_data(tmp_path):
    """ImageSource.read_valid's contract: NaN is not data, for plain images as for rasters."""
    data = np.ones((4, 5), dtype=np.float32)
    data[1, 2] = data[3, 4] = np.nan
    tifffile.imwrite(tmp_path / "float.tif", data)
    with open_image(tmp_path / "float.tif", kind="image") as src:
        valid = src.read_valid(0, Window(0, 0, 5, 6))
    expected = np.zeros((5, 6), dtype=bool)
    expected[:4, :5] = np.isfinite(data)
    np.testing.assert_array_equal(valid, expected)
