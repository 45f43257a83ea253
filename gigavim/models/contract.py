"""A model's input contract: which bands, in which order, what values, and how they are scaled.

A network only means something on pixels like the ones it was trained on. The contract says so
explicitly (as torchgeo and Raster Vision do): the band names (and sensor), the dtype and
per-band value range seen in training, how raw values become network input, and what happens to
nodata. The engine checks an image against it before any work (see :mod:`gigavim.engine.bands`)
and :meth:`gigavim.models.bundle.ModelBundle.normalize` applies its scaling.

Scaling turns a raw value ``v`` of band ``b`` into ``(v - offset[b]) * scale[b]``; the bundle's
per-band ``mean``/``std`` standardisation follows. Two methods:

- ``fixed``: one factor for every band (``1/255`` for 8-bit RGB, ``1e-4`` for Sentinel-2
  reflectance counts, ...), offset 0;
- ``percentile``: per band, the training data's low and high percentiles map to 0 and 1
  (robust for uint16/float data whose range is not the dtype's).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

RGB_NAMES = ["red", "green", "blue"]
SCALING_METHODS = ("fixed", "percentile")
DEFAULT_PERCENTILES = (1.0, 99.0)
NODATA_MASKED = "masked"
"""Nodata, NaN and alpha-0 pixels are read as 0, never fed as values, and labelled nodata (255)."""


@dataclass
class InputContract:
    """What pixels a model expects; stored as a plain dict in ``ModelMeta.input_contract``."""

    bands: list[str]
    dtype: str | None = "uint8"
    value_range: list[list[float]] = field(default_factory=list)  # per band [low, high] in training
    scaling: dict[str, Any] = field(default_factory=lambda: {"method": "fixed", "scale": 1 / 255})
    sensor: str | None = None
    nodata: str = NODATA_MASKED
    derived: bool = False  # True: not stored in the bundle, derived from an older bundle's fields

    def __post_init__(self) -> None:
        method = self.scaling.get("method")
        if method not in SCALING_METHODS:
            raise ValueError(f"unknown scaling method {method!r} (known: {', '.join(SCALING_METHODS)})")
        if method == "percentile":
            for key in ("low", "high"):
                if len(self.scaling[key]) != len(self.bands):
                    raise ValueError(f"percentile scaling has {len(self.scaling[key])} '{key}' values "
                                     f"for {len(self.bands)} bands")

    @property
    def band_count(self) -> int:
        return len(self.bands)

    def offset_scale(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-band (offset, scale) float32 arrays: network value = (raw - offset) * scale."""
        n = self.band_count
        if self.scaling["method"] == "fixed":
            offset = float(self.scaling.get("offset", 0.0))
            return np.full(n, offset, np.float32), np.full(n, float(self.scaling["scale"]), np.float32)
        low = np.asarray(self.scaling["low"], np.float64)
        high = np.asarray(self.scaling["high"], np.float64)
        span = np.where(high - low > 0, high - low, 1.0)
        return low.astype(np.float32), (1.0 / span).astype(np.float32)

    def full_scale(self) -> float:
        """The raw value that scales to about 1 (for augmentation's brightness jitter and clipping)."""
        offset, scale = self.offset_scale()
        return float(np.max(offset + 1.0 / scale))

    def summary(self) -> str:
        """One short line: ``3 bands red,green,blue · uint8 0–255 · ×1/255`` (``gigavim models``)."""
        sensor = f" ({self.sensor})" if self.sensor else ""
        return f"{describe_bands(self.bands)}{sensor}; {self.range_text()}; {self.scaling_text()}"

    def range_text(self) -> str:
        dtype = self.dtype or "any dtype"
        if not self.value_range:
            return dtype
        lows = [r[0] for r in self.value_range]
        highs = [r[1] for r in self.value_range]
        return f"{dtype} {_num(min(lows))}–{_num(max(highs))}"

    def scaling_text(self) -> str:
        if self.scaling["method"] == "fixed":
            scale = float(self.scaling["scale"])
            inverse = 1 / scale if scale else math.inf
            factor = f"1/{_num(inverse)}" if abs(inverse - round(inverse)) < 1e-6 * inverse else _num(scale)
            offset = float(self.scaling.get("offset", 0.0))
            return f"(v - {_num(offset)}) × {factor}" if offset else f"v × {factor}"
        lo, hi = self.scaling.get("percentiles", DEFAULT_PERCENTILES)
        return f"per-band p{_num(lo)}–p{_num(hi)} of training → 0–1"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("derived")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputContract:
        known = set(cls.__dataclass_fields__) - {"derived"}
        return cls(**{k: v for k, v in d.items() if k in known})


def describe_bands(names: list[str]) -> str:
    """``3 bands (red, green, blue)``, ``1 band (gray)``."""
    n = len(names)
    return f"{n} band{'s' if n != 1 else ''} ({', '.join(names)})"


def default_band_names(count: int) -> list[str]:
    """RGB for three bands, else ``band1``…``bandN`` (names a user can map with ``--bands``)."""
    return list(RGB_NAMES) if count == 3 else [f"band{i + 1}" for i in range(count)]


def derive_contract(bands: int, input_scale: float) -> InputContract:
    """The contract of a bundle saved before contracts existed: its band count and one scale.

    Those bundles were all trained on 8-bit images scaled by 1/255 (RGB when three bands); any
    other scale was ``1/max`` of the training data, so its range is [0, 1/scale].
    """
    eight_bit = math.isclose(input_scale, 1 / 255, rel_tol=1e-6)
    high = 255.0 if eight_bit else (1.0 / input_scale if input_scale > 0 else 1.0)
    return InputContract(
        bands=default_band_names(bands), dtype="uint8" if eight_bit else None,
        value_range=[[0.0, high] for _ in range(bands)],
        scaling={"method": "fixed", "scale": float(input_scale)}, derived=True,
    )


def _num(v: float) -> str:
    return f"{v:.4g}"
