"""Named model bundles: the bundled defaults shipped in the wheel, and paths to checkpoints.

``--model NAME|PATH`` everywhere resolves through :func:`load_model` (backbone *architectures*
by name are a different thing: :mod:`gigavim.models.architectures`). Bundled models are
plain :class:`~gigavim.models.bundle.ModelBundle` files in ``gigavim/data/models/<name>.pt``, read
with ``importlib.resources`` so they load offline from an installed wheel.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import torch

from gigavim.errors import ModelError
from gigavim.models.bundle import BUNDLE_FORMAT, ModelBundle, ModelMeta, load_bundle_file, load_tagged

DEFAULT_MODELS: dict[str, str] = {
    "slide": "tissue",
    "image": "tissue",
    "raster": "land-water",
}
"""The model used when none is named, per input kind (plain images are taken as microscopy);
for rasters :data:`RASTER_DEFAULTS` picks by bands and pixel size first."""

RASTER_DEFAULTS: tuple[tuple[str, int, float, float], ...] = (
    ("water-s2", 13, 0.0, float("inf")),  # the Sentinel-2 L1C band set, whatever the pixel size
    ("buildings-rgb", 3, 0.0, 2.0),  # trained at 0.5 m: RGB at up to 2 m/px (at most 4× upsampled)
)
"""(model, band count, pixel size range in m) that make a model the raster default. Any other
raster gets ``DEFAULT_MODELS["raster"]`` (``land-water``, trained on a colour-relief map; its
input contract then refuses images without three bands)."""


def bundled_dir() -> Path:
    """Folder holding the bundled ``<name>.pt`` files (inside the installed package)."""
    return Path(str(resources.files("gigavim.data") / "models"))


def bundled_names() -> list[str]:
    """Names of the bundled models present in this installation, sorted."""
    folder = bundled_dir()
    return sorted(p.stem for p in folder.glob("*.pt")) if folder.is_dir() else []


def default_model_name(input_kind: str | None, bands: int | None = None,
                       gsd_m: float | None = None) -> str:
    """The bundled model used for ``input_kind`` ("slide", "raster" or "image") by default.

    For a raster whose band count (and ground pixel size, when known) fits a row of
    :data:`RASTER_DEFAULTS`, that model: 13-band Sentinel-2 → ``water-s2``, RGB at ≤ 2 m/px →
    ``buildings-rgb``; other rasters → ``land-water``.
    """
    if input_kind not in DEFAULT_MODELS:
        known = ", ".join(sorted(DEFAULT_MODELS))
        raise ModelError(f"no default model for input kind {input_kind!r} (known kinds: {known})")
    if input_kind == "raster" and bands is not None:
        for name, want, finest, coarsest in RASTER_DEFAULTS:
            fits = gsd_m is None or finest <= gsd_m <= coarsest
            if bands == want and fits and name in bundled_names():
                return name
    return DEFAULT_MODELS[input_kind]


def _looks_like_path(name_or_path: str) -> bool:
    return name_or_path.endswith((".pt", ".pth")) or "/" in name_or_path or Path(name_or_path).is_file()


def resolve_model_path(name_or_path: str) -> Path:
    """The bundle file behind a model name or path; unknown names list the known ones."""
    if _looks_like_path(name_or_path):
        return Path(name_or_path).expanduser()
    path = bundled_dir() / f"{name_or_path}.pt"
    if not path.is_file():
        known = ", ".join(bundled_names()) or "none installed"
        raise ModelError(f"unknown model {name_or_path!r} (known models: {known}; "
                         "or give the path of a model file)")
    return path


def load_model(name_or_path: str | Path | None = None, *, input_kind: str | None = None,
               bands: int | None = None, gsd_m: float | None = None,
               map_location: str | torch.device = "cpu") -> ModelBundle:
    """Load a bundled model by name, a bundle file by path, or the default for ``input_kind``
    (and, for rasters, the image's ``bands`` and ``gsd_m``: see :func:`default_model_name`)."""
    if name_or_path is None:
        name_or_path = default_model_name(input_kind, bands, gsd_m)
    return load_bundle_file(resolve_model_path(str(name_or_path)), map_location=map_location)


def read_meta(path: str | Path) -> ModelMeta:
    """A bundle file's metadata without building the network."""
    return ModelMeta.from_dict(load_tagged(path, BUNDLE_FORMAT, "gigavim model file")["meta"])


def describe_model(path: str | Path) -> dict[str, Any]:
    """One row of ``gigavim models``: what a user needs to pick a model."""
    path = Path(path)
    meta = read_meta(path)
    if meta.mpp is not None:
        resolution: dict[str, Any] = {"mpp": meta.mpp}
    elif meta.gsd_m is not None:
        resolution = {"gsd_m": meta.gsd_m}
    else:
        resolution = {"native": True}
    return {
        "name": meta.name,
        "task": meta.task,
        "classes": list(meta.classes),
        "input_kind": meta.input_kind,
        "input": _contract_row(meta),
        "resolution": resolution,
        "size_bytes": path.stat().st_size,
        "trained": bool(meta.trained),
        "description": meta.description,
        "path": str(path),
    }


def _contract_row(meta: ModelMeta) -> dict[str, Any]:
    """The input contract as ``gigavim models --json`` shows it (``derived``: not stored, inferred)."""
    contract = meta.contract()
    return {**contract.to_dict(), "derived": contract.derived, "summary": contract.summary(),
            "values": contract.range_text(), "scaling_text": contract.scaling_text()}


def list_models() -> list[dict[str, Any]]:
    """Every bundled model with its metadata (see :func:`describe_model`), sorted by name."""
    return [describe_model(bundled_dir() / f"{name}.pt") for name in bundled_names()]
