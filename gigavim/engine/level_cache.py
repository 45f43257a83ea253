"""A small slide's level 0 held in memory, read once for both its tissue mask and its tiles.

The tissue mask of a slide without a coarse enough pyramid level (a single-level slide such as
the bundled CMU-1 sample, a region exported from a viewer) reads every pixel of level 0; then
the tiles read most of them again, each through OpenSlide's decoder and an RGBA → RGB pass.
When the mask reads level 0 anyway and level 0 is small (≤ :data:`CACHE_PIXELS`), it is read
once, in pieces by two threads, and the mask and every tile slice that copy: the same pixels as
window reads (level 0 is never resampled; outside the slide the same fill). Larger slides, and
slides whose mask reads a coarser level, are read window by window as before, so memory stays
bounded by the tile and batch size there.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from gigavim.engine.plan import Resolution
from gigavim.io.base import ImageSource, Window
from gigavim.io.masks import READ_THREADS, overview_level
from gigavim.io.windows import read_padded

CACHE_PIXELS = 1 << 25
"""Level-0 pixels a slide may have to be held in memory (33.5 MP: ≤ 96 MiB of RGB)."""
_PIECE = 1024  # level pixels per side read at once


class LevelCache(ImageSource):
    """Another source whose level 0 is read into memory once; other levels are read from it."""

    def __init__(self, base: ImageSource) -> None:
        super().__init__(
            path=base.path, kind=base.kind, format=base.format, levels=base.levels,
            bands=base.bands, dtype=base.dtype, nodata=base.nodata, mpp=base.mpp, gsd_m=base.gsd_m,
            crs=base.crs, transform=base.transform, objective_power=base.objective_power,
            vendor=base.vendor, band_names=base.band_names, properties=base.properties,
            ground_pixel_yx=base.ground_pixel_yx,
        )
        self.base = base
        self.pixels = _read_level0(base)
        self.pixels.flags.writeable = False  # reads hand out views: nobody may write into them

    def read(self, level: int, window: Window) -> np.ndarray:
        if level != 0:
            return self.base.read(level, window)
        return read_padded(window, self.levels[0], self.fill_value, (self.bands,), np.dtype(self.dtype),
                           lambda w: self.pixels[w.y:w.y + w.height, w.x:w.x + w.width])

    def read_valid(self, level: int, window: Window) -> np.ndarray:
        return self.base.read_valid(level, window)

    def close(self) -> None:
        self.base.close()


def cached_level0(src: ImageSource, res: Resolution, mask_from_model: bool = False) -> ImageSource:
    """``src`` with level 0 in memory when both its mask and its tiles read level 0 and it is
    small; else ``src`` itself. Only slides: rasters' reads also decide validity per window."""
    if (src.kind != "slide" or mask_from_model or res.level != 0 or overview_level(src) != 0
            or src.width * src.height > CACHE_PIXELS):
        return src
    return LevelCache(src)


def _read_level0(src: ImageSource) -> np.ndarray:
    h, w = src.height, src.width
    out = np.empty((h, w, src.bands), dtype=src.dtype)
    corners = [(y, x) for y in range(0, h, _PIECE) for x in range(0, w, _PIECE)]

    def read(corner: tuple[int, int]) -> None:  # decoders release the GIL
        y, x = corner
        out[y:y + _PIECE, x:x + _PIECE] = src.read(0, Window(y, x, min(_PIECE, h - y), min(_PIECE, w - x)))

    with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(corners)),
                            thread_name_prefix="gigavim-level0") as pool:
        list(pool.map(read, corners))
    return out
