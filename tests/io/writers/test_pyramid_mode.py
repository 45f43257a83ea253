"""Label pyramids: each 2×2 block becomes its most frequent class, ties to the top-left pixel."""

from __future__ import annotations

from collections import Counter

import dask.array as da
import numpy as np

from gigavim.io.writers.pyramid import halve_labels


def _mode_by_counting(block: np.ndarray) -> int:
    """The rule by hand: highest count; among equal counts, the first in reading order."""
    values = [int(v) for v in block.reshape(-1)]  # top-left, top-right, bottom-left, bottom-right
    counts = Counter(values)
    return max(values, key=lambda v: (counts[v], -values.index(v)))


def test_every_block_gets_its_mode_uniform_and_mixed_blocks_alike():
    rng = np.random.default_rng(3)
    labels = np.zeros((64, 48), np.uint8)
    labels[:32] = rng.integers(0, 4, (32, 48))  # mixed blocks: every kind of tie
    labels[40:, 10:30] = 2  # uniform blocks of a class other than 0
    halved = halve_labels(da.from_array(labels, chunks=16), chunk=8).compute()
    expected = np.array([[_mode_by_counting(labels[y:y + 2, x:x + 2]) for x in range(0, 48, 2)]
                         for y in range(0, 64, 2)], np.uint8)
    np.testing.assert_array_equal(halved, expected)


def test_ties_go_to_the_top_left_value():
    block = np.array([[5, 7], [7, 5]], np.uint8)  # 5 and 7 twice each
    assert halve_labels(da.from_array(block), chunk=1).compute().tolist() == [[5]]
    block = np.array([[1, 2], [3, 4]], np.uint8)  # all different
    assert halve_labels(da.from_array(block), chunk=1).compute().tolist() == [[1]]


def test_every_pattern_of_four_values_gets_the_counted_mode():
    """All 4⁴ blocks over 4 classes (every tie pattern), halved in numpy as small maps are."""
    combos = np.array(np.meshgrid(*[np.arange(4, dtype=np.uint8)] * 4, indexing="ij")).reshape(4, -1).T
    labels = np.zeros((2, 2 * len(combos)), np.uint8)
    labels[0, 0::2], labels[0, 1::2], labels[1, 0::2], labels[1, 1::2] = combos.T
    expected = [_mode_by_counting(c.reshape(2, 2)) for c in combos]
    assert halve_labels(labels).tolist() == [expected]
