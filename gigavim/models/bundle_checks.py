"""Refuse a hostile or damaged model bundle before it can crash, hang or mislead a run.

A bundle file is data from someone else: its metadata decides how pixels are normalised and how
big a network is built, its tensors are the weights. Everything here runs on load, before the
network is allocated, and raises a one-line :class:`~gigavim.errors.ModelError` naming the file:

* the payload's shape (``meta``/``arch`` dicts, a ``state_dict`` of tensors);
* the metadata's numbers (classes and colours, bands, finite mean, positive finite std and
  input scale, tile/overlap, resolution) — a zero std divides pixels by zero, NaN weights or
  normalisation turn every prediction into NaN, and NaN reaches the scan kernels;
* the architecture, built on PyTorch's ``meta`` device (shapes only, no memory) and compared
  tensor by tensor with the stored weights, so an ``arch`` describing a 64 GB network next to a
  few kB of weights is refused instead of allocated;
* the zip container's CRCs, so a byte-flipped file is "corrupt", not silently wrong weights.
"""

from __future__ import annotations

import math
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from gigavim.errors import ModelError

MAX_CLASSES = 254  # label 255 is nodata in every output
MAX_TILE = 1 << 16


def check_container(path: Path, what: str = "model file", error: type[Exception] = ModelError) -> None:
    """A ``torch.save`` zip whose members fail their CRC was damaged after it was written."""
    if not zipfile.is_zipfile(path):
        return  # legacy (non-zip) torch files have no checksums; torch.load judges them
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise error(f"{path}: {what} is corrupt ({exc})") from exc
    if bad is not None:
        raise error(f"{path}: {what} is corrupt (checksum mismatch in {bad!r})")


def safe_torch_load(path: Path, what: str, error: type[Exception] = ModelError,
                    map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` (plus an intact-container check); failures → one line."""
    check_container(path, what, error)
    try:
        with warnings.catch_warnings():  # e.g. torch's "pickle protocol 4" note on foreign pickles
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # missing, truncated, not torch, or needs unpickling code
        raise error(load_failure(path, exc, what)) from exc


def check_payload(payload: Mapping[str, Any], path: Path) -> None:
    """``meta`` (with an ``arch`` dict) and a ``state_dict`` of tensors."""
    meta, state = payload.get("meta"), payload.get("state_dict")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("arch"), Mapping):
        raise ModelError(f"{path}: model file has no usable metadata ('meta' with an 'arch' dict)")
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: model file's 'state_dict' is not a dict of tensors")


def check_meta_values(meta: Mapping[str, Any], path: Path) -> None:
    """The metadata's numbers make sense (see the module docstring); raw dict, before parsing."""
    classes, colors = meta.get("classes"), meta.get("colors", [])
    if not isinstance(classes, list) or not 1 <= len(classes) <= MAX_CLASSES \
            or not all(isinstance(c, str) for c in classes):
        raise ModelError(f"{path}: model metadata needs 1 to {MAX_CLASSES} class names")
    if not isinstance(colors, list) or len(colors) != len(classes) or not all(
            isinstance(c, (list, tuple)) and len(c) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c)
            for c in colors):
        raise ModelError(f"{path}: model metadata needs one RGB colour (3 integers 0..255) per class")
    bands = meta.get("bands", 3)
    if not _int_in(bands, 1, 1 << 12):
        raise ModelError(f"{path}: model metadata 'bands' must be a positive integer, not {bands!r}")
    for key in ("mean", "std"):
        values = meta.get(key, [0.5] * bands)
        if not isinstance(values, list) or len(values) not in (1, bands) or not all(
                _finite(v) for v in values):
            raise ModelError(f"{path}: model metadata {key!r} must be 1 or {bands} finite numbers")
    if not all(v > 0 for v in meta.get("std", [1.0])):
        raise ModelError(f"{path}: model metadata 'std' must be positive (it divides the pixels)")
    scale = meta.get("input_scale", 1.0)
    if not _finite(scale) or scale <= 0:
        raise ModelError(f"{path}: model metadata 'input_scale' must be a positive finite number")
    tile, overlap = meta.get("tile", 1024), meta.get("overlap", 0)
    if not _int_in(tile, 1, MAX_TILE) or not _int_in(overlap, 0, tile - 1):
        raise ModelError(f"{path}: model metadata tile {tile!r} / overlap {overlap!r} must be integers "
                         f"with 1 ≤ tile ≤ {MAX_TILE} and 0 ≤ overlap < tile")
    tta = meta.get("tta", 1)
    if tta not in (1, 2, 4, 8) or isinstance(tta, bool):
        raise ModelError(f"{path}: model metadata 'tta' must be 1, 2, 4 or 8 views, not {tta!r}")
    if not _stain_ok(meta.get("stain") or {}):
        raise ModelError(f"{path}: model metadata 'stain' needs 3×2 'stains' and 2 'max_concentrations'")
    for key in ("mpp", "gsd_m"):
        value = meta.get(key)
        if value is not None and (not _finite(value) or value <= 0):
            raise ModelError(f"{path}: model metadata {key!r} must be a positive number, not {value!r}")


def _stain_ok(stain: Any) -> bool:
    """An empty reference stain, or 3 × 2 finite OD vectors and 2 positive concentrations."""
    if not stain:
        return True
    if not isinstance(stain, dict):
        return False
    vectors, scales = stain.get("stains"), stain.get("max_concentrations")
    return (isinstance(vectors, list) and len(vectors) == 3
            and all(isinstance(r, list) and len(r) == 2 and all(_finite(v) for v in r) for r in vectors)
            and isinstance(scales, list) and len(scales) == 2 and all(_finite(v) and v > 0 for v in scales))


def check_weights(state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Every floating-point weight is finite (NaN/inf weights make every prediction NaN)."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelError(f"{path}: model weights are damaged ({name!r} holds NaN or inf values)")


def check_architecture(arch: Mapping[str, Any], state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Build ``arch`` on the meta device (no memory) and compare its tensors with the weights.

    A network the weights do not fill is refused here, before anything is allocated: the stored
    weights bound the size of what is built, whatever ``arch`` claims.
    """
    from gigavim.models.factory import build_segmenter

    try:
        with torch.device("meta"):
            net = build_segmenter(**arch)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
    except (TypeError, ValueError, RuntimeError, OverflowError, MemoryError) as exc:
        raise ModelError(f"{path}: invalid model architecture ({_first_line(exc)})") from None
    want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    if want == have:
        return
    size = sum(math.prod(s) for s in want.values())
    stored = sum(math.prod(s) for s in have.values())
    if size > stored:
        raise ModelError(f"{path}: the stored architecture describes {size:,} weights but the file "
                         f"holds {stored:,}; refusing to build it")
    diff = sorted(set(want) ^ set(have)) or sorted(k for k in want if want[k] != have[k])
    raise ModelError(f"{path}: weights do not match the stored architecture (e.g. {diff[0]!r})")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_failure(path: Path, exc: BaseException, what: str) -> str:
    """One line for a ``torch.load(weights_only=True)`` failure, never torch's advice to retry
    with ``weights_only=False`` (that would run whatever code the file pickles)."""
    text = str(exc)
    unsafe = re.search(r"GLOBAL ([\w.]+)", text)
    if unsafe is not None:
        return (f"{path}: refusing: the file pickles {unsafe.group(1)}, which is not a tensor or plain "
                "container (no code from a model file is ever run)")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if "Weights only load failed" in text and _pickled(path):
        detail = next((ln for ln in lines if not ln.startswith(_TORCH_ADVICE)), "unsupported pickle data")
        return (f"{path}: refusing: the file pickles something other than tensors and plain containers "
                f"({detail})")
    if "Weights only load failed" in text:
        return f"{path}: not a readable {what} (neither a PyTorch file nor a pickle)"
    return f"{path}: not a readable {what} ({lines[0] if lines else type(exc).__name__})"


def _pickled(path: Path) -> bool:
    """A zip (``torch.save``) or a pickle stream (protocol ≥ 2 starts with PROTO, 0x80)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError:
        return False
    return head == b"PK" or head[:1] == b"\x80"


_TORCH_ADVICE = ("Weights only load failed", "Please file an issue", "Check the documentation",
                 "WeightsUnpickler error")
