"""Fixtures building small LabelMaps like the engine's (zarr-stored class ids) for writer tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from writers_synthetic import CLASSES, COLORS, pattern, to_zarr

from gigavim.io.writers.base import LabelMap


@pytest.fixture
def slide_map(tmp_path: Path) -> Callable[..., LabelMap]:
    """A slide-like LabelMap (2 µm/px working, ×4 to level 0) over zarr-stored class ids."""

    counter = itertools.count()

    def make(labels: Any = None, **fields: Any) -> LabelMap:
        labels = pattern() if labels is None else labels
        if isinstance(labels, np.ndarray):  # stored like the engine's accumulator
            labels = to_zarr(labels, tmp_path / f"engine_labels_{next(counter)}.zarr", (256, 256))
        defaults: dict[str, Any] = {
            "labels": labels, "classes": CLASSES, "colors": COLORS,
            "source_path": Path("slide.svs"), "source_kind": "slide", "mpp": 2.0,
            "scale_to_level0": 4.0, "model": {"name": "tiny", "version": "1", "trained": False},
            "settings": {"tile": 1024, "overlap": 128},
        }
        return LabelMap(**{**defaults, **fields})

    return make


@pytest.fixture
def raster_map(real_data: Path) -> Callable[..., LabelMap]:
    """A raster LabelMap on the exact grid of geo/RGB.byte.tif (EPSG:32618, 300 m), nodata 255."""
    import rasterio

    with rasterio.open(real_data / "geo" / "RGB.byte.tif") as src:
        crs, transform, shape = src.crs.to_string(), src.transform, src.shape

    def make(labels: np.ndarray | None = None, **fields: Any) -> LabelMap:
        if labels is None:
            labels = pattern(*shape)
            labels[:40, :] = 255  # nodata collar
        defaults: dict[str, Any] = {
            "labels": labels, "classes": ["water", "forest", "urban"], "colors": COLORS,
            "source_path": real_data / "geo" / "RGB.byte.tif", "source_kind": "raster",
            "gsd_m": 300.0, "crs": crs, "transform": transform, "nodata_label": 255,
            "model": {"name": "tiny", "version": "1", "trained": True},
        }
        return LabelMap(**{**defaults, **fields})

    return make
