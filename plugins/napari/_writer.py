"""npe2 writer: save a (possibly edited) labels layer as a gigavim OME-Zarr or GeoJSON.

napari calls ``write_labels(path, data, attributes)`` from File > Save Selected Layer(s). A
layer read from a gigavim output carries that output's ``gigavim`` attributes (classes, colours,
pixel size, georeference, provenance) in its metadata, so the saved file has the same classes
and lands on the same ground; any other labels layer is saved in pixels (or µm when napari
knows the scale in µm) with generic class names. The writing itself is gigavim's
(:func:`gigavim.io.writers.write_outputs`): all-or-nothing, the NGFF/GeoJSON rules of
docs/outputs.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gigavim.napari._reader import GIGAVIM_ATTR, gigavim_attrs

#: Colours for classes of a labels layer that did not come from gigavim (class 0 = background).
_PALETTE = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


def write_labels(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Write the labels layer ``data`` (level 0 of a multiscale one) to ``path``."""
    from gigavim.io.writers import write_outputs

    dest = Path(path)
    label_map = labels_to_map(data, attributes)
    # napari's save dialog has already asked before replacing a file; a directory is replaced
    # only when it is a gigavim output itself.
    overwrite = dest.is_file() or gigavim_attrs(dest) is not None
    write_outputs(label_map, [dest], overwrite=overwrite)
    return [str(dest)]


def labels_to_map(data: Any, attributes: dict[str, Any]) -> Any:
    """A :class:`~gigavim.io.writers.base.LabelMap` for a napari labels layer's data/attributes."""
    from gigavim.io.writers.base import LabelMap

    level0 = data[0] if isinstance(data, (list, tuple)) else data
    labels = np.asarray(level0)
    if labels.ndim != 2:
        from gigavim.errors import UsageError

        raise UsageError(f"a gigavim segmentation is 2-D (y, x); this labels layer has shape {labels.shape}")
    if labels.max(initial=0) > 255 or labels.min(initial=0) < 0:
        from gigavim.errors import UsageError

        raise UsageError("gigavim segmentations hold class ids 0–255; this layer has other values")
    labels = labels.astype(np.uint8)
    meta = attributes.get("metadata") or {}
    saved = meta.get(GIGAVIM_ATTR) or {}
    if saved:
        return LabelMap(
            labels=labels, classes=list(saved["classes"]), colors=[tuple(c) for c in saved["colors"]],
            source_path=Path(saved.get("source", "napari")), source_kind=saved.get("source_kind", "image"),
            mpp=saved.get("mpp"), gsd_m=saved.get("gsd_m"), crs=saved.get("crs"),
            transform=_affine(saved.get("transform")),
            scale_to_level0=tuple(saved.get("scale_to_level0_yx") or (1.0, 1.0)),
            nodata_label=saved.get("nodata_label"),
            model={**(saved.get("model") or {}), "edited_in": "napari"},
            settings=saved.get("settings") or {},
        )
    count = int(labels.max(initial=0)) + 1
    classes = ["background"] + [f"class {i}" for i in range(1, count)]
    colors = [_PALETTE[i % len(_PALETTE)] for i in range(count)]
    scale = attributes.get("scale") or (1.0, 1.0)
    units = [str(u) for u in (attributes.get("units") or ())]
    mpp = float(scale[-1]) if units and units[-1] in ("micrometer", "µm", "um") else None
    return LabelMap(labels=labels, classes=classes, colors=colors, source_path=Path("napari"),
                    source_kind="slide" if mpp else "image", mpp=mpp,
                    model={"name": "napari labels layer", "edited_in": "napari"})


def _affine(coefficients: list[float] | None) -> Any:
    if not coefficients:
        return None
    from affine import Affine

    return Affine(*coefficients[:6])
