"""Read one working-resolution tile: pixels and their validity, resampled from a pyramid level.

Each working pixel depends only on the level pixels under it, computed the same way for every
tile, so overlapping tiles agree exactly and tiling adds no seams of its own. The integer part
k of the factor is a box filter (mean of k×k blocks aligned to the level's origin, cheap and
exact); what remains is Gaussian anti-aliasing then bilinear sampling at the exact sub-pixel
position (the scheme of ``skimage.transform.resize``, but aligned to the global grid rather than
to each tile).
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
from skimage.filters import gaussian
from skimage.transform import AffineTransform, warp

from gigavim.engine.plan import Resolution
from gigavim.io.base import ImageSource, Window
from gigavim.io.box import box_mean, box_sum
from gigavim.io.resample import scale_nearest

_INTEGER_TOLERANCE = 1e-6


class TileReader:
    """Turns working-grid windows into (h, w, bands) float32 pixels and an (h, w) valid mask."""

    def __init__(self, source: ImageSource, resolution: Resolution, keep_dtype: bool = False) -> None:
        """``keep_dtype``: tiles read at the level's own resolution keep an integer source's
        dtype instead of becoming float32 (the same values; the engine's normalisation reads
        8-bit pixels through a table, ~4× faster than float32 arithmetic); 8-bit slides read at
        an integer factor k come as the exact uint16 sums of each k×k block, ``sum_count`` = k²
        level pixels each (their means are :func:`~gigavim.io.box.mean_of_sums`; normalising
        them through a table skips the float32 mean, ~2× less work per tile)."""
        self.source = source
        self.keep_dtype = keep_dtype and np.issubdtype(np.dtype(source.dtype), np.integer)
        self.level = resolution.level
        self.factor = resolution.read_factor
        # the integer part k of the factor (a box filter) and what remains (a warp) when not 1
        self._k = max(1, math.floor(self.factor + _INTEGER_TOLERANCE))
        self._rest = self.factor / self._k
        self._integer = abs(self._rest - 1) < _INTEGER_TOLERANCE
        self.sum_count = 1
        if (self.keep_dtype and source.kind == "slide" and np.dtype(source.dtype) == np.uint8
                and 1 < self._k <= 16 and self._integer):
            self.sum_count = self._k * self._k
        # Slides have no nodata: pixels outside the scanned area are composited on white and
        # labelled background, so validity is geometry alone and not a second full read.
        # Elsewhere invalid pixels are read as 0 (as NaN is), so a nodata sentinel such as
        # -3.4e38 never reaches the model next to valid pixels.
        self._read_valid = (partial(ImageSource.read_valid, source) if source.kind == "slide"
                            else source.read_valid)

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """(pixels, valid) of a working-grid window; pixels are float32, or with ``keep_dtype``
        the stored integers or their block sums (see ``sum_count``)."""
        k = self._k
        if not self._integer:
            return self._read_warp(window, k, self._rest)
        if k == 1 and self.keep_dtype:
            return self._read_as_stored(window)
        return self._read_box(window, k, sums=self.sum_count > 1)

    def _finite(self, pixels: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A float32 pixel that is not finite (a sum of huge values overflowing) is no data.

        Readers already mark NaN/inf and values beyond float32 as invalid; this catches what
        arithmetic on valid float data can still overflow to, so nothing non-finite ever reaches
        the model (whose scan kernels must not see NaN)."""
        if not np.issubdtype(self.source.dtype, np.floating):
            return pixels, valid  # integer pixels stay finite as float32 and in their means
        bad = ~np.isfinite(pixels).all(axis=-1)
        if bad.any():
            pixels = np.where(bad[..., None], np.float32(0), pixels)
            valid = valid & ~bad
        return pixels, valid

    def _read_as_stored(self, win: Window) -> tuple[np.ndarray, np.ndarray]:
        """The level's own integer pixels (``keep_dtype``): finite by nature, and pixels without
        data read as 0, as :meth:`_read_box` makes them."""
        pixels = self.source.read(self.level, win)
        valid = self._read_valid(self.level, win)
        if self.source.kind != "slide":
            pixels = np.where(valid[..., None], pixels, 0)
        return pixels, valid

    def _read_box(self, win: Window, k: int, sums: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Mean of k×k level pixels per output pixel (blocks aligned to the level's origin), or
        with ``sums`` (8-bit slides) their exact integer sums.

        For rasters the mean is over the block's valid pixels, and a block is valid when at least
        half of it is (so a working pixel overhanging the image edge by half keeps its data).
        """
        big = Window(win.y * k, win.x * k, win.height * k, win.width * k)
        pixels = self.source.read(self.level, big)
        valid = self._read_valid(self.level, big)
        if self.source.kind != "slide":  # a nodata value (e.g. -3.4e38) is not a pixel value
            pixels = np.where(valid[..., None], pixels, 0).astype(np.float32, copy=False)
        if k == 1:
            return self._finite(pixels.astype(np.float32, copy=False), valid)
        share = box_mean(valid, k)
        if sums:
            return box_sum(pixels, k), share >= 0.5
        means = box_mean(pixels, k)
        if self.source.kind != "slide":  # the mean of the data only (invalid pixels are 0 here)
            np.divide(means, share[..., None], out=means, where=share[..., None] > 0)
        return self._finite(means, share >= 0.5)  # a block half over the edge still holds data

    def _read_warp(self, win: Window, k: int, f: float) -> tuple[np.ndarray, np.ndarray]:
        """Box-reduce by the integer part k, then Gaussian anti-alias and sample by the rest f.

        A box-reduced pixel j covers level pixels [jk, (j+1)k), so in box-reduced coordinates
        output pixel r is centred at (y + r + 0.5)·f − 0.5 — the same formula as for a level.
        """
        sigma = max(0.0, (f - 1) / 2)
        pad = math.ceil(3 * sigma) + 2
        y0, x0 = math.floor(win.y * f) - pad, math.floor(win.x * f) - pad
        y1, x1 = math.ceil((win.y + win.height) * f) + pad, math.ceil((win.x + win.width) * f) + pad
        pixels, valid = self._read_box(Window(y0, x0, y1 - y0, x1 - x0), k)
        if sigma > 0:
            pixels = gaussian(pixels, sigma=sigma, channel_axis=-1, preserve_range=True, mode="nearest")
        tf = AffineTransform(scale=(f, f), translation=((win.x + 0.5) * f - 0.5 - x0,
                                                        (win.y + 0.5) * f - 0.5 - y0))
        shape = (win.height, win.width)
        pixels = warp(pixels, tf, output_shape=shape, order=1, preserve_range=True, mode="edge")
        valid = scale_nearest(valid, f, (tf.translation[1], tf.translation[0]), shape)
        return self._finite(pixels.astype(np.float32, copy=False), valid)
