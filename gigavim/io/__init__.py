"""Image sources: pathology slides (OpenSlide), georeferenced rasters (rasterio/GDAL) and
plain images, all behind :class:`~gigavim.io.base.ImageSource`.

``open_image(path)`` picks the reader from the file's contents. Opening reads headers only;
``probe_read`` reads a few tiles to catch damaged pixel data, and ``require_data`` refuses a
file in which every pixel is nodata (``gigavim info`` reports such files; processing refuses
them).
"""

from __future__ import annotations

from gigavim.io.base import ImageSource, Level, Window
from gigavim.io.open import detect_kind, open_image
from gigavim.io.probe import probe_read, require_data, valid_fraction

__all__ = [
    "ImageSource",
    "Level",
    "Window",
    "detect_kind",
    "open_image",
    "probe_read",
    "require_data",
    "valid_fraction",
]
