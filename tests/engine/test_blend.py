"""Blending weights: smooth, strictly positive, ramped only where tiles meet."""

from __future__ import annotations

import numpy as np

from gigavim.engine.blend import cosine_ramp, tile_weight
from gigavim.engine.plan import TileGrid


def test_cosine_ramp_rises_smoothly_and_never_reaches_zero() -> None:
    w = cosine_ramp(100, 20, rise=True, fall=True)
    assert w.min() > 0 and w.max() == 1
    assert (np.diff(w[:20]) > 0).all() and (w[20:80] == 1).all()
    np.testing.assert_allclose(w, w[::-1])
    # overlapping rising and falling ramps of neighbouring tiles sum to 1: no bump at the seam
    np.testing.assert_allclose(w[:20] + w[80:], 1.0, atol=1e-6)


def test_image_borders_are_not_ramped() -> None:
    grid = TileGrid((300, 300), 128, 32)
    corner = tile_weight(grid, 0, 0)
    assert corner[0, 0] == 1 and corner[-1, -1] < 0.01
    last = grid.n_tiles[0] - 1
    assert tile_weight(grid, last, last)[-1, -1] == 1
    assert tile_weight(grid, 1, 1).min() > 0


def test_weights_sum_to_a_positive_value_everywhere() -> None:
    grid = TileGrid((333, 517), 100, 30)
    total = np.zeros(grid.shape)
    for t in grid.tiles():
        win = grid.tile_window(*t)
        total[win.y:win.y + win.height, win.x:win.x + win.width] += tile_weight(grid, *t)
    assert total.min() > 0.5


def test_class_argmax_equals_numpy_argmax_ties_included() -> None:
    import numpy as np

    from gigavim.engine.merger import class_argmax

    probs = np.random.default_rng(0).integers(0, 4, (5, 30, 40)).astype(np.float32)  # many ties
    got = class_argmax(probs)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.argmax(probs, axis=0))
