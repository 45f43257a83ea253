"""The source's own pixels on the working grid, as a lazy dask array (``segment --with-image``).

OME-Zarr viewers (napari-ome-zarr, QuPath, vizarr) show labels over their parent image, which
must have the labels' grid level by level. This view resamples the source exactly as the model
saw it (:class:`~gigavim.engine.reader.TileReader`) chunk by chunk, back in the source's dtype,
so the writer streams it into a pyramid in bounded memory.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from gigavim.engine.plan import Resolution
from gigavim.engine.reader import TileReader
from gigavim.io.base import ImageSource, Window
from gigavim.io.lazy import windowed_dask

CHUNK = 1024


def working_pixels(source: ImageSource, resolution: Resolution, chunk: int = CHUNK) -> da.Array:
    """(H, W, bands) pixels of ``source`` at ``resolution``, in the source's dtype (nodata → 0)."""
    reader = TileReader(source, resolution)
    dtype = np.dtype(source.dtype)

    def read(window: Window) -> np.ndarray:
        pixels = reader.read(window)[0]
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            pixels = np.clip(np.rint(pixels), info.min, info.max)
        return pixels.astype(dtype)

    shape = (*resolution.shape, source.bands)
    return windowed_dask(read, shape, dtype, chunk, (str(source.path), resolution.to_dict()),
                         prefix="gigavim-working-pixels")
