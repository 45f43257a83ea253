"""Choose the right reader for a file by looking at its contents.

Order: OpenSlide's own detection for vendor slide formats (Aperio, Hamamatsu, MIRAX, DICOM,
...); for files OpenSlide calls ``generic-tiff`` (which plain GeoTIFFs are too) a georeferenced
file goes to rasterio and a non-georeferenced tiled pyramid to OpenSlide; otherwise GDAL's
drivers for rasters; otherwise Pillow/tifffile for plain images. The file's extension only
shapes the error message when nothing recognises the contents.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from gigavim.errors import InputError, UsageError
from gigavim.io.base import ImageSource, SourceKind

#: Extensions of the slide formats OpenSlide reads (only used to word error messages).
SLIDE_SUFFIXES = (
    ".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".bif", ".vms", ".vmu", ".svslide", ".dcm",
)  # fmt: skip
#: GDAL drivers that, without georeferencing, are just pictures (decoded whole by Pillow/tifffile).
PLAIN_IMAGE_DRIVERS = ("PNG", "JPEG", "GTiff", "BMP", "GIF", "WEBP")
#: Larger non-georeferenced TIFFs are read window by window through GDAL instead.
PLAIN_IMAGE_MAX_PIXELS = 64_000_000
#: Longest side a real image has (a 16.7 M px side: a whole continent at 0.3 m, a slide at 0.005 µm/px).
MAX_SIDE = 1 << 24


def check_input_file(path: Path) -> None:
    """Fail with one clear line when ``path`` cannot possibly be an image file."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an image file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (0 bytes)")


def _pyramid_reader(path: Path) -> type[ImageSource] | None:
    """The reader for an OME-Zarr image directory or a SubIFD OME-TIFF pyramid, else None
    (OpenSlide would read only the full-resolution page of the latter)."""
    from gigavim.io.zarr_levels_source import (
        OmeTiffPyramidSource,
        OmeZarrSource,
        is_ome_zarr,
        is_subifd_pyramid,
    )

    if path.is_dir():
        return OmeZarrSource if is_ome_zarr(path) else None
    if path.suffix.lower() in (".tif", ".tiff") and is_subifd_pyramid(path) and not (_gdal_facts(path) or
                                                                                      ("", False, 0))[1]:
        return OmeTiffPyramidSource
    return None


def detect_kind(path: Path) -> SourceKind:
    """``"slide"``, ``"raster"`` or ``"image"`` from the file's contents."""
    vendor = _openslide_format(path)
    if vendor is not None and vendor != "generic-tiff":
        return "slide"
    gdal = _gdal_facts(path)
    if vendor == "generic-tiff":
        return "raster" if gdal is not None and gdal[1] else "slide"
    if gdal is not None:
        driver, georeferenced, pixels = gdal
        if georeferenced:
            return "raster"
        if driver in PLAIN_IMAGE_DRIVERS and not (driver == "GTiff" and pixels > PLAIN_IMAGE_MAX_PIXELS):
            return "image"
        return "raster"
    from gigavim.io.plain_source import is_tiff_file

    if is_tiff_file(path) or _pillow_can_open(path):
        return "image"  # a TIFF nothing else took: tifffile reads it or says what is damaged
    if path.suffix.lower() in SLIDE_SUFFIXES:
        raise InputError(f"{path}: not a slide OpenSlide can read (unrecognised or damaged contents)")
    raise InputError(f"{path}: unsupported file: not a slide, raster or image gigavim recognises")


def open_image(path: str | os.PathLike[str], *, kind: SourceKind | None = None) -> ImageSource:
    """Open ``path`` with the reader its contents call for (or the one ``kind`` names).

    Opening reads only headers: a file whose pixel data is damaged opens and fails on the
    first read (see :func:`gigavim.io.probe.probe_read`); a file that is entirely nodata opens
    and is refused by :func:`gigavim.io.probe.require_data`, which processing calls.
    """
    from gigavim.io.openslide_source import OpenSlideSource
    from gigavim.io.plain_source import PlainImageSource
    from gigavim.io.raster_source import RasterSource

    path = Path(path)
    pyramid = _pyramid_reader(path) if kind is None and path.exists() else None
    if pyramid is not None:
        return pyramid(path)
    check_input_file(path)
    readers = {"slide": OpenSlideSource, "raster": RasterSource, "image": PlainImageSource}
    if kind is not None and kind not in readers:
        raise UsageError(f"unknown image kind {kind!r}: choose one of {', '.join(readers)}")
    source = readers[kind or detect_kind(path)](path)
    if source.width < 1 or source.height < 1:  # a header can say 0×0; nothing downstream expects it
        source.close()
        raise InputError(f"{path}: image has no pixels ({source.width}×{source.height})")
    if max(source.width, source.height) > MAX_SIDE:  # a damaged or hand-made header, not a scan
        source.close()
        raise InputError(f"{path}: header claims {source.width}×{source.height} px, beyond any real image "
                         f"(at most {MAX_SIDE:,} px a side); the file is corrupt")
    return source


def _openslide_format(path: Path) -> str | None:
    import openslide

    try:
        return openslide.OpenSlide.detect_format(str(path))
    except Exception:
        return None


def _gdal_facts(path: Path) -> tuple[str, bool, int] | None:
    """(driver, georeferenced, pixel count) when GDAL opens the file as a raster, else None."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    from gigavim.io.raster_source import is_georeferenced

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                return ds.driver, is_georeferenced(ds), ds.width * ds.height
    except (RasterioError, OSError, ValueError):
        return None


def _pillow_can_open(path: Path) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data" from damaged TIFFs
            with Image.open(path):
                return True
    except (UnidentifiedImageError, OSError, ValueError):
        return False
