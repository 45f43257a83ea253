"""Where the data is: tissue masks for slides, nodata masks for rasters, at low resolution.

Most of a slide is white glass and many scenes have a nodata collar; the engine skips tiles
that hold none of the foreground these masks mark. Masks are computed from a low-resolution
overview read block by block, so even a single-level 100k × 100k image never sits in memory.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.measure import block_reduce
from skimage.morphology import dilation, disk, remove_small_holes, remove_small_objects

from gigavim.io.base import ImageSource, Window
from gigavim.io.box import box_mean_padded

OVERVIEW_SIZE = 1024
# Saturation of glass is ~0–0.03 and of stained tissue ~0.1–0.6; Otsu's threshold is clamped to
# this range so a slide that is all tissue (or all glass) is not split at noise.
SATURATION_RANGE = (0.05, 0.2)
_READ_SIDE = 1024  # level pixels per side read at once while building an overview
READ_THREADS = 2  # pieces read at once (the engine's default reader threads)
MASK_READ_BUDGET = 1 << 28
"""Level pixels a mask may read (268 MP); beyond (no overviews), block rows are sampled."""


@dataclass(frozen=True)
class LowResMask:
    """A boolean (h, w) mask over the image; one mask pixel covers ``downsample`` level-0 px."""

    mask: np.ndarray
    downsample: float
    overview: np.ndarray | None = None  # the (h, w, bands) image it was computed from, if any

    @property
    def fraction(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0

    def any_in(self, y0: float, x0: float, y1: float, x1: float) -> bool:
        """Whether any mask pixel in the level-0 rectangle [y0, y1) × [x0, x1) is set."""
        r0, c0 = max(0, math.floor(y0 / self.downsample)), max(0, math.floor(x0 / self.downsample))
        r1, c1 = math.ceil(y1 / self.downsample), math.ceil(x1 / self.downsample)
        return bool(self.mask[r0:r1, c0:c1].any())


def overview_level(source: ImageSource, max_size: int = OVERVIEW_SIZE) -> int:
    """The level a mask of ``source`` reads (whole, in pieces, unless it is over the budget)."""
    return _overview_plan(source, max_size)[0]


def _overview_plan(source: ImageSource, max_size: int) -> tuple[int, int]:
    """(level, k): read ``level`` and reduce k×k blocks to get ≤ ``max_size`` px on a side."""
    target = max(source.width, source.height) / max_size
    level = source.best_level_for_downsample(max(target, 1.0))
    k = max(1, math.ceil(target / source.levels[level].downsample - 1e-9))
    return level, k


def _reduce_blockwise(source: ImageSource, max_size: int, read, func, dtype,
                      ) -> tuple[np.ndarray, float, bool]:
    """Read a level in bounded pieces and reduce each k×k block with ``func``.

    A level larger than :data:`MASK_READ_BUDGET` pixels (a huge image without overviews) is not
    read whole: each block contributes a centred band of its rows (all its columns), so at most
    about the budget is read. Returns (reduced, downsample, whether rows were sampled).
    """
    level, k = _overview_plan(source, max_size)
    lv = source.levels[level]
    out_h, out_w = math.ceil(lv.height / k), math.ceil(lv.width / k)
    rows = k
    if k > 1 and lv.width * lv.height > MASK_READ_BUDGET:
        rows = max(1, min(k, MASK_READ_BUDGET // (out_h * k * out_w)))
    if rows < k:
        return _reduce_row_sampled(source, level, k, rows, read, func, dtype), lv.downsample * k, True
    step = max(1, _READ_SIDE // k)  # overview pixels per piece side

    def reduce(rc: tuple[int, int]) -> np.ndarray:
        r, c = rc
        h, w = min(step, out_h - r), min(step, out_w - c)
        piece = read(level, Window(r * k, c * k, h * k, w * k))
        if k == 1:
            return piece
        if func is np.mean:  # the overview: a box filter, ~10× faster than block_reduce's
            return box_mean_padded(piece, k)
        return block_reduce(piece, (k, k) + (1,) * (piece.ndim - 2), func=func)

    corners = [(r, c) for r in range(0, out_h, step) for c in range(0, out_w, step)]
    out: np.ndarray | None = None
    # Pieces are decoded and reduced by READ_THREADS threads (decoders release the GIL): a
    # single-level slide's mask reads every pixel, and did so on one core.
    with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(corners)),
                            thread_name_prefix="gigavim-mask") as pool:
        for (r, c), reduced in zip(corners, pool.map(reduce, corners), strict=True):
            if out is None:
                out = np.empty((out_h, out_w, *reduced.shape[2:]), dtype=dtype)
            out[r:r + reduced.shape[0], c:c + reduced.shape[1]] = reduced
    assert out is not None
    return out, lv.downsample * k, False


def _reduce_row_sampled(source: ImageSource, level: int, k: int, rows: int, read, func,
                        dtype) -> np.ndarray:
    """Each k×k block reduced from its centred ``rows`` rows only, read a row of blocks at a time."""
    lv = source.levels[level]
    out_h, out_w = math.ceil(lv.height / k), math.ceil(lv.width / k)
    step = max(1, _READ_SIDE * _READ_SIDE // (rows * k))  # blocks per read (about 1 MP)
    offset = (k - rows) // 2
    out: np.ndarray | None = None
    for r in range(out_h):
        y = min(r * k + offset, max(0, lv.height - rows))  # the last block may be short
        for c in range(0, out_w, step):
            w = min(step, out_w - c)
            piece = read(level, Window(y, c * k, rows, w * k))
            reduced = block_reduce(piece, (rows, k) + (1,) * (piece.ndim - 2), func=func)
            if out is None:
                out = np.empty((out_h, out_w, *reduced.shape[2:]), dtype=dtype)
            out[r:r + 1, c:c + w] = reduced
    assert out is not None
    return out


def read_overview(source: ImageSource, max_size: int = OVERVIEW_SIZE) -> tuple[np.ndarray, float]:
    """A (h, w, bands) float32 overview (box-filtered) and its downsample from level 0."""
    overview, ds, _sampled = _reduce_blockwise(source, max_size, source.read, np.mean, np.float32)
    return overview, ds


def valid_mask(source: ImageSource, max_size: int = OVERVIEW_SIZE) -> LowResMask:
    """Where the raster holds data (not nodata/NaN/alpha): a mask pixel is set if any pixel is."""
    mask, ds, sampled = _reduce_blockwise(source, max_size, source.read_valid, np.max, bool)
    if sampled:  # data seen in some rows only: widen by a cell so no edge tile is skipped
        mask = dilation(mask, np.ones((3, 3), bool))
    return LowResMask(mask, ds)


def tissue_mask(source: ImageSource, max_size: int = OVERVIEW_SIZE) -> LowResMask:
    """Tissue on a bright-field slide: saturation above Otsu's threshold, cleaned and dilated.

    Small specks and holes (< 0.05 % of the overview) are removed and the mask is dilated by
    ~0.4 % of its size so tissue edges are never cut off by tile skipping.
    """
    overview, ds = read_overview(source, max_size)
    rgb = overview[..., :3] if overview.shape[-1] >= 3 else np.repeat(overview[..., :1], 3, axis=-1)
    scale = 255.0 if np.dtype(source.dtype) == np.uint8 else max(float(np.nanmax(rgb)), 1e-6)
    rgb = rgb / scale
    if rgb.size and not (np.isfinite(rgb.min()) and np.isfinite(rgb.max())):  # min/max propagate NaN
        rgb = np.nan_to_num(rgb)
    saturation = _saturation(np.clip(rgb, 0, 1, out=rgb))
    threshold = SATURATION_RANGE[0]
    if saturation.max() > saturation.min():
        threshold = float(np.clip(threshold_otsu(saturation), *SATURATION_RANGE))
    mask = saturation > threshold
    speck = max(16, mask.size // 2000)
    mask = remove_small_objects(mask, max_size=speck)
    mask = remove_small_holes(mask, max_size=speck)
    # binary, not grey, dilation: the same mask (a symmetric footprint; outside pixels can only
    # reflect ones the disk already reaches) in half the time
    mask = ndimage.binary_dilation(mask, disk(max(1, round(max(mask.shape) / 256))))
    return LowResMask(mask, ds, overview)


def _saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation, (max − min) / max per pixel (0 for black), as ``rgb2hsv(rgb)[..., 1]``
    computes it, without the hue and value channels (5× faster)."""
    bands = [rgb[..., i] for i in range(rgb.shape[-1])]  # plane by plane: a reduction over a
    high, low = bands[0], bands[0]                        # last axis of 3 is ~5× slower
    for band in bands[1:]:
        high, low = np.maximum(high, band), np.minimum(low, band)
    out = np.zeros_like(high)
    np.divide(high - low, high, out=out, where=high > 0)
    return out


def foreground_mask(source: ImageSource, max_size: int = OVERVIEW_SIZE) -> LowResMask:
    """The mask that decides which tiles to process: tissue for slides, valid data otherwise."""
    return tissue_mask(source, max_size) if source.kind == "slide" else valid_mask(source, max_size)
