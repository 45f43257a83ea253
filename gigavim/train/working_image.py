"""An image on the model's working grid that looks like a (H, W, bands) array but is read lazily.

Training, validation and ``gigavim eval`` must see exactly the pixels ``gigavim segment`` feeds
the model, and must not load a gigapixel level into memory. So every slice of this view is one
:meth:`gigavim.engine.reader.TileReader.read` of that window of the working grid that
:func:`gigavim.engine.plan.resolve_resolution` picks: the same level, the same box mean,
anti-aliasing and sub-pixel sampling, the same float32 values (nodata read as 0 on rasters).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from gigavim.engine.plan import Resolution
from gigavim.engine.reader import TileReader
from gigavim.io.base import ImageSource, Window


class WorkingImage:
    """A lazy (H, W, bands) float32 view of ``window`` of ``source`` resampled to ``resolution``.

    Supports what the sampler, the tiled predictor and the statistics need: ``shape``, ``dtype``,
    ``ndim``, 2-D slicing ``img[y0:y1, x0:x1]`` (a read), :meth:`read` (pixels and validity),
    :meth:`view` (no read) and :meth:`strips` (bounded-memory scans).
    """

    ndim = 3
    dtype = np.dtype(np.float32)  # what TileReader returns, whatever the file's dtype

    def __init__(self, source: ImageSource, resolution: Resolution, window: Window | None = None,
                 reader: TileReader | None = None) -> None:
        self.source, self.resolution = source, resolution
        self.reader = reader if reader is not None else TileReader(source, resolution)
        self.window = window if window is not None else Window(0, 0, *resolution.shape)
        self.shape = (self.window.height, self.window.width, source.bands)

    @property
    def source_dtype(self) -> np.dtype:
        """The file's dtype: the value range the float32 pixels lie in (uint8 → 0..255)."""
        return np.dtype(self.source.dtype)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> tuple[np.ndarray, np.ndarray]:
        """(pixels (h, w, bands) float32, valid (h, w) bool) of rows y0:y1, columns x0:x1."""
        h, w = max(0, y1 - y0), max(0, x1 - x0)
        if not h or not w:
            return np.zeros((h, w, self.shape[2]), self.dtype), np.zeros((h, w), bool)
        win = self.window
        return self.reader.read(Window(win.y + y0, win.x + x0, h, w))

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        """Pixels of rows ``key[0]`` and columns ``key[1]`` (unit-step slices), read now."""
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, slice) for k in key)):
            raise TypeError("a WorkingImage is indexed with two slices: img[y0:y1, x0:x1]")
        (y0, y1, sy), (x0, x1, sx) = key[0].indices(self.shape[0]), key[1].indices(self.shape[1])
        if sy != 1 or sx != 1:
            raise TypeError("a WorkingImage is read with unit-step slices only")
        return self.read(y0, y1, x0, x1)[0]

    def view(self, y0: int, y1: int, x0: int, x1: int) -> WorkingImage:
        """Rows y0:y1 and columns x0:x1 of this view, without reading anything."""
        w = self.window
        return WorkingImage(self.source, self.resolution, Window(w.y + y0, w.x + x0, y1 - y0, x1 - x0),
                            self.reader)

    def strips(self) -> Iterator[tuple[int, int]]:
        """(y0, y1) row strips each reading about :data:`STRIP_PIXELS` pixels of the level."""
        factor = max(1.0, self.resolution.read_factor)
        return row_blocks(self.shape[0], self.shape[1], max(1, int(STRIP_PIXELS / factor**2)))


STRIP_PIXELS = 1 << 20
"""Pixels per strip when a whole image is scanned (validity, statistics): bounds their memory."""


def row_blocks(height: int, width: int, pixels: int | None = None) -> Iterator[tuple[int, int]]:
    """(y0, y1) strips of whole rows holding about ``pixels`` pixels each (at least one row)."""
    rows = max(1, (pixels or STRIP_PIXELS) // max(1, width))
    for y0 in range(0, height, rows):
        yield y0, min(height, y0 + rows)
