"""Smooth blending weights for overlapping tiles, so tile borders leave no seams.

A tile's prediction is least reliable near its edges (the network sees no context beyond
them), so each tile's probabilities are weighted by a cosine ramp that rises from almost 0 at
an inner edge to 1 at ``overlap`` pixels in. Edges on the image border are not ramped (no other
tile covers them). Weights are strictly positive, so every pixel under a tile gets a value.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gigavim.engine.plan import TileGrid


def cosine_ramp(length: int, overlap: int, *, rise: bool, fall: bool) -> np.ndarray:
    """(length,) float32 weights in (0, 1]: raised-cosine over ``overlap`` px at ramped ends."""
    w = np.ones(length, dtype=np.float64)
    n = min(overlap, length)
    if n > 0:
        edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
        if rise:
            w[:n] = np.minimum(w[:n], edge)
        if fall:
            w[length - n:] = np.minimum(w[length - n:], edge[::-1])
    return w.astype(np.float32)


@lru_cache(maxsize=16)
def _ramp(length: int, overlap: int, rise: bool, fall: bool) -> np.ndarray:
    return cosine_ramp(length, overlap, rise=rise, fall=fall)


def tile_weight(grid: TileGrid, iy: int, ix: int) -> np.ndarray:
    """(th, tw) float32 weight of tile (iy, ix): ramps only on edges shared with other tiles
    (read-only: one array per kind of tile, shared)."""
    (th, tw), (ny, nx) = grid.tile_shape, grid.n_tiles
    return _weight(th, tw, grid.overlap, iy > 0, iy < ny - 1, ix > 0, ix < nx - 1)


@lru_cache(maxsize=64)
def _weight(th: int, tw: int, overlap: int, top: bool, bottom: bool, left: bool, right: bool) -> np.ndarray:
    w = _ramp(th, overlap, top, bottom)[:, None] * _ramp(tw, overlap, left, right)[None, :]
    w.flags.writeable = False
    return w
