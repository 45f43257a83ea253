"""The compiled 2×2 block sum gives numpy's exact integer sums, odd edges dropped as box_sum drops them."""

from __future__ import annotations

import numpy as np
import pytest

from gigavim.io.box import box_sum
from gigavim.io.box_kernel import box_sum_2x2_uint8


@pytest.mark.parametrize(("shape", "bands"), [((64, 80), 3), ((7, 9), 1), ((33, 2), 4), ((2, 2), 3)])
def test_sums_equal_numpys(shape, bands):
    rng = np.random.default_rng(bands)
    a = rng.integers(0, 256, (*shape, bands), dtype=np.uint8)
    a[:2, :2] = 255  # the largest sum, 1020, must not wrap
    h, w = shape[0] // 2, shape[1] // 2
    expected = a[:2 * h, :2 * w].astype(np.int64).reshape(h, 2, w, 2, bands).sum(axis=(1, 3))
    got = box_sum_2x2_uint8(a)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(box_sum(a, 2), expected)  # the engine's entry point uses it


def test_strided_input_takes_numpys_road_with_the_same_result():
    a = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    view = a[:, ::-1]  # not C-contiguous: numpy's strided sums
    np.testing.assert_array_equal(box_sum(view, 2), box_sum_2x2_uint8(np.ascontiguousarray(view)))
