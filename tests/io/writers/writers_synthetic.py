"""Synthetic label maps shared by the writer tests (imported by name: tests are not a package)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import zarr

CLASSES = ["background", "tumor", "stroma"]
COLORS = [(0, 0, 0), (255, 0, 0), (0, 200, 0)]


def pattern(height: int = 700, width: int = 600) -> np.ndarray:
    """Class ids with known regions: blocks, a disk, an L crossing many rows, diagonal touches."""
    labels = np.zeros((height, width), np.uint8)
    labels[100:300, 50:250] = 1  # block
    yy, xx = np.mgrid[:height, :width]
    labels[(yy - 450) ** 2 + (xx - 400) ** 2 < 90**2] = 2  # disk
    labels[20:650, 500:530] = 2  # tall bar: crosses every band edge
    labels[620:650, 300:530] = 2  # foot of the L, joined to the bar
    labels[400, 50] = labels[401, 51] = labels[402, 52] = 1  # diagonal staircase, 8-connected
    return labels


class GuardedArray:
    """An array-like that fails any read larger than ``limit`` pixels (bounded-memory check)."""

    def __init__(self, data: np.ndarray, limit: int) -> None:
        self.data, self.limit = data, limit
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        block = self.data[key]
        assert block.size <= self.limit, f"read of {block.shape} exceeds {self.limit} pixels"
        return block


def to_zarr(array: np.ndarray, path: Path, chunks: tuple[int, ...]) -> zarr.Array:
    stored = zarr.create_array(store=str(path), shape=array.shape, chunks=chunks, dtype=array.dtype)
    stored[...] = array
    return stored
