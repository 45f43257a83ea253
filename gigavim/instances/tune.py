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
from gigavim.instances.settings import instances_from_settings

GRID = {"foreground_threshold": (0.4, 0.5, 0.6), "marker_threshold": (0.2, 0.4, 0.6),
        "min_marker_px": (3, 6)}


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
    grid = grid or GRID
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
        score = (pooled["aji"] or 0.0) + (pooled["pq"] or 0.0)
        tried.append({**dict(zip(keys, values, strict=True)), "aji": pooled["aji"], "pq": pooled["pq"],
                      "object_f1": pooled["object_f1"]})
        if score > best_score:
            best, best_score = trial, score
    return best, tried
