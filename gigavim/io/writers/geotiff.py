"""Cloud-Optimized GeoTIFF output of the class ids, with GDAL's COG driver (via rasterio).

The map is first streamed window by window into a tiled scratch GTiff next to the output (memory
is one window, whatever the map size), then GDAL's COG driver copies it into the final layout:
512² DEFLATE tiles, overviews built by MODE resampling (class ids must not be averaged), IFDs
first. The scratch file is deleted afterwards, so the disk briefly holds both.

Georeference: rasters keep ``LabelMap.crs`` and ``.transform`` exactly. Slides have no CRS; their
pixel size goes into the TIFF resolution tags (pixels per centimetre = 10 000 / mpp, unit 3 =
cm) and, readable without unit arithmetic, into the ``MPP`` metadata tag (µm/px).
Classes: a GDAL colour table (nodata transparent), the band description, and per-class band tags
``CLASS_<id>=<name>``; provenance is the JSON ``GIGAVIM_PROVENANCE`` dataset tag.
"""

from __future__ import annotations

import errno
import json
import warnings
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio._err import CPLE_BaseError
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from gigavim.io.gdal_errors import quiet_libtiff
from gigavim.io.writers.atomic import disk_nearly_full, remove_path
from gigavim.io.writers.base import LabelMap

TILE = 512
WINDOW = 4096  # side of the square written per step (16 MiB of uint8)
GDAL_CACHE_MB = 128  # GDAL's block cache defaults to 5 % of RAM; keep the writer's memory flat
COMPRESSION = "DEFLATE"


def _resolution_tags(mpp: float, mpp_yx: tuple[float, float]) -> dict[str, str]:
    """TIFF resolution tags (pixels per cm, per axis) for µm/px sizes, plus an explicit ``MPP`` tag."""
    return {
        "TIFFTAG_XRESOLUTION": repr(10_000.0 / mpp_yx[1]),
        "TIFFTAG_YRESOLUTION": repr(10_000.0 / mpp_yx[0]),
        "TIFFTAG_RESOLUTIONUNIT": "3",
        "MPP": repr(float(mpp)),
    }


def _colormap(label_map: LabelMap) -> dict[int, tuple[int, int, int, int]]:
    colormap = {i: (int(r), int(g), int(b), 255) for i, (r, g, b) in enumerate(label_map.colors)}
    if label_map.nodata_label is not None:
        colormap[int(label_map.nodata_label)] = (0, 0, 0, 0)
    return colormap


def _write_scratch(label_map: LabelMap, path: Path) -> None:
    """Stream the class ids into a tiled GTiff with all metadata the COG copy carries over."""
    height, width = label_map.shape
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "uint8",
        "tiled": True, "blockxsize": TILE, "blockysize": TILE, "compress": "ZSTD",
        "zstd_level": 1, "bigtiff": "IF_SAFER",
        "nodata": label_map.nodata_label,
    }
    if label_map.crs is not None:
        profile["crs"] = label_map.crs
    if label_map.transform is not None:
        profile["transform"] = label_map.transform
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, height, WINDOW):
            for col in range(0, width, WINDOW):
                h, w = min(WINDOW, height - row), min(WINDOW, width - col)
                block = np.asarray(label_map.labels[row : row + h, col : col + w], dtype=np.uint8)
                dst.write(block, 1, window=Window(col, row, w, h))
        dst.write_colormap(1, _colormap(label_map))
        names = ", ".join(f"{i}={name}" for i, name in enumerate(label_map.classes))
        dst.set_band_description(1, f"class ids: {names}")
        dst.update_tags(1, **{f"CLASS_{i}": name for i, name in enumerate(label_map.classes)})
        tags = {"GIGAVIM_PROVENANCE": json.dumps(label_map.provenance())}
        if label_map.crs is None and label_map.mpp:
            tags.update(_resolution_tags(label_map.mpp, label_map.mpp_yx))
        dst.update_tags(**tags)


def write_geotiff(label_map: LabelMap, path: Path) -> None:
    """Write ``label_map`` as a Cloud-Optimized GeoTIFF at ``path``."""
    # ``path`` is already a hidden temporary; the scratch shares its prefix (and PID), so the
    # leftovers of a killed run are found and removed with it.
    scratch = path.with_name(path.name + ".scratch.tif")
    try:
        with quiet_libtiff(), rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            _write_scratch(label_map, scratch)
            rasterio.shutil.copy(
                scratch, path, driver="COG", COMPRESS=COMPRESSION, BLOCKSIZE=TILE,
                RESAMPLING="NEAREST", OVERVIEW_RESAMPLING="MODE", BIGTIFF="IF_SAFER",
            )
    except (RasterioError, CPLE_BaseError) as err:
        # The COG (tiles + overviews) needs about 1.5× the scratch file.
        needed = int(1.5 * scratch.stat().st_size) if scratch.exists() else 0
        if disk_nearly_full(path, needed):
            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from err
        raise
    finally:
        remove_path(scratch)
