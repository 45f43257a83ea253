"""Stain normalisation at inference (Macenko): an H&E image re-stained like the training data.

Labs stain H&E differently (more or less haematoxylin, bluer or pinker eosin), and a model sees
that as a domain shift. Macenko et al. (2009) find an image's two stain vectors in optical-density
(OD) space (the extreme angles of the tissue's OD in the plane of its two main directions) and
its stain concentrations (least squares); re-staining with reference vectors and concentration
scales maps it onto a reference look. Here the reference is the model's training data
(``ModelMeta.stain``: the median vectors and 99th-percentile concentrations of its training
images), and per image the mapping is one fixed 3 × 3 matrix in OD space, estimated once from a
sample of the image's tiles at the working resolution (:func:`sample_windows`) before any tile
runs. A fixed per-image map keeps tiles, blending, ``--resume`` and whole-image context exact.

:class:`StainNormalisedBundle` applies it where pixels become network input
(:meth:`~gigavim.models.bundle.ModelBundle.normalize_array`), so the engine, ``gigavim eval`` and
batches need no other change. It assumes 8-bit RGB values (0–255) as H&E slides have.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gigavim.errors import InputError, UsageError
from gigavim.io.base import Window
from gigavim.io.box import mean_of_sums
from gigavim.models.bundle import ModelBundle

IO = 240.0  # transmitted (background) light intensity, as Macenko et al.
BETA = 0.15  # OD below this in any channel is glass or faint: left out of the estimate
ALPHA = 1.0  # percentile of the angles taken as the two stain directions
MIN_PIXELS = 500
SAMPLE_TILES = 16


def optical_density(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB 0–255 → (N, 3) float64 optical densities."""
    return -np.log((np.asarray(rgb, dtype=np.float64).reshape(-1, 3) + 1.0) / IO)


def macenko_stain(rgb: np.ndarray, what: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """(3, 2) unit haematoxylin / eosin OD vectors and the 99th-percentile concentrations (2,).

    Raises ``InputError`` when fewer than ``MIN_PIXELS`` pixels are stained tissue (glass)."""
    od = optical_density(rgb)
    tissue = od[(od > BETA).all(axis=1)]
    if len(tissue) < MIN_PIXELS:
        raise InputError(f"{what}: too little stained tissue to estimate its stain "
                         f"({len(tissue)} pixels; use --no-stain-norm)")
    _, vectors = np.linalg.eigh(np.cov(tissue.T))
    plane = vectors[:, 1:3]  # the two main directions
    projected = tissue @ plane
    angle = np.arctan2(projected[:, 1], projected[:, 0])
    lo, hi = np.percentile(angle, ALPHA), np.percentile(angle, 100 - ALPHA)
    v1, v2 = plane @ np.array([np.cos(lo), np.sin(lo)]), plane @ np.array([np.cos(hi), np.sin(hi)])
    stains = np.stack([v1, v2], axis=1) if v1[0] > v2[0] else np.stack([v2, v1], axis=1)  # H first
    stains *= np.sign(stains.sum(axis=0, keepdims=True))  # stain vectors point into positive OD
    stains /= np.linalg.norm(stains, axis=0, keepdims=True)
    concentrations = np.linalg.lstsq(stains, od.T, rcond=None)[0]
    return stains, np.percentile(concentrations, 99, axis=1)


def reference(estimates: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """A model's reference stain (``ModelMeta.stain``) from its training images' estimates."""
    stains = np.median(np.array([s for s, _ in estimates]), axis=0)
    stains /= np.linalg.norm(stains, axis=0, keepdims=True)
    return {"method": "macenko", "stains": stains.tolist(),
            "max_concentrations": np.median(np.array([m for _, m in estimates]), axis=0).tolist()}


def od_matrix(ref: dict[str, Any], stains: np.ndarray, max_c: np.ndarray) -> np.ndarray:
    """The 3 × 3 OD map: unmix with the image's stains, rescale, remix with the reference's."""
    ref_stains = np.asarray(ref["stains"], dtype=np.float64)
    scale = np.asarray(ref["max_concentrations"], dtype=np.float64) / np.maximum(max_c, 1e-6)
    return ref_stains @ np.diag(scale) @ np.linalg.pinv(stains)


def restain(pixels: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(..., 3) RGB 0–255 through the OD map → float32 RGB 0–255 (same shape)."""
    shape = pixels.shape
    od = optical_density(pixels) @ matrix.T
    return np.clip(IO * np.exp(-od), 0.0, 255.0).astype(np.float32).reshape(shape)


def sample_windows(windows: Sequence[Window], count: int = SAMPLE_TILES) -> list[Window]:
    """Up to ``count`` windows spread evenly over ``windows`` (in the given order)."""
    if len(windows) <= count:
        return list(windows)
    return [windows[int(i)] for i in np.linspace(0, len(windows) - 1, count).round()]


@dataclass
class StainNormalisedBundle(ModelBundle):
    """A bundle whose input pixels are re-stained (:func:`restain`) before normalising."""

    matrix: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3))

    def normalize_array(self, tiles: np.ndarray, *, channels_last: bool = False,
                        sum_count: int = 1) -> np.ndarray:
        if sum_count > 1:  # block sums of 8-bit pixels: re-stain their means
            tiles = mean_of_sums(tiles, sum_count)
        return super().normalize_array(restain(tiles, self.matrix), channels_last=channels_last)


def wants_stain_norm(bundle: ModelBundle, stain_norm: bool | None) -> bool:
    """Whether a run normalises stains: ``stain_norm`` if given, else when the model has a reference."""
    if stain_norm and not bundle.meta.stain:
        raise UsageError(f"model {bundle.meta.name!r} has no reference stain; --stain-norm needs one")
    return bool(bundle.meta.stain) if stain_norm is None else stain_norm


def estimate_stain(read: Callable[[Window], np.ndarray], windows: Sequence[Window],
                   what: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`macenko_stain` of the pixels of a spread sample of ``windows`` (raw, 0–255)."""
    pixels = [np.asarray(read(w))[..., :3].reshape(-1, 3) for w in sample_windows(windows)]
    return macenko_stain(np.concatenate(pixels) if pixels else np.zeros((0, 3)), what)


def with_stain_norm(bundle: ModelBundle, read: Callable[[Window], np.ndarray],
                    windows: Sequence[Window], what: str) -> ModelBundle:
    """``bundle`` re-staining its input like its training data, the image's stain estimated from
    (a spread sample of) ``windows`` read by ``read`` (raw pixels, working resolution). The
    estimate is recorded in ``meta.stain["image"]``, so a run's settings carry it."""
    if isinstance(bundle, StainNormalisedBundle):
        bundle = ModelBundle(bundle.net, bundle.meta)
    stains, max_c = estimate_stain(read, windows, what)
    meta = dataclasses.replace(bundle.meta, stain={**bundle.meta.stain, "image": {
        "stains": stains.tolist(), "max_concentrations": max_c.tolist()}})
    return StainNormalisedBundle(bundle.net, meta, od_matrix(bundle.meta.stain, stains, max_c))
