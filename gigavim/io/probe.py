"""Cheap checks that a source's pixels can actually be read and hold some data.

A damaged file often opens fine (its headers are intact) and fails only when a broken tile is
decoded; truncation hits the end of the file, i.e. the last tiles. ``probe_read`` therefore
reads the corners and the centre of level 0 and the whole coarsest level, so ``gigavim info``
and processing fail early with one line instead of deep inside a run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gigavim.errors import InputError
from gigavim.io.base import ImageSource, Window

#: Levels up to this many pixels are read whole; larger ones are sampled on a grid.
_WHOLE_LEVEL_PIXELS = 4_194_304


def probe_read(source: ImageSource, tile: int = 256) -> None:
    """Read a few windows (level-0 corners and centre, the coarsest level); raise on damage."""
    h, w = source.height, source.width
    th, tw = min(tile, h), min(tile, w)
    for y, x in {(0, 0), (0, w - tw), (h - th, 0), (h - th, w - tw), ((h - th) // 2, (w - tw) // 2)}:
        source.read(0, Window(y, x, th, tw))
    coarsest = len(source.levels) - 1
    lv = source.levels[coarsest]
    if lv.width * lv.height <= _WHOLE_LEVEL_PIXELS:
        source.read(coarsest, Window(0, 0, lv.height, lv.width))


@dataclass(frozen=True)
class ValidFraction:
    """Share of pixels holding data; ``exact`` is False when it was estimated from samples."""

    fraction: float
    exact: bool


def valid_fraction(
    source: ImageSource, max_side: int = 1024, samples: int = 8, tile: int = 64
) -> ValidFraction:
    """Fraction of valid (not nodata/NaN/transparent) pixels, from a coarse level.

    Reads the level closest to ``max_side`` pixels on its longest side when it is small enough;
    otherwise reads a ``samples`` × ``samples`` grid of ``tile``-sized windows from it.
    """
    level = source.best_level_for_downsample(max(source.width, source.height) / max_side)
    lv = source.levels[level]
    if lv.width * lv.height <= _WHOLE_LEVEL_PIXELS:
        return ValidFraction(float(source.read_valid(level, Window(0, 0, lv.height, lv.width)).mean()), True)
    th, tw = min(tile, lv.height), min(tile, lv.width)  # windows stay inside a thin strip
    ys = np.linspace(0, lv.height - th, samples).astype(int)
    xs = np.linspace(0, lv.width - tw, samples).astype(int)
    valid = [source.read_valid(level, Window(int(y), int(x), th, tw)).mean() for y in ys for x in xs]
    return ValidFraction(float(np.mean(valid)), False)


def require_data(source: ImageSource) -> None:
    """Refuse a source in which every pixel is nodata (nothing to segment)."""
    found = valid_fraction(source)
    if found.exact and found.fraction == 0:
        raise InputError(f"{source.path}: every pixel is nodata; there is nothing to process")
