"""The input contract a training run records: inferred from its images, overridable by options.

dtype from the files; band names from ``--band-names``, else the files' band descriptions, else
``red, green, blue`` / ``band1…``; per-band value range (1st–99th percentile of a bounded sample of
every training image); scaling ``fixed`` 1/255 for 8-bit images and per-band ``percentile`` for
anything else, unless ``--scaling``/``--scale`` say otherwise.
"""

from __future__ import annotations

import numpy as np

from gigavim.errors import UsageError
from gigavim.models.contract import DEFAULT_PERCENTILES, InputContract, default_band_names
from gigavim.train.dataset import TrainImage
from gigavim.train.metrics import IGNORE_LABEL
from gigavim.train.working_image import WorkingImage

SCALING_CHOICES = ("auto", "fixed", "percentile")
SAMPLE_VALUES = 1_000_000
"""Pixels per band sampled (evenly, from every image) for the training value range."""

_GENERIC_NAMES = {"", "undefined", "gray", "grey", "palette"}


def images_dtype(images: list[TrainImage]) -> np.dtype:
    """The dtype whose range every training image's values span (uint8 only when all are)."""
    return np.result_type(*[im.value_dtype for im in images])


def band_names(images: list[TrainImage], given: list[str] | None, bands: int) -> list[str]:
    """``given`` (checked against the band count), else the first image's own meaningful names."""
    if given:
        if len(given) != bands:
            raise UsageError(f"--band-names gives {len(given)} names but the training images have "
                             f"{bands} band{'s' if bands != 1 else ''}")
        return list(given)
    first = images[0].image
    names = list(first.source.band_names) if isinstance(first, WorkingImage) else []
    if len(names) == bands and len(set(names)) == bands and not _GENERIC_NAMES & {n.lower() for n in names}:
        return names
    return default_band_names(bands)


def band_percentiles(images: list[TrainImage], q: tuple[float, float] = DEFAULT_PERCENTILES,
                     ) -> tuple[list[float], list[float]]:
    """Per-band low/high percentiles of the labelled training pixels, from a bounded even sample.

    Labelled pixels only, as for the mean/std: nodata pixels are read as 0 and labelled ignore.
    """
    bands = images[0].image.shape[-1]
    total = sum(im.shape[0] * im.shape[1] for im in images)
    stride = max(1, total // SAMPLE_VALUES)
    parts = []
    for im in images:
        for pixels, labels in im.blocks():
            parts.append(np.asarray(pixels, np.float32)[labels != IGNORE_LABEL][::stride])
    values = np.concatenate(parts) if parts else np.zeros((0, bands), np.float32)
    if not np.isfinite(values).any(axis=0).all():
        return [0.0] * bands, [1.0] * bands
    low, high = np.nanpercentile(np.where(np.isfinite(values), values, np.nan), q, axis=0)
    return [float(v) for v in low], [float(v) for v in high]


def training_contract(images: list[TrainImage], *, names: list[str] | None = None,
                      sensor: str | None = None, scaling: str = "auto",
                      scale: float | None = None) -> InputContract:
    """The contract of a model trained on ``images`` with these options."""
    if scaling not in SCALING_CHOICES:
        raise UsageError(f"--scaling must be one of {', '.join(SCALING_CHOICES)}, not {scaling!r}")
    if scale is not None and (not np.isfinite(scale) or scale <= 0):
        raise UsageError(f"--scale must be a positive number, got {scale}")
    bands = images[0].image.shape[-1]
    dtype = images_dtype(images)
    if dtype == np.uint8:
        low, high = [0.0] * bands, [255.0] * bands
    else:
        low, high = band_percentiles(images)
    method = scaling
    if method == "auto":
        method = "fixed" if (scale is not None or dtype == np.uint8) else "percentile"
    if method == "fixed":
        spec = {"method": "fixed", "scale": float(scale) if scale is not None else 1 / 255}
        if scale is None and dtype != np.uint8:
            raise UsageError(f"--scaling fixed on {dtype} images needs --scale (e.g. 1e-4 for "
                             "Sentinel-2 reflectance counts); or use --scaling percentile")
    else:
        if scale is not None:
            raise UsageError("--scale is for --scaling fixed; percentile scaling takes its range "
                             "from the training images")
        spec = {"method": "percentile", "percentiles": list(DEFAULT_PERCENTILES), "low": low, "high": high}
    return InputContract(bands=band_names(images, names, bands), dtype=str(dtype),
                         value_range=[[lo, hi] for lo, hi in zip(low, high, strict=True)],
                         scaling=spec, sensor=sensor)
