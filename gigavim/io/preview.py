"""RGB uint8 previews of any source (thumbnails for ``gigavim info`` and viewers).

Slides and RGB images are shown as they are; rasters of other types or band counts are
stretched between the 2nd and 98th percentiles of their valid pixels (nodata and NaN left
black), using the red/green/blue bands when the file names them, else the first three.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gigavim.errors import OutputError
from gigavim.io.base import ImageSource


def preview_rgb(source: ImageSource, max_size: int = 1024) -> np.ndarray:
    """A (h, w, 3) uint8 picture of ``source`` no larger than ``max_size`` on its longest side."""
    img = source.thumbnail(max_size)
    img = img[..., _display_bands(source)]
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    values = img.astype(np.float64)
    valid = np.isfinite(values)
    if source.nodata is not None and np.isfinite(source.nodata):
        valid &= values != source.nodata
    if not valid.any():
        return np.zeros(img.shape, dtype=np.uint8)
    low, high = np.percentile(values[valid], [2, 98])
    scaled = (values - low) / max(high - low, 1e-12) * 255
    return np.where(valid, np.clip(scaled, 0, 255), 0).astype(np.uint8)


def _display_bands(source: ImageSource) -> list[int]:
    names = [name.lower() for name in source.band_names]
    if all(colour in names for colour in ("red", "green", "blue")):
        return [names.index(colour) for colour in ("red", "green", "blue")]
    if source.bands >= 3:
        return [0, 1, 2]
    return [0, 0, 0]


def save_preview(source: ImageSource, out: str | Path, max_size: int = 1024) -> Path:
    """Write :func:`preview_rgb` as a PNG (or any format the suffix names)."""
    from skimage.io import imsave

    out = Path(out)
    try:
        imsave(out, preview_rgb(source, max_size), check_contrast=False)
    except (OSError, ValueError) as err:
        raise OutputError(f"{out}: cannot write thumbnail ({err})") from err
    return out
