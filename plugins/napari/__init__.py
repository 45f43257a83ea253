"""napari plugin for gigavim (npe2): open slides, rasters and gigavim OME-Zarr outputs, segment.

The manifest ``napari.yaml`` beside this file declares the contributions; each lives in its own
private module (``_reader``, ``_widget``, ``_sample_data``), as in napari-plugin-template.
Nothing here imports napari at import time, so ``gigavim`` works without the ``napari`` extra.
"""

from __future__ import annotations

from gigavim.napari._reader import get_image_reader, get_zarr_reader, image_layers, zarr_layers

__all__ = ["get_image_reader", "get_zarr_reader", "image_layers", "zarr_layers"]
