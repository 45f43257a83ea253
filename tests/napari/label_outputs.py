"""A small gigavim OME-Zarr written by the real writer, from a synthetic 3-class map.

A plain module (not conftest) so tests can import the constants they compare against.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gigavim.io.writers import write_outputs
from gigavim.io.writers.base import LabelMap

CLASSES = ["background", "tumour", "stroma"]
COLORS = [(0, 0, 0), (230, 25, 75), (60, 180, 75)]
MPP = 2.0


def class_map(height: int = 300, width: int = 200) -> np.ndarray:
    """Three horizontal bands of classes 0, 1, 2."""
    labels = np.zeros((height, width), dtype=np.uint8)
    labels[height // 3 :] = 1
    labels[2 * height // 3 :] = 2
    return labels


def write_label_zarr(path: Path, *, image: np.ndarray | None = None, probabilities: bool = False) -> Path:
    """An OME-Zarr as ``gigavim segment`` writes it, from a synthetic 3-class map."""
    labels = class_map()
    probs = None
    if probabilities:
        probs = np.stack([(labels == k).astype(np.uint8) * 255 for k in range(len(CLASSES))])
    label_map = LabelMap(labels=labels, classes=CLASSES, colors=COLORS, source_path=Path("slide.svs"),
                         source_kind="slide", mpp=MPP, scale_to_level0=4.0, image=image,
                         probabilities=probs)
    write_outputs(label_map, [path])
    return path
