"""Window clipping and padding shared by every reader, checked against numpy padding."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gigavim.io.base import Level, Window
from gigavim.io.openslide_source import slide_mpp
from gigavim.io.windows import clip_window, read_padded

IMAGE = np.arange(7 * 9 * 2, dtype=np.int32).reshape(7, 9, 2)
LEVEL = Level(width=9, height=7, downsample=1.0)
PAD = 60  # more than any window reaches past the image


@settings(max_examples=300, deadline=None)
@given(
    y=st.integers(-30, 30), x=st.integers(-30, 30), h=st.integers(0, 25), w=st.integers(0, 25)
)  # fmt: skip
def test_read_padded_equals_crop_of_padded_image(y, x, h, w):
    asked: list[Window] = []

    def inside(win: Window) -> np.ndarray:
        asked.append(win)
        assert clip_window(win, LEVEL) == win  # readers only ever see in-bounds windows
        return IMAGE[win.y : win.y + win.height, win.x : win.x + win.width]

    out = read_padded(Window(y, x, h, w), LEVEL, -1, (2,), np.dtype(np.int32), inside)
    padded = np.pad(IMAGE, ((PAD, PAD), (PAD, PAD), (0, 0)), constant_values=-1)
    np.testing.assert_array_equal(out, padded[PAD + y : PAD + y + h, PAD + x : PAD + x + w])
    assert len(asked) <= 1


def test_slide_mpp_falls_back_to_tiff_resolution():
    assert slide_mpp({"openslide.mpp-x": "0.25", "openslide.mpp-y": "0.27"}) == 0.26
    by_cm = {"tiff.ResolutionUnit": "centimeter", "tiff.XResolution": "40000", "tiff.YResolution": "40000"}
    assert slide_mpp(by_cm) == 0.25
    by_inch = {"tiff.ResolutionUnit": "inch", "tiff.XResolution": "72", "tiff.YResolution": "72"}
    assert abs(slide_mpp(by_inch) - 352.777) < 1e-2
    assert slide_mpp({"tiff.ResolutionUnit": "none", "tiff.XResolution": "1"}) is None
    assert slide_mpp({"openslide.mpp-x": "nan"}) is None
