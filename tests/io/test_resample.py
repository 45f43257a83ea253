"""The separable nearest-neighbour mask resampling equals skimage's warp pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import AffineTransform, warp

from gigavim.io.resample import scale_nearest


@pytest.mark.parametrize("seed", range(8))
def test_scale_nearest_equals_warp_order_0(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(25):
        mask = rng.random(tuple(rng.integers(1, 40, 2))) > 0.4
        scale = float(rng.choice([0.5, 0.25, 0.97, 1.03, 1.5, 2.3, rng.uniform(0.1, 4)]))
        ox, oy = rng.uniform(-6, 8, 2)
        shape = (int(rng.integers(1, 70)), int(rng.integers(1, 70)))
        tf = AffineTransform(scale=(scale, scale), translation=(ox, oy))
        expected = warp(mask.astype(np.float32), tf, output_shape=shape, order=0, mode="constant") > 0.5
        np.testing.assert_array_equal(scale_nearest(mask, scale, (oy, ox), shape), expected)


def test_half_way_positions_round_away_from_zero() -> None:
    mask = np.array([[True, False, False]])
    # x = 0.5 → column 1 (False); x = -0.5 → column -1 (outside): both False
    got = scale_nearest(mask, 1.0, (0.0, 0.5), (1, 1))
    assert not got.any()
    assert scale_nearest(mask, 1.0, (0.0, -0.4), (1, 1)).all()
