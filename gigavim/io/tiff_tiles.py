"""Decode a window of a tiled TIFF level straight from its tiles, without OpenSlide's pipeline.

OpenSlide's ``read_region`` decodes a tile, paints it onto a premultiplied-ARGB Cairo surface
and hands back RGBA that openslide-python un-premultiplies: about 30 MP/s per core on Aperio
JPEG, where libjpeg-turbo itself decodes 200–400 MP/s. For the formats where one OpenSlide
level is exactly one tiled TIFF directory (Aperio SVS, generic tiled TIFF) the same pixels come
from tifffile's own decoder (imagecodecs) in a fraction of the time; this module does only the
window → tiles → array assembly (tifffile's zarr view costs 2–3× more per tile in zarr's
chunk machinery).

Every level is checked before use: the directory must match OpenSlide's level size and layout,
and one of its tiles must decode to exactly OpenSlide's pixels; anything else (another
compression's colour handling, a vendor quirk) keeps that level on OpenSlide. A window that
touches a tile the scanner never wrote (byte count 0, transparent in OpenSlide) is left to
OpenSlide too, so fills and alpha stay OpenSlide's.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gigavim.io.base import Level, Window

#: OpenSlide vendors whose levels are single tiled TIFF directories read as stored.
DIRECT_VENDORS = frozenset({"aperio", "generic-tiff"})
_JPEG = frozenset({6, 7, 33007, 34892})


class TiffLevel:
    """One tiled, 8-bit RGB (or YCbCr) TIFF directory: windows decoded tile by tile."""

    def __init__(self, page: Any) -> None:
        self.height, self.width = int(page.imagelength), int(page.imagewidth)
        self.tile_h, self.tile_w = int(page.tilelength), int(page.tilewidth)
        self.tiles_across = -(-self.width // self.tile_w)
        self.offsets = np.asarray(page.dataoffsets, dtype=np.int64)
        self.counts = np.asarray(page.databytecounts, dtype=np.int64)
        decode = page.keyframe.decode
        extra: dict[str, Any] = {"_fullsize": True}
        if page.keyframe.compression in _JPEG:
            extra.update(jpegtables=page.jpegtables, jpegheader=page.keyframe.jpegheader)
        self._decode: Callable[[bytes, int], Any] = lambda data, index: decode(data, index, **extra)

    def tile_range(self, win: Window) -> tuple[range, range]:
        """Tile rows and columns under a window that lies inside the level."""
        return (range(win.y // self.tile_h, (win.y + win.height - 1) // self.tile_h + 1),
                range(win.x // self.tile_w, (win.x + win.width - 1) // self.tile_w + 1))

    def complete(self, win: Window) -> bool:
        """Every tile under the window was written by the scanner."""
        rows, cols = self.tile_range(win)
        index = np.add.outer(np.asarray(rows) * self.tiles_across, np.asarray(cols))
        return bool((self.counts[index] > 0).all())

    def read(self, fd: int, win: Window) -> np.ndarray:
        """(h, w, 3) uint8 of a window inside the level whose tiles are all present."""
        out = np.empty((win.height, win.width, 3), dtype=np.uint8)
        rows, cols = self.tile_range(win)
        for ty in rows:
            y0 = ty * self.tile_h
            for tx in cols:
                x0 = tx * self.tile_w
                tile = self._tile(fd, ty * self.tiles_across + tx)
                # the part of this tile inside the window, in tile and in window coordinates
                ty0, tx0 = max(win.y - y0, 0), max(win.x - x0, 0)
                ty1 = min(win.y + win.height - y0, self.tile_h)
                tx1 = min(win.x + win.width - x0, self.tile_w)
                out[y0 + ty0 - win.y:y0 + ty1 - win.y, x0 + tx0 - win.x:x0 + tx1 - win.x] = \
                    tile[ty0:ty1, tx0:tx1]
        return out

    def _tile(self, fd: int, index: int) -> np.ndarray:
        data = os.pread(fd, int(self.counts[index]), int(self.offsets[index]))
        segment = self._decode(data, index)[0]
        return segment.reshape(self.tile_h, self.tile_w, 3)


class DirectTiles:
    """The tiled-TIFF levels of a slide that can be read without OpenSlide, checked lazily.

    ``reference(level, window)`` is OpenSlide's RGB for a window; each level is compared with
    it once, on one tile, before its first direct read.
    """

    def __init__(self, path: Path, levels: list[Level],
                 reference: Callable[[int, Window], np.ndarray]) -> None:
        self.path = path
        self._reference = reference
        self._downsamples = [lv.downsample for lv in levels]
        self._candidates = _match_pages(path, [(lv.width, lv.height) for lv in levels])
        self._checked: dict[int, TiffLevel | None] = {}
        self._lock = threading.RLock()  # checks and the file's first opening, one thread at a time
        self._fd: int | None = None

    def read(self, level: int, win: Window) -> np.ndarray | None:
        """RGB of a window inside ``level``, or ``None`` where OpenSlide must read it."""
        tiff = self._level(level)
        if tiff is None or not tiff.complete(win):
            return None
        try:
            return tiff.read(self._file(), win)
        except (RuntimeError, ValueError):  # a tile the decoder rejects: OpenSlide says what is wrong
            return None

    def _level(self, level: int) -> TiffLevel | None:
        with self._lock:
            if level not in self._checked:
                self._checked[level] = self._verified(level, self._downsamples[level])
            return self._checked[level]

    def _verified(self, level: int, downsample: float) -> TiffLevel | None:
        tiff = self._candidates.get(level)
        if tiff is None:
            return None
        win = _check_window(tiff, downsample)
        if win is None or not tiff.complete(win):
            return None
        try:
            same = np.array_equal(tiff.read(self._file(), win), self._reference(level, win))
        except Exception:
            return None
        return tiff if same else None

    def _file(self) -> int:
        if self._fd is None:
            with self._lock:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        return self._fd

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _check_window(tiff: TiffLevel, downsample: float) -> Window | None:
    """The window a level is compared with OpenSlide on: a written tile mid-slide (tissue rather
    than glass); at a non-integer downsample, where OpenSlide samples windows off the origin
    sub-pixel, the top-left 2×2 tiles, the one place its windows are exact."""
    if not float(downsample).is_integer():
        return Window(0, 0, min(2 * tiff.tile_h, tiff.height), min(2 * tiff.tile_w, tiff.width))
    written = np.flatnonzero(tiff.counts > 0)
    if written.size == 0:
        return None
    index = int(written[written.size // 2])
    y = (index // tiff.tiles_across) * tiff.tile_h
    x = (index % tiff.tiles_across) * tiff.tile_w
    return Window(y, x, min(tiff.tile_h, tiff.height - y), min(tiff.tile_w, tiff.width - x))


def _match_pages(path: Path, level_sizes: list[tuple[int, int]]) -> dict[int, TiffLevel]:
    """Level index → the tiled directory of exactly that (width, height) and a layout we decode."""
    import tifffile

    found: dict[int, TiffLevel] = {}
    try:
        with tifffile.TiffFile(path) as tif:
            for page in tif.pages:
                size = (int(page.imagewidth), int(page.imagelength))
                if size in level_sizes and _decodable(page):
                    level = level_sizes.index(size)
                    found.setdefault(level, TiffLevel(page))
    except Exception:
        return {}
    return found


def _decodable(page: Any) -> bool:
    if not (page.is_tiled and page.tiledepth == 1 and page.planarconfig == 1):
        return False
    tiles = -(-page.imagewidth // page.tilewidth) * -(-page.imagelength // page.tilelength)
    return bool(page.bitspersample == 8 and page.samplesperpixel == 3 and page.sampleformat == 1
                and page.photometric in (2, 6) and len(page.dataoffsets) == tiles)


__all__ = ["DIRECT_VENDORS", "DirectTiles", "TiffLevel"]
