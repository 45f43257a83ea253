"""An image's bands against a model's input contract: refuse, or map explicitly; then check values.

Bands are never repeated or dropped behind the user's back: an image whose band count (or, where
both sides name their bands, band kinds) differs from the model's contract is refused before
any work with one line naming what the image has and what the model wants — unless the user
maps bands with ``--bands`` (1-based indexes like ``4,3,2``, or the file's band names; an index
may repeat, e.g. ``1,1,1`` to feed a grey band to an RGB model on purpose).

Values are then compared with the model's training range on a small sample (a few windows of a
coarse level, never all of level 0): uint16 counts or float reflectances fed to a model trained on
8-bit RGB are reported (a warning in the summary, ``--json`` and the batch manifest).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gigavim.errors import ModelError, UsageError
from gigavim.io.base import ImageSource, Window
from gigavim.models.bundle import ModelMeta
from gigavim.models.contract import InputContract, describe_bands

SAMPLE_GRID = 4  # windows per side of the value sample
SAMPLE_SIDE = 64  # pixels per window side
SAMPLE_MIN_SIDE = 256  # the value sample is read from the coarsest level at least this large
_GENERIC = re.compile(r"^(|undefined|gray|grey|palette|alpha|band ?\d+)$", re.IGNORECASE)
_HINT_ALIASES = {"red": "b4", "green": "b3", "blue": "b2", "nir": "b8"}  # Sentinel-2, Landsat 8-9
_GENERIC_S2 = re.compile(r"^b0*(\d+a?)$", re.IGNORECASE)


@dataclass
class BandCheck:
    """What the run fed the model: the 1-based bands picked (all, in order, when not mapped), and
    how the image's values compare with the model's training range."""

    bands: list[int]
    band_names: list[str]
    mapped: bool
    values: list[list[float]] = field(default_factory=list)  # per band [p1, p99] of a sample
    training_range: list[list[float]] = field(default_factory=list)
    dtype: str = ""
    model_dtype: str | None = None
    in_range: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"bands": self.bands, "band_names": self.band_names, "mapped": self.mapped,
                "dtype": self.dtype, "values": self.values, "model_dtype": self.model_dtype,
                "training_range": self.training_range, "in_range": self.in_range}


class BandView(ImageSource):
    """The bands ``indexes`` (0-based, in that order, repeats allowed) of another source."""

    def __init__(self, base: ImageSource, indexes: list[int]) -> None:
        names = base.band_names if len(base.band_names) == base.bands else []
        super().__init__(
            path=base.path, kind=base.kind, format=base.format, levels=base.levels,
            bands=len(indexes), dtype=base.dtype, nodata=base.nodata, mpp=base.mpp, gsd_m=base.gsd_m,
            crs=base.crs, transform=base.transform, objective_power=base.objective_power,
            vendor=base.vendor, band_names=[names[i] for i in indexes] if names else [],
            properties=base.properties, ground_pixel_yx=base.ground_pixel_yx,
        )
        self.base, self.indexes = base, list(indexes)

    def read(self, level: int, window: Window) -> np.ndarray:
        return self.base.read(level, window)[..., self.indexes]

    def read_valid(self, level: int, window: Window) -> np.ndarray:
        return self.base.read_valid(level, window)

    def close(self) -> None:
        self.base.close()


def parse_bands(spec: str | Sequence[int | str] | None) -> list[str] | None:
    """``"4,3,2"`` or ``[4, 3, 2]`` or ``"B4,B3,B2"`` → list of tokens; None/empty → None."""
    if spec is None:
        return None
    items = spec.split(",") if isinstance(spec, str) else [str(s) for s in spec]
    tokens = [s.strip() for s in items if s.strip()]
    return tokens or None


def band_indexes(src: ImageSource, tokens: list[str]) -> list[int]:
    """0-based indexes of ``tokens``: 1-based numbers, or the file's band names (any case; B04 = B4)."""
    names = [_key(n) for n in src.band_names] if len(src.band_names) == src.bands else []
    out = []
    for token in tokens:
        if token.isdigit():
            i = int(token)
            if not 1 <= i <= src.bands:
                raise UsageError(f"{src.path}: --bands {token}: no such band; the image has "
                                 f"{describe_bands(_names(src))}, numbered from 1")
            out.append(i - 1)
        elif _key(token) in names:
            if names.count(_key(token)) > 1:
                raise UsageError(f"{src.path}: --bands {token}: several bands have that name; "
                                 "give their numbers")
            out.append(names.index(_key(token)))
        else:
            raise UsageError(f"{src.path}: --bands {token}: not a band number or name; the image has "
                             f"{describe_bands(_names(src))}")
    return out


def match_bands(src: ImageSource, meta: ModelMeta,
                bands: str | Sequence[int | str] | None = None) -> tuple[ImageSource, BandCheck]:
    """The source the model reads (``src`` itself, or a :class:`BandView` for ``--bands``).

    Refuses (:class:`ModelError`, one line) an image whose bands do not match the contract
    when no mapping is given, and a mapping with the wrong number of bands.
    """
    contract = meta.contract()
    tokens = parse_bands(bands)
    if tokens is None:
        refusal = band_mismatch(src, contract)
        if refusal:
            raise ModelError(f"{src.path}: has {describe_bands(_names(src))} but model {meta.name!r} "
                             f"wants {describe_bands(contract.bands)}; {refusal}")
        return src, BandCheck(list(range(1, src.bands + 1)), _names(src), mapped=False)
    indexes = band_indexes(src, tokens)
    if len(indexes) != contract.band_count:
        raise ModelError(f"{src.path}: --bands picks {len(indexes)} band{'s' if len(indexes) != 1 else ''} "
                         f"but model {meta.name!r} wants {describe_bands(contract.bands)}")
    view = BandView(src, indexes)
    return view, BandCheck([i + 1 for i in indexes], _names(view), mapped=True)


def band_mismatch(src: ImageSource, contract: InputContract) -> str | None:
    """Why ``src``'s own bands cannot be fed as they are (with a ``--bands`` hint), or None."""
    have = _names(src)
    want = contract.bands
    if src.bands != len(want):
        if 1 < src.bands < len(want):
            return "give an image that has the model's bands (none is made up or repeated silently)"
        return f"choose the model's bands with --bands (e.g. --bands {suggest_bands(src, want)})"
    if _meaningful(have) and _meaningful(want) and [_key(n) for n in have] != [_key(n) for n in want]:
        return (f"the band kinds differ; if these are the right bands in the right order, say so with "
                f"--bands {suggest_bands(src, want)}")
    return None


def suggest_bands(src: ImageSource, want: list[str]) -> str:
    """A ``--bands`` value to show in a refusal: the image's bands of the model's band names
    (or their usual Sentinel-2 / Landsat 8 band, e.g. red = B4), else the first ones in order."""
    names = _names(src)
    have = [_key(n) for n in names]
    picked = []
    for name in want:
        for key in (_key(name), _HINT_ALIASES.get(_key(name))):
            if key in have:
                picked.append(names[have.index(key)] if _meaningful(names) else str(have.index(key) + 1))
                break
    if len(picked) == len(want):
        return ",".join(picked)
    return ",".join(str(min(i, src.bands)) for i in range(1, len(want) + 1))


def check_values(src: ImageSource, contract: InputContract, check: BandCheck, name: str) -> str | None:
    """Fill ``check`` with the image's sampled value range; a warning line when it is far off.

    "Far off" per band, with training range [lo, hi] of width w: the image's 99th percentile
    above hi + w or its 1st below lo − w (e.g. uint16 counts to an 8-bit model), or — when the
    dtypes differ — a spread under w/20 (reflectances 0–1 to an 8-bit model).
    """
    sample = sample_values(src)
    check.dtype = str(np.dtype(src.dtype))
    check.model_dtype = contract.dtype
    check.training_range = contract.value_range
    if sample is None or not contract.value_range:
        return None
    low, high = np.percentile(sample, [1, 99], axis=0)
    check.values = [[float(a), float(b)] for a, b in zip(low, high, strict=True)]
    off = []
    for i, ((a, b), (lo, hi)) in enumerate(zip(check.values, contract.value_range, strict=True)):
        w = max(hi - lo, 1e-12)
        narrow = contract.dtype not in (None, check.dtype) and b - a < w / 20
        if b > hi + w or a < lo - w or narrow:
            off.append(i)
    if not off:
        return None
    check.in_range = False
    have = f"{_num(min(check.values[i][0] for i in off))}–{_num(max(check.values[i][1] for i in off))}"
    want = (f"{_num(min(contract.value_range[i][0] for i in off))}–"
            f"{_num(max(contract.value_range[i][1] for i in off))}")
    return (f"{src.path}: pixel values {have} ({check.dtype}) are far outside the range model {name!r} "
            f"was trained on ({want}, {contract.dtype or 'any dtype'}); its output is likely "
            "meaningless: rescale the image to that range or use a model trained on such data")


def sample_values(src: ImageSource) -> np.ndarray | None:
    """(n, bands) float32 valid pixel values from a grid of small windows of a coarse level."""
    level = _sample_level(src)
    lv = src.levels[level]
    side_y, side_x = min(SAMPLE_SIDE, lv.height), min(SAMPLE_SIDE, lv.width)
    parts = []
    for gy in range(SAMPLE_GRID):
        for gx in range(SAMPLE_GRID):
            y = round((lv.height - side_y) * (gy + 0.5) / SAMPLE_GRID)
            x = round((lv.width - side_x) * (gx + 0.5) / SAMPLE_GRID)
            win = Window(y, x, side_y, side_x)
            # Only valid pixels are cast: a −DBL_MAX fill (invalid) would overflow float32 noisily.
            pixels = src.read(level, win)[src.read_valid(level, win)].astype(np.float32, copy=False)
            parts.append(pixels[np.isfinite(pixels).all(axis=-1)])
    values = np.concatenate(parts) if parts else np.zeros((0, src.bands), np.float32)
    return values if len(values) else None


def _sample_level(src: ImageSource) -> int:
    """The coarsest level whose long side is at least :data:`SAMPLE_MIN_SIDE` (else level 0)."""
    best = 0
    for i, lv in enumerate(src.levels):
        if max(lv.width, lv.height) >= SAMPLE_MIN_SIDE:
            best = i
    return best


def _names(src: ImageSource) -> list[str]:
    if len(src.band_names) == src.bands:
        return [n or f"band{i + 1}" for i, n in enumerate(src.band_names)]
    return [f"band{i + 1}" for i in range(src.bands)]


def _meaningful(names: list[str]) -> bool:
    return all(not _GENERIC.match(n.strip()) for n in names)


def _key(name: str) -> str:
    """Band names compared loosely: case, spaces and S2's zero padding (B04 = B4)."""
    key = name.strip().lower().replace(" ", "")
    m = _GENERIC_S2.match(key)
    return f"b{m.group(1)}" if m else key


def _num(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else str(v)
