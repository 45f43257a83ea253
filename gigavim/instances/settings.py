"""A model's ``instances`` settings (``ModelMeta.instances``) applied to its class probabilities.

One place turns the stored contract — method, class indices, thresholds, minimum area in µm²
(or m²) — into pixel settings for :mod:`gigavim.instances.postprocess`, so ``gigavim eval`` and
the threshold tuning score exactly what the settings say.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gigavim.errors import ModelError
from gigavim.instances.postprocess import instances_from_foreground, instances_from_probabilities

THREE_CLASS = "three-class-watershed"
FOREGROUND = "foreground-watershed"
DEFAULT_THREE_CLASS = {"foreground_threshold": 0.5, "marker_threshold": 0.5, "min_marker_px": 4,
                       "min_area_um2": 10.0}
"""Post-processing settings of a three-class model before they are tuned on its training data."""


def default_settings(classes: list[str]) -> dict[str, Any]:
    """Settings for a model that stores none (``eval --instances``): three classes are taken as
    background / interior / boundary, two as background / foreground split by distance."""
    if len(classes) == 3:
        return {"method": THREE_CLASS, "object_class": classes[1], "interior": 1, "boundary": 2,
                **DEFAULT_THREE_CLASS}
    if len(classes) == 2:
        return {"method": FOREGROUND, "object_class": classes[1], "foreground": 1, "min_area_um2": 10.0}
    raise ModelError(f"cannot make objects from a model with {len(classes)} classes {classes} and "
                     "no instances settings")


def min_area_px(settings: dict[str, Any], mpp: float | None, gsd_m: float | None = None) -> int:
    """The minimum object area in working pixels (1 when the grid has no pixel size)."""
    if mpp and settings.get("min_area_um2"):
        return max(1, round(float(settings["min_area_um2"]) / mpp**2))
    if gsd_m and settings.get("min_area_m2"):
        return max(1, round(float(settings["min_area_m2"]) / gsd_m**2))
    return 1


def instances_from_settings(probs: np.ndarray, settings: dict[str, Any], *, mpp: float | None = None,
                            gsd_m: float | None = None) -> np.ndarray:
    """(K, H, W) probabilities on a grid of ``mpp`` µm/px (or ``gsd_m`` m/px) → (H, W) int32 ids."""
    method = settings.get("method")
    area = min_area_px(settings, mpp, gsd_m)
    if method == THREE_CLASS:
        return instances_from_probabilities(
            probs, interior=int(settings.get("interior", 1)), boundary=int(settings.get("boundary", 2)),
            foreground_threshold=float(settings.get("foreground_threshold", 0.5)),
            marker_threshold=float(settings.get("marker_threshold", 0.5)),
            min_marker_px=int(settings.get("min_marker_px", 4)), min_area_px=area)
    if method == FOREGROUND:
        mask = np.asarray(probs).argmax(axis=0) == int(settings.get("foreground", 1))
        neck = 2.0 / mpp if mpp else 3.0  # split touching objects at necks ~2 µm apart (baseline's rule)
        return instances_from_foreground(mask, min_distance_px=neck, smooth_px=neck / 4, min_area_px=area)
    raise ModelError(f"unknown instances method {method!r}; known: {THREE_CLASS}, {FOREGROUND}")
