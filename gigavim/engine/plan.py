"""Where to read and how to cut: the working resolution and the overlapping tile grid.

The model sees pixels at the resolution it was trained at (µm/px for slides, m/px for rasters),
so the engine works on a *working grid*: level 0 scaled by ``downsample``. Pixels are read from
the nearest finer pyramid level and resampled; a level within 2 % of the request is used as-is
(the working grid snaps to it) so a 4.0003× OpenSlide level is not re-read from level 0.

The grid cuts the working image into overlapping tiles (all fully inside the image) and into
output *blocks* aligned to the tile stride; a block is final once every tile covering it is done.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from gigavim.errors import UsageError
from gigavim.io.base import ImageSource, Window

SNAP_TOLERANCE = 0.02


@dataclass(frozen=True)
class Resolution:
    """The working grid: ``downsample`` level-0 pixels per working pixel, read from ``level``."""

    level: int
    downsample: float
    level_downsample: float
    shape: tuple[int, int]
    mpp: float | None = None
    gsd_m: float | None = None

    @property
    def read_factor(self) -> float:
        """Level pixels per working pixel (1 means the level is read as-is)."""
        return self.downsample / self.level_downsample

    def to_dict(self) -> dict[str, object]:
        return {
            "level": self.level,
            "downsample": self.downsample,
            "shape": list(self.shape),
            "mpp": self.mpp,
            "gsd_m": self.gsd_m,
        }


def resolve_resolution(
    source: ImageSource,
    *,
    mpp: float | None = None,
    gsd_m: float | None = None,
    level: int | None = None,
    model_mpp: float | None = None,
    model_gsd_m: float | None = None,
) -> Resolution:
    """Pick the working grid from an explicit level, µm/px or m/px, else the model's resolution.

    Raises :class:`UsageError` when options contradict each other or when a physical resolution
    is asked for (explicitly or by the model) but the input has no physical pixel size.
    """
    given = [name for name, v in (("--mpp", mpp), ("--gsd", gsd_m), ("--level", level)) if v is not None]
    if len(given) > 1:
        raise UsageError(f"give only one of {', '.join(given)}")
    if level is not None:
        if not 0 <= level < source.level_count:
            raise UsageError(f"{source.path}: level {level} does not exist "
                             f"(the image has {source.level_count} level(s))")
        return _at_level(source, level)
    if mpp is None and gsd_m is None:
        # The model's own resolution, in the unit the input speaks.
        if source.mpp is not None or source.gsd_m is None:
            mpp = model_mpp
        if mpp is None and source.gsd_m is not None:
            gsd_m = model_gsd_m
        if mpp is None and gsd_m is None:
            return _at_level(source, 0)
    if mpp is not None:
        return _physical(source, float(mpp), source.mpp, "µm/px", "--mpp", unit="mpp")
    return _physical(source, float(gsd_m), source.gsd_m, "m/px", "--gsd", unit="gsd_m")  # type: ignore[arg-type]


def _physical(source: ImageSource, target: float, native: float | None, unit_text: str,
              option: str, *, unit: str) -> Resolution:
    if target <= 0 or not math.isfinite(target):
        raise UsageError(f"{option} must be a positive number, got {target}")
    if native is None or native <= 0:
        raise UsageError(
            f"{source.path}: the image has no physical pixel size ({unit_text}), so a working "
            f"resolution of {target:g} {unit_text} cannot be set; "
            + ("give its µm/px with --image-mpp, or " if unit == "mpp" else "")
            + "use --level N to work in its pixels"
        )
    downsample = target / native
    for i, lv in enumerate(source.levels):
        if abs(lv.downsample / downsample - 1) <= SNAP_TOLERANCE:
            return _at_level(source, i)
    level = source.best_level_for_downsample(max(downsample, 1.0))
    shape = (max(1, round(source.height / downsample)), max(1, round(source.width / downsample)))
    return Resolution(level=level, downsample=downsample,
                      level_downsample=source.levels[level].downsample, shape=shape,
                      **{unit: native * downsample})


def _at_level(source: ImageSource, level: int) -> Resolution:
    lv = source.levels[level]
    return Resolution(
        level=level,
        downsample=lv.downsample,
        level_downsample=lv.downsample,
        shape=(lv.height, lv.width),
        mpp=None if source.mpp is None else source.mpp * lv.downsample,
        gsd_m=None if source.gsd_m is None else source.gsd_m * lv.downsample,
    )


def level0_scale_yx(source: ImageSource, resolution: Resolution) -> tuple[float, float]:
    """(y, x) level-0 pixels per working pixel, as ``segment`` places its outputs.

    A level read as-is keeps its own y and x factors (GDAL's and OpenSlide's grids: a 62-row
    level of 250 rows is 4.032 in y even when its one downsample says 4.016), so labels are
    put where that level's pixels really lie; a resampled grid has one factor.
    """
    if resolution.read_factor == 1:
        lv = source.levels[resolution.level]
        return source.height / lv.height, source.width / lv.width
    return resolution.downsample, resolution.downsample


def axis_origins(length: int, tile: int, overlap: int) -> tuple[int, tuple[int, ...]]:
    """Tile size and origins along one axis: stride ``tile - overlap``, last tile flush with the end."""
    if length <= tile:
        return length, (0,)
    stride = tile - overlap
    origins = [*range(0, length - tile, stride), length - tile]
    return tile, tuple(origins)


@dataclass(frozen=True)
class TileGrid:
    """Overlapping tiles over a (H, W) working image and the output blocks they finalize.

    Tiles are indexed (iy, ix) in row-major order; blocks are the ``stride``-sized cells of the
    output (the labels zarr's chunks), indexed (by, bx).
    """

    shape: tuple[int, int]
    tile: int
    overlap: int

    def __post_init__(self) -> None:
        if self.tile < 16:
            raise UsageError(f"--tile must be at least 16 pixels, got {self.tile}")
        if not 0 <= 2 * self.overlap <= self.tile:
            raise UsageError(f"--overlap must be between 0 and half the tile ({self.tile // 2}), "
                             f"got {self.overlap}")

    @cached_property
    def _axes(self) -> tuple[tuple[int, tuple[int, ...]], tuple[int, tuple[int, ...]]]:
        return (axis_origins(self.shape[0], self.tile, self.overlap),
                axis_origins(self.shape[1], self.tile, self.overlap))

    @property
    def tile_shape(self) -> tuple[int, int]:
        return (self._axes[0][0], self._axes[1][0])

    @property
    def origins(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (self._axes[0][1], self._axes[1][1])

    @property
    def n_tiles(self) -> tuple[int, int]:
        return (len(self.origins[0]), len(self.origins[1]))

    @property
    def block_shape(self) -> tuple[int, int]:
        """Output block (= labels chunk) size: the stride, or the whole axis for a single tile."""
        return tuple(  # type: ignore[return-value]
            t if n == 1 else t - self.overlap for t, n in zip(self.tile_shape, self.n_tiles, strict=True)
        )

    @property
    def n_blocks(self) -> tuple[int, int]:
        return tuple(  # type: ignore[return-value]
            math.ceil(s / b) for s, b in zip(self.shape, self.block_shape, strict=True)
        )

    @property
    def tile_count(self) -> int:
        return self.n_tiles[0] * self.n_tiles[1]

    def iter_tiles(self) -> Iterator[tuple[int, int]]:
        """Every tile, row-major, one at a time: a huge grid costs no memory up front."""
        return itertools.product(range(self.n_tiles[0]), range(self.n_tiles[1]))

    def iter_blocks(self) -> Iterator[tuple[int, int]]:
        return itertools.product(range(self.n_blocks[0]), range(self.n_blocks[1]))

    def tiles(self) -> list[tuple[int, int]]:
        """Every tile as a list (small grids; the engine iterates :meth:`iter_tiles`)."""
        return list(self.iter_tiles())

    def blocks(self) -> list[tuple[int, int]]:
        return list(self.iter_blocks())

    def tile_window(self, iy: int, ix: int) -> Window:
        th, tw = self.tile_shape
        return Window(self.origins[0][iy], self.origins[1][ix], th, tw)

    def block_window(self, by: int, bx: int) -> Window:
        bh, bw = self.block_shape
        y, x = by * bh, bx * bw
        return Window(y, x, min(bh, self.shape[0] - y), min(bw, self.shape[1] - x))

    def tiles_covering(self, by: int, bx: int) -> list[tuple[int, int]]:
        """Tiles that overlap block (by, bx)."""
        win = self.block_window(by, bx)
        ys = _overlapping(self.origins[0], self.tile_shape[0], win.y, win.y + win.height)
        xs = _overlapping(self.origins[1], self.tile_shape[1], win.x, win.x + win.width)
        return [(iy, ix) for iy in ys for ix in xs]

    def blocks_covered(self, iy: int, ix: int) -> list[tuple[int, int]]:
        """Blocks that tile (iy, ix) overlaps."""
        win = self.tile_window(iy, ix)
        bh, bw = self.block_shape
        bys = range(win.y // bh, min(self.n_blocks[0], math.ceil((win.y + win.height) / bh)))
        bxs = range(win.x // bw, min(self.n_blocks[1], math.ceil((win.x + win.width) / bw)))
        return [(by, bx) for by in bys for bx in bxs]

    def to_dict(self) -> dict[str, object]:
        return {"shape": list(self.shape), "tile": self.tile, "overlap": self.overlap}


def _overlapping(origins: tuple[int, ...], size: int, start: int, stop: int) -> list[int]:
    return [i for i, o in enumerate(origins) if o < stop and o + size > start]
