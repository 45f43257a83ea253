"""Instance ground truth (0 = background, 1..N objects) on the working grid, and the
background / interior / boundary classes a three-class instance model trains on.

Instance ids are sampled at working-pixel centres exactly as class labels are (nearest
neighbour, see :mod:`gigavim.train.labels`), so an id is never averaged with its neighbour's.
The boundary band is then drawn on the working grid with a width given in µm: a 20x and a 40x
image resampled to the same µm/px get the same band, and two touching objects each get a band
on their side of the contact, so the model learns a gap between them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import disk

from gigavim.engine.plan import Resolution
from gigavim.errors import InputError
from gigavim.io.base import ImageSource
from gigavim.train.labels import VECTOR_SUFFIXES, LabelNodata, rasterize_annotations, read_label_raster
from gigavim.train.metrics import IGNORE_LABEL
from gigavim.train.working_image import row_blocks

BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2
DEFAULT_BOUNDARY_UM = 0.5
"""Boundary band width: one working pixel at 0.5 µm/px, two at 0.25 µm/px."""


def load_instance_map(source: ImageSource, label_path: str | Path, *, resolution: Resolution,
                      label_nodata: LabelNodata = "tag") -> np.ndarray:
    """(H, W) int32 object ids on ``resolution``'s grid; ``-1`` where nothing is labelled.

    A label image/raster holds ids (16-bit PNGs: 0 background, 1..N objects); a GeoJSON holds
    one polygon per object, burnt with ids 1..N in file order (a later polygon wins overlaps).
    """
    label_path = Path(label_path)
    if not label_path.is_file():
        raise InputError(f"{label_path}: label file not found")
    if label_path.suffix.lower() in VECTOR_SUFFIXES:
        ids = rasterize_annotations(source, label_path, resolution=resolution, instances=True)
    else:
        ids = read_label_raster(source, label_path, resolution=resolution, label_nodata=label_nodata)
    if ids.size and int(ids.min()) < -1:
        raise InputError(f"{label_path}: instance labels must be non-negative ids "
                         f"(0 = background, 1..N objects), not {int(ids.min())}")
    if ids.size and int(ids.max()) > np.iinfo(np.int32).max:
        raise InputError(f"{label_path}: instance id {int(ids.max())} is too large")
    return ids.astype(np.int32, copy=False)


def boundary_radius_px(boundary_um: float, mpp: float | None) -> int:
    """The band width in working pixels (at least 1); without a µm/px the width is taken in pixels."""
    if boundary_um <= 0:
        raise ValueError(f"boundary width must be positive, not {boundary_um}")
    return max(1, round(boundary_um / mpp)) if mpp else max(1, round(boundary_um))


def interior_boundary_classes(ids: np.ndarray, radius_px: int) -> np.ndarray:
    """(H, W) uint8: 0 background, 1 interior, 2 boundary, :data:`IGNORE_LABEL` where ``ids < 0``.

    A pixel of object i is boundary when a pixel within ``radius_px`` (a disk) has another value
    (background, another object, or unlabelled): the inner band of each object, on both sides of
    a contact. The image edge does not count as an edge (nothing is known beyond it). Computed in
    row strips with a halo, so the temporaries stay small on a large label map.
    """
    ids = np.asarray(ids)
    h, w = ids.shape
    out = np.empty((h, w), dtype=np.uint8)
    foot = disk(radius_px).astype(bool)
    for y0, y1 in row_blocks(h, w):
        a0, a1 = max(0, y0 - radius_px), min(h, y1 + radius_px)
        chunk = ids[a0:a1]
        edge = (ndi.maximum_filter(chunk, footprint=foot, mode="nearest")
                != ndi.minimum_filter(chunk, footprint=foot, mode="nearest"))[y0 - a0:y1 - a0]
        own = ids[y0:y1]
        cls = np.where(own > 0, np.where(edge, BOUNDARY, INTERIOR), BACKGROUND).astype(np.uint8)
        cls[own < 0] = IGNORE_LABEL
        out[y0:y1] = cls
    return out
