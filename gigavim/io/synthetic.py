"""Write deterministic test slides and rasters: Aperio SVS / generic TIFF pyramids and GeoTIFFs.

Real slides are big and cannot be shipped with the tests; these writers make slides of any
size that OpenSlide reads like scanner output. Pixels are generated tile by tile from
functions of level-0 coordinates, so a 50,000 × 50,000 slide is written in bounded memory and
every pyramid level shows the same picture. The ``"tissue"`` pattern draws pink tissue blobs
with purple nuclei on a white background, so tissue detection has something real to find.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

Pattern = Literal["tissue", "gradient"]
#: Paints RGB uint8 pixels from level-0 pixel-centre coordinates (y0 column, x0 row, downsample).
Painter = Callable[[np.ndarray, np.ndarray, float], np.ndarray]

_BACKGROUND = np.array([243, 243, 246], dtype=np.float32)
_EOSIN = np.array([233, 160, 196], dtype=np.float32)
_HEMATOXYLIN = np.array([92, 52, 150], dtype=np.float32)
#: Pyramids with more raw bytes than this are written as BigTIFF (classic TIFF stops at 4 GiB).
BIGTIFF_ABOVE_BYTES = 2**31
_NUCLEUS_CELL = 24  # level-0 pixels between nucleus centres (about one cell at 0.25-0.5 µm/px)
_NUCLEUS_RADIUS = 5.0


def default_level_count(height: int, width: int, downsample: int = 4, smallest: int = 1024) -> int:
    """Levels (each ``downsample`` × smaller) until the longest side is at most ``smallest``."""
    count, side = 1, max(height, width)
    while side > smallest and side // downsample >= 1:
        side //= downsample
        count += 1
    return count


def write_synthetic_slide(
    path: str | Path,
    height: int,
    width: int,
    *,
    mpp: float = 0.5,
    tile: int = 256,
    levels: int | None = None,
    downsample: int = 4,
    pattern: Pattern = "tissue",
    seed: int = 0,
    vendor: Literal["aperio", "generic"] = "aperio",
    compression: str | None = "jpeg",
    quality: int = 90,
    painter: Painter | None = None,
) -> Path:
    """Write a tiled RGB pyramid that OpenSlide opens as ``aperio`` (or ``generic-tiff``).

    ``levels`` defaults to :func:`default_level_count`; level ``i`` is ``downsample**i``
    smaller. ``painter`` (a function of level-0 pixel-centre coordinates) replaces ``pattern``
    when a test needs a scene of its own. ``compression=None`` or ``"zlib"`` give lossless
    pixels (for exact comparisons).
    Memory use is a few tiles, whatever the size.
    """
    import tifffile

    path = Path(path)
    levels = default_level_count(height, width, downsample) if levels is None else levels
    shapes = [(max(1, height // downsample**i), max(1, width // downsample**i)) for i in range(levels)]
    paint = painter or _PATTERNS[pattern](height, width, seed)
    raw_bytes = sum(h * w * 3 for h, w in shapes)
    codec_args: dict[str, Any] = {"compression": compression}
    if compression == "jpeg":
        codec_args["compressionargs"] = {"level": quality}
    with tifffile.TiffWriter(path, bigtiff=raw_bytes > BIGTIFF_ABOVE_BYTES) as tif:
        for i, (h, w) in enumerate(shapes):
            level_downsample = (height / h + width / w) / 2
            level_mpp = mpp * level_downsample
            description = None
            if vendor == "aperio" and i == 0:
                description = _aperio_description(height, width, tile, mpp, compression, quality)
            tif.write(
                _tiles(paint, h, w, tile, height / h, width / w),
                shape=(h, w, 3),
                dtype=np.uint8,
                tile=(tile, tile),
                photometric="rgb",
                description=description,
                metadata=None,
                subfiletype=0 if i == 0 else 1,
                resolution=(1e4 / level_mpp, 1e4 / level_mpp),
                resolutionunit="CENTIMETER",
                **codec_args,
            )
    return path


def _aperio_description(
    height: int, width: int, tile: int, mpp: float, compression: str | None, q: int
) -> str:
    """Page-0 ImageDescription in the form OpenSlide's Aperio driver recognises."""
    app_mag = max(1, round(10 / mpp))
    codec = "JPEG" if compression == "jpeg" else "RAW"
    return (
        f"Aperio Image Library v12.0.0\r\n{width}x{height} [0,0 {width}x{height}] ({tile}x{tile}) "
        f"{codec}/RGB Q={q}|AppMag = {app_mag}|MPP = {mpp}"
    )


def _tiles(
    paint: Painter,
    h: int,
    w: int,
    tile: int,
    scale_y: float,
    scale_x: float,
) -> Iterator[np.ndarray]:
    """Full (tile, tile, 3) tiles in row-major order; the pattern continues past the edges."""
    for ty in range(0, h, tile):
        y0 = ((np.arange(ty, ty + tile) + 0.5) * scale_y)[:, None]
        for tx in range(0, w, tile):
            x0 = ((np.arange(tx, tx + tile) + 0.5) * scale_x)[None, :]
            yield paint(y0, x0, max(scale_y, scale_x))


# -- patterns: functions of level-0 pixel-centre coordinates (y0 column, x0 row, downsample) -----
def _tissue_pattern(height: int, width: int, seed: int) -> Painter:
    """Smooth random blobs (about 40 % of the area) of pink tissue with purple nuclei."""
    from skimage.filters import gaussian

    rng = np.random.default_rng(seed)
    cells = 24  # blob field resolution across the longest side
    cell = max(height, width) / cells
    field = gaussian(rng.standard_normal((cells + 4, cells + 4)), sigma=1.5, preserve_range=True)
    field = ((field - field.mean()) / field.std()).astype(np.float32)
    threshold = float(np.quantile(field, 0.6))
    texture = _nuclei_texture(seed).astype(np.intp)  # 0 = eosin, 1 = nucleus
    colours = _tissue_colours(float(texture.mean()))

    def paint(y0: np.ndarray, x0: np.ndarray, downsample: float) -> np.ndarray:
        # The blob field varies over ~cell pixels: evaluate it every 8th pixel and repeat.
        density = _bilinear(field, y0[::8] / cell + 1.5, x0[:, ::8] / cell + 1.5) - threshold
        shade = np.clip(density * 255, 0, 255).astype(np.intp)
        shade = shade.repeat(8, axis=0)[: y0.shape[0]].repeat(8, axis=1)[:, : x0.shape[1]]
        if not shade.any():
            return np.ascontiguousarray(np.broadcast_to(colours[0, 0], (*shade.shape, 3)))
        if downsample >= 8:  # nuclei are smaller than a pixel: use their mean coverage
            return colours[shade, 2]
        period = texture.shape[0]
        rows = y0[:, 0].astype(np.int64) % period
        cols = x0[0].astype(np.int64) % period
        return colours[shade, texture[np.ix_(rows, cols)]]

    return paint


def _tissue_colours(nucleus_cover: float) -> np.ndarray:
    """(256, 3, 3) uint8 colours by tissue density step and stain (eosin, nucleus, mean of both).

    Density step ``d`` (0 = background edge, 255 = dense core) sets a soft blob edge and a
    slightly darker core; looking colours up is much faster than blending per pixel.
    """
    density = np.arange(256, dtype=np.float32)[:, None, None] / 255
    cover = np.array([0.0, 1.0, nucleus_cover], dtype=np.float32)[None, :, None]
    tissue = np.clip(density * 4, 0, 1)
    stain = _EOSIN * (1 - cover) + _HEMATOXYLIN * cover
    rgb = _BACKGROUND * (1 - tissue) + stain * (1 - 0.12 * density) * tissue
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def _nuclei_texture(seed: int, cells: int = 32) -> np.ndarray:
    """A periodic (cells·24)² map of nucleus coverage: one jittered disc in most 24-px cells."""
    size = cells * _NUCLEUS_CELL
    y0 = np.arange(size, dtype=np.int64)[:, None] + 0.5
    x0 = np.arange(size, dtype=np.int64)[None, :] + 0.5
    cy, cx = (y0 // _NUCLEUS_CELL).astype(np.int64), (x0 // _NUCLEUS_CELL).astype(np.int64)
    hashed = (cy * 73856093) ^ (cx * 19349663) ^ (seed * 83492791)
    hashed = (hashed * 2654435761) & 0xFFFFFFFF
    oy = 6 + (hashed & 0xFF) % 12
    ox = 6 + ((hashed >> 8) & 0xFF) % 12
    present = ((hashed >> 16) & 0xFF) < 180
    d2 = (y0 - (cy * _NUCLEUS_CELL + oy)) ** 2 + (x0 - (cx * _NUCLEUS_CELL + ox)) ** 2
    return ((d2 < _NUCLEUS_RADIUS**2) & present).astype(np.float32)


def _gradient_pattern(height: int, width: int, seed: int) -> Painter:
    """Red rises with x, green with y (smooth, so JPEG keeps it): pixel positions are checkable."""

    def paint(y0: np.ndarray, x0: np.ndarray, downsample: float) -> np.ndarray:
        red = np.broadcast_to(x0 * 255 / width, (y0.shape[0], x0.shape[1]))
        green = np.broadcast_to(y0 * 255 / height, red.shape)
        blue = np.full(red.shape, 128.0)
        return np.clip(np.stack([red, green, blue], axis=-1) + 0.5, 0, 255).astype(np.uint8)

    return paint


_PATTERNS = {"tissue": _tissue_pattern, "gradient": _gradient_pattern}


def _bilinear(grid: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Sample ``grid`` at fractional (y, x) (broadcast), clamped to its edges."""
    y = np.clip(y, 0, grid.shape[0] - 1.001)
    x = np.clip(x, 0, grid.shape[1] - 1.001)
    iy, ix = y.astype(np.int64), x.astype(np.int64)
    fy, fx = y - iy, x - ix
    top = grid[iy, ix] * (1 - fx) + grid[iy, ix + 1] * fx
    bottom = grid[iy + 1, ix] * (1 - fx) + grid[iy + 1, ix + 1] * fx
    return top * (1 - fy) + bottom * fy


def write_geotiff(
    path: str | Path,
    array: np.ndarray,
    *,
    crs: str = "EPSG:32633",
    transform: Any = None,
    gsd_m: float = 10.0,
    origin_xy: tuple[float, float] = (500_000.0, 5_000_000.0),
    nodata: float | None = None,
    tile: int = 256,
    overviews: Sequence[int] = (),
    compress: str = "deflate",
) -> Path:
    """Write a (h, w) or (h, w, bands) array as a tiled GeoTIFF, optionally with overviews.

    Without ``transform`` the raster is north-up with ``gsd_m`` pixels and its top-left corner
    at ``origin_xy`` (in ``crs`` units).
    """
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling

    path = Path(path)
    data = array[..., None] if array.ndim == 2 else array
    height, width, bands = data.shape
    if transform is None:  # north-up: x grows east, y (rows) grows south
        transform = Affine(gsd_m, 0.0, origin_xy[0], 0.0, -gsd_m, origin_xy[1])
    tiled = height >= tile and width >= tile
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": bands,
        "dtype": data.dtype,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "compress": compress,
    }
    if tiled:
        profile.update(tiled=True, blockxsize=tile, blockysize=tile)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.moveaxis(data, -1, 0))
        if overviews:
            dst.build_overviews(list(overviews), Resampling.average)
    return path


__all__ = ["Pattern", "default_level_count", "write_geotiff", "write_synthetic_slide"]
