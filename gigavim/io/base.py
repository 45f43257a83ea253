"""The one small interface every image reader implements.

An :class:`ImageSource` is a lazily-read, multi-level image: a pathology slide (OpenSlide), a
georeferenced raster (rasterio/GDAL) or a plain PNG/JPEG/TIFF. Arrays are always (y, x, bands)
and windows are given in (y, x) order in the pixel grid of the level they read from; only
library boundaries that demand (x, y) (OpenSlide, GeoJSON) use it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

SourceKind = Literal["slide", "raster", "image"]

#: Levels up to this many pixels are read whole for a thumbnail; larger ones window by window.
_WHOLE_READ_PIXELS = 16_777_216
THUMBNAIL_READ_BUDGET = 1 << 28
"""Level pixels a thumbnail may read (268 MP); beyond (no overviews), block rows are sampled."""


@dataclass(frozen=True)
class Level:
    """One pyramid level: its size in pixels and its downsample factor from level 0."""

    width: int
    height: int
    downsample: float


@dataclass(frozen=True)
class Window:
    """A rectangle in a level's pixel grid, (y, x) order; may extend past the image edges."""

    y: int
    x: int
    height: int
    width: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)


@dataclass
class ImageSource(ABC):
    """A lazily-read, multi-level image.

    Attributes are filled by each reader's constructor. ``mpp`` is µm per level-0 pixel (slides
    and microscopy images), ``gsd_m`` metres per level-0 pixel on the ground (rasters with a
    projected or geographic CRS: geodesic lengths at the scene centre, so degrees and Web
    Mercator metres are converted; per axis in ``ground_pixel_yx``), ``crs`` a WKT/EPSG
    string and ``transform`` the level-0 affine (rasterio ``Affine``) for rasters.
    """

    path: Path
    kind: SourceKind
    format: str
    levels: list[Level]
    bands: int
    dtype: np.dtype
    nodata: float | None = None
    mpp: float | None = None
    gsd_m: float | None = None
    crs: str | None = None
    transform: Any = None
    objective_power: float | None = None
    vendor: str | None = None
    band_names: list[str] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)
    # (y, x) ground metres of a level-0 pixel (rasters; pixels need not be square on the ground,
    # e.g. in degrees or Web Mercator); ``gsd_m`` is the square root of their product.
    ground_pixel_yx: tuple[float, float] | None = None

    # -- geometry ---------------------------------------------------------------------------
    @property
    def width(self) -> int:
        return self.levels[0].width

    @property
    def height(self) -> int:
        return self.levels[0].height

    @property
    def level_count(self) -> int:
        return len(self.levels)

    def best_level_for_downsample(self, downsample: float) -> int:
        """The finest-or-equal level whose downsample is ≤ ``downsample`` (never coarser)."""
        best = 0
        for i, level in enumerate(self.levels):
            if level.downsample <= downsample * (1 + 1e-6):
                best = i
        return best

    # -- pixels -----------------------------------------------------------------------------
    @abstractmethod
    def read(self, level: int, window: Window) -> np.ndarray:
        """Read ``window`` of ``level`` as a (h, w, bands) array in :attr:`dtype`.

        Parts of the window outside the image are filled with :attr:`fill_value`. Never loads
        more of the file than the window needs.
        """

    def read_valid(self, level: int, window: Window) -> np.ndarray:
        """Boolean (h, w) mask of pixels that hold data (not nodata/NaN/alpha/outside)."""
        h, w = window.shape
        valid = np.zeros((h, w), dtype=bool)
        lv = self.levels[level]
        y0, x0 = max(window.y, 0), max(window.x, 0)
        y1, x1 = min(window.y + h, lv.height), min(window.x + w, lv.width)
        if y1 > y0 and x1 > x0:
            valid[y0 - window.y : y1 - window.y, x0 - window.x : x1 - window.x] = True
        return valid

    @property
    def fill_value(self) -> float:
        """Value used for pixels outside the image: nodata if set, else 0 (255 for slides)."""
        if self.nodata is not None:
            return self.nodata
        return 255 if self.kind == "slide" else 0

    def to_dask(self, level: int = 0, chunk: int = 1024):
        """A lazy (h, w, bands) dask array of one level, read chunk by chunk via :meth:`read`.

        One blockwise layer (see :mod:`gigavim.io.lazy`): building it costs nothing whatever
        the level's size, and reading a viewport computes only the chunks under it.
        """
        from gigavim.io.lazy import windowed_dask

        lv = self.levels[level]
        return windowed_dask(
            lambda window: self.read(level, window), (lv.height, lv.width, self.bands),
            np.dtype(self.dtype), chunk, (str(self.path), _file_stamp(self.path), self.format, level),
        )

    def thumbnail(self, max_size: int = 1024) -> np.ndarray:
        """A (h, w, bands) overview no larger than ``max_size`` on its longest side.

        Reads the closest pyramid level; when that level is still large (no overviews), it is
        averaged window by window so memory stays bounded whatever the image size, and beyond
        :data:`THUMBNAIL_READ_BUDGET` pixels only a centred band of each block's rows is read,
        so a declared-huge image without overviews is not read whole either.
        """
        from skimage.transform import resize

        target = max(self.width, self.height) / max_size
        level = self.best_level_for_downsample(max(target, 1.0))
        lv = self.levels[level]
        scale = max_size / max(lv.width, lv.height)
        if scale >= 0.5 or lv.width * lv.height <= _WHOLE_READ_PIXELS:
            img = self.read(level, Window(0, 0, lv.height, lv.width))
        else:
            img = self._block_mean(level, int(1 / scale))
        if scale < 1:
            shape = (max(1, round(lv.height * scale)), max(1, round(lv.width * scale)))
            resized = resize(img, shape, preserve_range=True, anti_aliasing=True)
            img = (np.rint(resized) if np.issubdtype(img.dtype, np.integer) else resized).astype(img.dtype)
        return img

    def _block_mean(self, level: int, k: int) -> np.ndarray:
        """``level`` shrunk k× by averaging k×k blocks, read in windows of about 1024² pixels."""
        import warnings

        lv = self.levels[level]
        out_h, out_w = -(-lv.height // k), -(-lv.width // k)
        out = np.empty((out_h, out_w, self.bands), dtype=np.float32)
        rows = k  # level rows read per block of k: all, unless that is beyond the budget
        if lv.width * lv.height > THUMBNAIL_READ_BUDGET:
            rows = max(1, min(k, THUMBNAIL_READ_BUDGET // (out_h * k * out_w)))
        step = max(1, 1024 // k)  # output pixels per window side (about 1 MP read per window)
        band = step
        if rows < k:  # one output row per window, as wide as about 1 MP of sampled rows
            band, step = 1, max(1, (1 << 20) // (rows * k))
        for oy in range(0, out_h, band):
            for ox in range(0, out_w, step):
                th, tw = min(band, out_h - oy), min(step, out_w - ox)
                y, x = oy * k, ox * k
                if rows < k:  # the block's centred rows (the last block may be short)
                    y = min(y + (k - rows) // 2, max(0, lv.height - rows))
                h, w = min(th * rows, lv.height - y), min(tw * k, lv.width - x)
                block = np.full((th * rows, tw * k, self.bands), np.nan, dtype=np.float32)
                block[:h, :w] = self.read(level, Window(y, x, h, w))
                with warnings.catch_warnings():  # all-NaN blocks stay NaN
                    warnings.simplefilter("ignore", RuntimeWarning)
                    out[oy : oy + th, ox : ox + tw] = np.nanmean(
                        block.reshape(th, rows, tw, k, self.bands), axis=(1, 3)
                    )
        if np.issubdtype(self.dtype, np.integer):
            return np.rint(out).astype(self.dtype)
        return out.astype(self.dtype)

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file handles (readers that hold one override this)."""

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        """The facts ``gigavim info --json`` prints (JSON-serialisable)."""
        return {
            "path": str(self.path),
            "kind": self.kind,
            "format": self.format,
            "vendor": self.vendor,
            "width": self.width,
            "height": self.height,
            "levels": [
                {"width": lv.width, "height": lv.height, "downsample": lv.downsample}
                for lv in self.levels
            ],
            "mpp": self.mpp,
            "gsd_m": self.gsd_m,
            "ground_pixel_yx_m": None if self.ground_pixel_yx is None else list(self.ground_pixel_yx),
            "crs": self.crs,
            "transform": list(self.transform)[:6] if self.transform is not None else None,
            "bands": self.bands,
            "band_names": self.band_names,
            "dtype": str(np.dtype(self.dtype)),
            "nodata": None if self.nodata is None else _json_number(self.nodata),
            "objective_power": self.objective_power,
        }


def _file_stamp(path: Path) -> tuple[int, int] | None:
    """(size, mtime) of a file, so a rewritten file never reuses a cached dask view's name."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def representable(data: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Where ``data`` holds a value the engine can compute with: finite after the float32 cast.

    Pixels are processed as float32, so NaN, ±inf and float64 values beyond float32's range
    (e.g. an undeclared −DBL_MAX fill) are no data, never a pixel value; ``axis`` (the band
    axis) requires every band to qualify.
    """
    ok = np.isfinite(data) & (np.abs(data) <= FLOAT32_MAX)
    return ok if axis is None else ok.all(axis=axis)


def _json_number(value: float) -> float | str:
    """NaN and ±inf are not valid JSON: report them as the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and not np.isfinite(value):
        return "nan" if np.isnan(value) else ("inf" if value > 0 else "-inf")
    return value
