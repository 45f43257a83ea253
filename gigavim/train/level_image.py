"""One pyramid level that looks like a (H, W, bands) array but is read window by window.

Training or evaluating at a level's own pixel size (no ``--mpp``/``--gsd``, or one that matches
a level) must not load a gigapixel level into memory: patches, validation tiles and statistics
slice this object, and each slice is one :meth:`ImageSource.read` of just that window.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from gigavim.io.base import ImageSource, Window


class LevelImage:
    """A lazy (H, W, bands) view of ``window`` of ``source``'s ``level``.

    Supports what the sampler, the tiled predictor and the statistics need: ``shape``, ``dtype``,
    ``ndim``, 2-D slicing ``img[y0:y1, x0:x1]`` (a read) and :meth:`view` (no read).
    """

    ndim = 3

    def __init__(self, source: ImageSource, level: int, window: Window | None = None) -> None:
        lv = source.levels[level]
        self.source, self.level = source, level
        self.window = window if window is not None else Window(0, 0, lv.height, lv.width)
        self.dtype = np.dtype(source.dtype)
        self.shape = (self.window.height, self.window.width, source.bands)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        """Read rows ``key[0]`` and columns ``key[1]`` (unit-step slices) from the source."""
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, slice) for k in key)):
            raise TypeError("a LevelImage is indexed with two slices: img[y0:y1, x0:x1]")
        (y0, y1, sy), (x0, x1, sx) = key[0].indices(self.shape[0]), key[1].indices(self.shape[1])
        if sy != 1 or sx != 1:
            raise TypeError("a LevelImage is read with unit-step slices only")
        w = self.window
        return self.source.read(self.level, Window(w.y + y0, w.x + x0, max(0, y1 - y0), max(0, x1 - x0)))

    def view(self, y0: int, y1: int, x0: int, x1: int) -> LevelImage:
        """Rows y0:y1 and columns x0:x1 of this view, without reading anything."""
        w = self.window
        return LevelImage(self.source, self.level, Window(w.y + y0, w.x + x0, y1 - y0, x1 - x0))


STRIP_PIXELS = 1 << 20
"""Pixels per strip when a whole level is scanned (validity, statistics): bounds their memory."""


def row_blocks(height: int, width: int, pixels: int | None = None) -> Iterator[tuple[int, int]]:
    """(y0, y1) strips of whole rows holding about ``pixels`` pixels each (at least one row)."""
    rows = max(1, (pixels or STRIP_PIXELS) // max(1, width))
    for y0 in range(0, height, rows):
        yield y0, min(height, y0 + rows)
