"""A model bundle: a segmentation network plus everything needed to use it on new images.

The engine, training, evaluation and the registry all speak this one type. A bundle file is a
plain ``torch.save`` dict (``{"format": "gigavim-model", "meta": {...}, "state_dict": {...}}``)
holding only tensors and JSON-like values, so it loads with ``torch.load(weights_only=True)``:
no pickled code, and ``gigavim segment --model file.pt`` needs nothing else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from gigavim.errors import GigavimError, ModelError
from gigavim.io.box import mean_of_sums
from gigavim.models import bundle_checks
from gigavim.models.contract import InputContract, derive_contract

BUNDLE_FORMAT = "gigavim-model"
_BYTE_VALUES = 256
InputKind = Literal["slide", "raster", "any"]


@dataclass
class ModelMeta:
    """What a user (and every output file) must know about a model.

    ``arch`` is the keyword config that :func:`gigavim.models.build_segmenter` turns back into
    the network. Pixels are scaled as the input contract says (:meth:`contract`; for bundles
    without one ``value * input_scale``), then standardised as ``(x - mean) / std`` per band.
    ``mpp`` / ``gsd_m`` is the resolution the model was trained at (µm/px or m/px).
    """

    name: str
    classes: list[str]
    colors: list[tuple[int, int, int]]
    arch: dict[str, Any]
    version: str = "0"
    task: str = "semantic-segmentation"
    input_kind: InputKind = "any"
    bands: int = 3
    input_scale: float = 1.0 / 255.0
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.25, 0.25, 0.25])
    mpp: float | None = None
    gsd_m: float | None = None
    tile: int = 1024
    overlap: int = 128
    trained: bool = False
    description: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    # Objects, not just classes: how class probabilities become one id per object (empty for a
    # purely semantic model). Keys: "method" ("three-class-watershed": classes hold an object
    # interior and an object boundary class), "object_class" (name written to outputs, e.g.
    # "nucleus"), "interior" and "boundary" (class indices), "foreground_threshold",
    # "marker_threshold" (see gigavim.instances.postprocess), "min_area_um2" or "min_area_m2"
    # (objects smaller than this are dropped; overridable per run).
    instances: dict[str, Any] = field(default_factory=dict)
    # The input contract (bands, sensor, dtype and value range, scaling, nodata) as a plain dict;
    # see gigavim.models.contract. Empty in bundles saved before contracts: derived on load.
    input_contract: dict[str, Any] = field(default_factory=dict)
    # Test-time augmentation by default: how many dihedral views (1, 2, 4 or 8) a run averages
    # unless it says otherwise (see gigavim.models.tta); 1 = off.
    tta: int = 1
    # Stain normalisation at inference (gigavim.models.stain): the reference stain of the training
    # data ({"method": "macenko", "stains": 3×2 OD vectors, "max_concentrations": [h, e]}); a
    # model with one re-stains every image like it unless a run says otherwise. Empty: never.
    stain: dict[str, Any] = field(default_factory=dict)

    def contract(self) -> InputContract:
        """The stored input contract, or one derived from ``bands``/``input_scale`` (old bundles)."""
        if self.input_contract:
            return InputContract.from_dict(self.input_contract)
        return derive_contract(self.bands, self.input_scale)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["colors"] = [list(c) for c in self.colors]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelMeta:
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs["colors"] = [tuple(int(v) for v in c) for c in kwargs.get("colors", [])]
        return cls(**kwargs)


@dataclass
class ModelBundle:
    """A network mapping (B, bands, H, W) normalised floats to (B, classes, H, W) logits."""

    net: nn.Module
    meta: ModelMeta

    @property
    def num_classes(self) -> int:
        return len(self.meta.classes)

    def normalize(self, tiles: np.ndarray) -> torch.Tensor:
        """(B, h, w, bands) raw pixels → (B, bands, h, w) float32 network input."""
        return torch.from_numpy(self.normalize_array(tiles))

    def normalize_array(self, tiles: np.ndarray, *, channels_last: bool = False,
                        sum_count: int = 1) -> np.ndarray:
        """(..., h, w, bands) raw pixels → (..., bands, h, w) float32 network input, in numpy.

        numpy, not torch: the engine normalises each tile in its reader threads, in parallel and
        outside torch's intra-op thread pool (whose barriers cost ~10 ms per small op on a busy
        CPU). One float32 copy, then in place: ``((x - offset) * scale - mean) / std``
        (NaN → 0 after scaling), the same IEEE operations in the same order as the torch version
        this replaces, so the values are bit for bit the same. ``channels_last``: the result is
        a (..., bands, h, w) view of (..., h, w, bands) memory (torch's channels_last layout, in
        which a CPU convolution over a batch runs up to 40× faster than on contiguous NCHW); 8-bit
        tiles then go through a table of the 256 values (:meth:`_normalize_table`). ``sum_count``
        > 1: ``tiles`` are integer sums of that many 8-bit pixels (the engine's box-downsampled
        slide tiles), normalised as their float32 means (:func:`~gigavim.io.box.mean_of_sums`)
        would be, through a table of every possible sum when channels-last.
        """
        if tiles.shape[-1] != self.meta.bands:  # callers check (and map) bands up front
            raise ModelError(f"model {self.meta.name!r} expects {self.meta.bands} bands, "
                             f"got {tiles.shape[-1]}")
        entries = (_BYTE_VALUES - 1) * sum_count + 1
        if (channels_last and tiles.dtype == (np.uint8 if sum_count == 1 else np.uint16)
                and tiles.size > 4 * entries * tiles.shape[-1]):
            return self._normalize_table(tiles, sum_count)
        if sum_count > 1:
            tiles = mean_of_sums(tiles, sum_count)
        return self._normalize_arithmetic(tiles, channels_last)

    def _normalize_table(self, tiles: np.ndarray, sum_count: int) -> np.ndarray:
        """8-bit pixels (or sums of ``sum_count`` of them), channels-last, through a per-band table
        of every possible value's normalised result.

        The table is the arithmetic path applied to each value, so the result is bit for bit the
        same, ~4× faster: the arithmetic on (..., h, w, bands) memory broadcasts over a last axis
        of 3 bands, which numpy runs as 3-element inner loops."""
        table = self._value_table(sum_count)
        out = np.empty(tiles.shape, np.float32)
        for band in range(tiles.shape[-1]):  # indexes are in range: "clip" never clips, skips checks
            np.take(table[band], tiles[..., band], out=out[..., band], mode="clip")
        return np.moveaxis(out, -1, -3)

    def _value_table(self, sum_count: int) -> np.ndarray:
        """(bands, 255·sum_count + 1) float32: the network value of each byte (or each sum of
        ``sum_count`` bytes, as its float32 mean) in each band, cached per meta and count."""
        meta = self.meta
        key = (tuple(meta.mean), tuple(meta.std), repr(meta.input_contract), meta.input_scale, meta.bands)
        cache = self.__dict__.setdefault("_value_tables", {})
        if cache.get(sum_count, (None,))[0] != key:
            values = np.arange((_BYTE_VALUES - 1) * sum_count + 1)
            values = values.astype(np.uint8) if sum_count == 1 else mean_of_sums(values, sum_count)
            planes = np.repeat(values[None, :, None], meta.bands, axis=2)
            table = np.ascontiguousarray(self._normalize_arithmetic(planes, channels_last=False)[:, 0])
            cache[sum_count] = (key, table)
        return cache[sum_count][1]

    def _normalize_arithmetic(self, tiles: np.ndarray, channels_last: bool) -> np.ndarray:
        band_shape = (-1,) if channels_last else (-1, 1, 1)
        offset, scale = (a.reshape(band_shape) for a in self.meta.contract().offset_scale())
        mean = np.asarray(self.meta.mean, dtype=np.float32).reshape(band_shape)
        std = np.asarray(self.meta.std, dtype=np.float32).reshape(band_shape)
        if channels_last:  # the copy is the first subtraction (float32, as after a cast)
            x = np.subtract(tiles, offset, dtype=np.float32)
        else:
            x = np.ascontiguousarray(np.moveaxis(tiles, -1, -3), dtype=np.float32)
            x -= offset
        x *= scale
        if x.size and not (np.isfinite(x.min()) and np.isfinite(x.max())):  # min/max propagate NaN
            np.nan_to_num(x, copy=False, nan=0.0)
        x -= mean
        x /= std
        return np.moveaxis(x, -1, -3) if channels_last else x

    def save(self, path: str | Path) -> Path:
        """Write the bundle atomically (temporary name, then rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".partial")
        payload = {
            "format": BUNDLE_FORMAT,
            "meta": self.meta.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
        }
        torch.save(payload, tmp)
        tmp.replace(path)
        return path


def load_bundle_file(path: str | Path, map_location: str | torch.device = "cpu") -> ModelBundle:
    """Load a bundle written by :meth:`ModelBundle.save`, safely (no arbitrary unpickling)."""
    from gigavim.models.factory import build_segmenter

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    payload = load_tagged(path, BUNDLE_FORMAT, "gigavim model file", map_location=map_location)
    bundle_checks.check_payload(payload, path)
    bundle_checks.check_meta_values(payload["meta"], path)
    bundle_checks.check_weights(payload["state_dict"], path)
    bundle_checks.check_architecture(payload["meta"]["arch"], payload["state_dict"], path)
    meta = ModelMeta.from_dict(payload["meta"])
    net = build_segmenter(**meta.arch)
    try:
        net.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not match the stored architecture "
                         f"({_first_line(exc)})") from exc
    net.eval()
    return ModelBundle(net=net, meta=meta)


def load_tagged(path: str | Path, fmt: str, what: str, error: type[GigavimError] = ModelError,
                map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A ``torch.save`` dict with ``"format": fmt``, loaded safely (``weights_only=True``).

    Shared by model bundles and training-state files: no pickled code runs, and a file that is
    missing, truncated, not torch, or of another kind is one ``error`` line naming it.
    """
    path = Path(path)
    payload = bundle_checks.safe_torch_load(path, what, error, map_location)
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise error(f"{path}: not a {what} (no '{fmt}' header)")
    return payload


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
