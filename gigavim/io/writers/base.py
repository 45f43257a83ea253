"""What the segmentation engine hands to the writers: one finished label map and its context.

The engine blends tiles into disk-backed zarr arrays at the working resolution; the writers turn
those into OME-Zarr, Cloud-Optimized GeoTIFF and GeoJSON, each written under a temporary name
and moved into place only when complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LabelMap:
    """A finished segmentation at the working resolution.

    ``labels`` is a 2-D (H, W) uint8 array-like (usually a ``zarr.Array``; class ids, with
    ``nodata_label`` where the input had no data), ``probabilities`` an optional (K, H, W) uint8
    array-like (probability × 255 per class). ``scale_to_level0`` converts working pixels to
    level-0 pixels of the input (GeoJSON for slides uses level-0 coordinates, QuPath's
    convention): one factor, or (y, x) factors when they differ (a pyramid level read as-is
    whose size is not an exact division of level 0). For rasters ``crs`` and ``transform``
    (rasterio ``Affine``) georeference the working grid exactly; for slides ``mpp`` is the
    working µm/px (mean over the axes, see :attr:`mpp_yx`). ``image`` is an optional
    (h, w, C) uint8 array-like of the input covering the same area (any resolution, usually a
    low-resolution copy): OME-Zarr then uses it as the parent image of the labels.
    ``instances`` (an :class:`~gigavim.io.writers.objects.InstanceMap`) holds the objects of an
    instance model: OME-Zarr adds their id map, GeoJSON writes them as detections, CSV as a table.
    """

    labels: Any
    classes: list[str]
    colors: list[tuple[int, int, int]]
    source_path: Path
    source_kind: str
    probabilities: Any = None
    mpp: float | None = None
    gsd_m: float | None = None
    crs: str | None = None
    transform: Any = None
    scale_to_level0: float | tuple[float, float] = 1.0
    nodata_label: int | None = None
    model: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    image: Any = None
    instances: Any = None

    @property
    def scale_to_level0_yx(self) -> tuple[float, float]:
        """(y, x) level-0 pixels per working pixel."""
        s = self.scale_to_level0
        return (float(s), float(s)) if isinstance(s, (int, float)) else (float(s[0]), float(s[1]))

    @property
    def mpp_yx(self) -> tuple[float, float] | None:
        """(y, x) µm per working pixel of a slide. ``mpp`` is the mean over the axes (as
        OpenSlide's level downsample is the mean of its x and y factors), so each axis is
        level-0 µm/px times its own factor."""
        if not self.mpp:
            return None
        sy, sx = self.scale_to_level0_yx
        level0 = float(self.mpp) / ((sy + sx) / 2)
        return (level0 * sy, level0 * sx)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.labels.shape[:2])  # type: ignore[return-value]

    def provenance(self) -> dict[str, Any]:
        """Model, version and settings recorded in every output (JSON-serialisable)."""
        from gigavim import __version__

        return {
            "software": f"gigavim {__version__}",
            "source": str(self.source_path),
            "model": self.model,
            "settings": self.settings,
            "classes": self.classes,
            "colors": [list(c) for c in self.colors],
        }
