"""Choose a three-class model's post-processing thresholds on its own training images.

The thresholds that turn probabilities into objects (``foreground_threshold``,
``marker_threshold``, ``min_marker_px``) are part of the model: they are picked by grid search
on images the model was trained on — never on held-out images, whose scores must stay honest —
maximising pooled AJI + PQ (both penalise merged and split objects; AJI also pixel errors).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gigavim.instances.metrics import InstanceScores
from gigavim.instances.settings import DISTANCE, THREE_CLASS, instances_from_settings

# The foreground threshold stays at 0.5 (the model's own "more likely nucleus than not"): tuned on
# training images, where the model is surer than on new tissue, it came out at 0.4 and over-called
# nuclei on a held-out organ (bladder fold: pixel Dice 0.70 at 0.4, 0.75 at 0.5).
GRID = {"foreground_threshold": (0.5,), "marker_threshold": (0.2, 0.4, 0.6), "min_marker_px": (3, 6)}
DISTANCE_GRID = {"foreground_threshold": (0.5,), "marker_height_px": (0.25, 0.5, 0.75),
                 "boundary_weight": (1.0, 1.5)}
METHOD_GRIDS = {THREE_CLASS: GRID, DISTANCE: DISTANCE_GRID}
"""The two ways a three-class model's probabilities become objects, each with its grid."""


@dataclass
class TuningImage:
    """One training image's class probabilities, its truth ids (``-1`` unlabelled) and µm/px."""

    probs: np.ndarray
    truth: np.ndarray
    mpp: float | None


def tune_settings(images: Sequence[TuningImage], settings: dict[str, Any],
                  grid: dict[str, Sequence[float]] | None = None,
                  ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The best settings (``settings`` with the grid's keys replaced) and every tried point's scores."""
    grid = grid or METHOD_GRIDS.get(settings.get("method", THREE_CLASS), GRID)
    keys = list(grid)
    tried = []
    best, best_score = dict(settings), -np.inf
    for values in itertools.product(*(grid[k] for k in keys)):
        trial = {**settings, **dict(zip(keys, values, strict=True))}
        acc = InstanceScores()
        for im in images:
            pred = instances_from_settings(im.probs, trial, mpp=im.mpp)
            unlabelled = im.truth < 0
            acc.add(np.where(unlabelled, 0, im.truth), pred, ignore=unlabelled)
        pooled = acc.result()["pooled"]
        score = _score(pooled)
        tried.append({"method": trial.get("method"), **dict(zip(keys, values, strict=True)),
                      "aji": pooled["aji"], "pq": pooled["pq"], "object_f1": pooled["object_f1"]})
        if score > best_score:
            best, best_score = trial, score
    return best, tried


def tune_method(images: Sequence[TuningImage], settings: dict[str, Any],
                methods: Sequence[str] = (THREE_CLASS, DISTANCE),
                ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The best of several methods' tuned settings (same score, same training images), and every
    tried point of every method: which post-processing suits a model is measured, not assumed."""
    best, best_score, tried = dict(settings), -np.inf, []
    for method in methods:
        chosen, points = tune_settings(images, {**settings, "method": method})
        tried += points
        top = max(points, key=_score)
        if _score(top) > best_score:
            best, best_score = chosen, _score(top)
    return best, tried


def _score(point: dict[str, Any]) -> float:
    return (point["aji"] or 0.0) + (point["pq"] or 0.0)
