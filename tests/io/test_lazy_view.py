"""``ImageSource.to_dask``: a blockwise view that reads only what is computed, with a stable name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gigavim.io.base import ImageSource, Level, Window


class Counting(ImageSource):
    """Pixel value = y * 1000 + x of level 0 (band 0), and every read window recorded."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__(Path("counting.tif"), "image", "test", [Level(width, height, 1.0)], 2,
                         np.dtype(np.int32))
        self.reads: list[Window] = []

    def read(self, level: int, window: Window) -> np.ndarray:
        self.reads.append(window)
        yy, xx = np.mgrid[window.y : window.y + window.height, window.x : window.x + window.width]
        return np.stack([yy * 1000 + xx, -yy], axis=-1).astype(np.int32)


def test_view_matches_reads_and_computes_only_the_chunks_under_a_viewport():
    src = Counting(250, 330)
    view = src.to_dask(0, chunk=64)
    assert view.shape == (250, 330, 2) and view.dtype == np.int32 and not src.reads
    np.testing.assert_array_equal(view.compute(), src.read(0, Window(0, 0, 250, 330)))
    src.reads.clear()
    part = view[70:120, 130:140].compute()  # inside chunk row 1, column 2
    np.testing.assert_array_equal(part[..., 0], np.add.outer(np.arange(70, 120) * 1000, np.arange(130, 140)))
    assert src.reads == [Window(64, 128, 64, 64)]
    edge = view[240:, 320:].compute()  # the last, partial chunk
    assert edge.shape == (10, 10, 2) and src.reads[-1] == Window(192, 320, 58, 10)


def test_the_same_level_gets_the_same_dask_name_and_other_levels_another():
    src = Counting(100, 100)
    src.levels.append(Level(50, 50, 2.0))
    assert src.to_dask(0).name == src.to_dask(0).name
    assert src.to_dask(0).name != src.to_dask(1).name != src.to_dask(0, chunk=32).name
