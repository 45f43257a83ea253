"""A model's ``instances`` settings (``ModelMeta.instances``) applied to its class probabilities.

One place turns the stored contract — method, class indices, thresholds, minimum area in µm²
(or m²) — into pixel settings for :mod:`gigavim.instances.postprocess`, so ``gigavim eval`` and
the threshold tuning score exactly what the settings say, with the slide engine's rules
(:func:`gigavim.engine.instances.instance_spec`: the same methods, the minimum area rounded up
to whole pixels, 4-connected components).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from gigavim.errors import ModelError
from gigavim.instances.postprocess import drop_small, instances_from_distance, instances_from_probabilities

THREE_CLASS = "three-class-watershed"
COMPONENTS = "connected-components"
DISTANCE = "boundary-distance-watershed"
"""A three-class model's objects from h-maxima of the boundary-damped distance (see postprocess)."""
DEFAULT_THREE_CLASS = {"foreground_threshold": 0.5, "marker_threshold": 0.5, "min_marker_px": 4,
                       "min_area_um2": 10.0}
"""Post-processing settings of a three-class model before they are tuned on its training data."""


def default_settings(classes: list[str]) -> dict[str, Any]:
    """Settings for a model that stores none (``eval --instances``): three classes are taken as
    background / interior / boundary, two as background / objects (each connected component one
    object, as ``segment`` would make them)."""
    if len(classes) == 3:
        return {"method": THREE_CLASS, "object_class": classes[1], "interior": 1, "boundary": 2,
                **DEFAULT_THREE_CLASS}
    if len(classes) == 2:
        return {"method": COMPONENTS, "object_class": classes[1], "min_area_um2": 10.0}
    raise ModelError(f"cannot make objects from a model with {len(classes)} classes {classes} and "
                     "no instances settings")


def min_area_px(settings: dict[str, Any], mpp: float | None, gsd_m: float | None = None) -> int:
    """The minimum object area in working pixels, rounded up as the slide engine does (1 when
    the grid has no pixel size)."""
    for size, key in ((mpp, "min_area_um2"), (gsd_m, "min_area_m2")):
        if size and settings.get(key):
            return max(1, math.ceil(float(settings[key]) / size**2 - 1e-9))
    return 1


def instances_from_settings(probs: np.ndarray, settings: dict[str, Any], *, mpp: float | None = None,
                            gsd_m: float | None = None, classes: list[str] | None = None) -> np.ndarray:
    """(K, H, W) probabilities on a grid of ``mpp`` µm/px (or ``gsd_m`` m/px) → (H, W) int32 ids.

    ``classes`` (the model's) find the object class of a connected-components model by name."""
    method = settings.get("method")
    area = min_area_px(settings, mpp, gsd_m)
    # what both interior/boundary methods read the same way
    common = dict(interior=int(settings.get("interior", 1)), boundary=int(settings.get("boundary", 2)),
                  foreground_threshold=float(settings.get("foreground_threshold", 0.5)), min_area_px=area)
    if method == THREE_CLASS:
        return instances_from_probabilities(
            probs, marker_threshold=float(settings.get("marker_threshold", 0.5)),
            min_marker_px=int(settings.get("min_marker_px", 4)), **common)
    if method == DISTANCE:
        return instances_from_distance(
            probs, marker_height_px=float(settings.get("marker_height_px", 0.5)),
            boundary_weight=float(settings.get("boundary_weight", 1.0)), **common)
    if method == COMPONENTS:
        names = [c.lower() for c in classes or []]
        name = str(settings.get("object_class", "")).lower()
        index = names.index(name) if name in names else 1
        return drop_small(ndi.label(np.asarray(probs).argmax(axis=0) == index)[0], area)
    raise ModelError(f"unknown instances method {method!r}; known: {THREE_CLASS}, {DISTANCE}, {COMPONENTS}")
