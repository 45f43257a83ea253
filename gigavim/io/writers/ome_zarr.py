"""OME-Zarr (NGFF 0.4, zarr v2 layout) output: a labels pyramid with class names and colours.

Why 0.4: napari-ome-zarr, QuPath, vizarr, OMERO and Fiji/MoBIE all read NGFF 0.4; 0.5 (zarr v3)
support is newer and patchier, and ``ome_zarr.reader`` reads both. Layout of ``out.zarr``::

    out.zarr/                      root multiscale image (the parent NGFF labels need):
      0, 1, ...                      ``LabelMap.image`` (C, y, x) when the engine gives one,
                                     otherwise the class ids themselves (y, x)
      labels/segmentation/0, 1, ...  the class-id pyramid (uint8, mode-downsampled) with
                                     ``image-label`` colours (``label-value``/``rgba``) and
                                     ``properties`` (``label-value``/``class``)
      probabilities/0, 1, ...        optional: per-class probability ×255 (uint8, c = class,
                                     mean-downsampled), its own NGFF multiscale image
    root attribute ``gigavim``: provenance (model, version, settings), georeference, pixel size

Scales in ``coordinateTransformations`` are physical: µm for slides (``mpp``), metres for rasters
(from the working grid's transform, so non-square pixels keep their own y and x sizes), else
pixels. Level ``k`` is exactly ``2**k`` times coarser on both axes, odd sizes included: the
pyramid pads odd edges (see :mod:`gigavim.io.writers.pyramid`), so level ``k`` has
``ceil(n / 2**k)`` pixels of ``2**k`` working pixels each and reaches at most ``2**k - 1``
working pixels past the map's edge. Every level is written chunk by chunk from dask (level
``k+1`` is computed from the stored level ``k``), so memory stays bounded whatever the map size.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr
from numcodecs import Blosc
from ome_zarr.format import FormatV04
from ome_zarr.writer import write_label_metadata, write_multiscales_metadata

from gigavim.io.writers.base import LabelMap
from gigavim.io.writers.pyramid import halve_intensities, halve_labels, level_count

FORMAT = FormatV04()
LABELS_NAME = "segmentation"
PROBABILITIES_NAME = "probabilities"
CHUNK = 1024

_COMPRESSOR = Blosc(cname="zstd", clevel=5, shuffle=Blosc.BITSHUFFLE)


def physical_pixel(label_map: LabelMap) -> tuple[str | None, tuple[float, float]]:
    """(NGFF unit, (y, x) size of one working pixel in it): µm for slides, metres for rasters.

    A georeferenced map takes each axis's size from its transform (``gsd_m`` is the square root
    of the pixel's area, which is right only for square pixels).
    """
    if label_map.mpp_yx:
        return "micrometer", label_map.mpp_yx
    if label_map.gsd_m:
        sizes = None
        if label_map.transform is not None and label_map.crs:
            from gigavim.io.raster_source import pixel_size_m

            height, width = label_map.shape
            sizes = pixel_size_m(label_map.crs, label_map.transform, width, height)
        return "meter", sizes or (float(label_map.gsd_m), float(label_map.gsd_m))
    return None, (1.0, 1.0)


def as_dask(array: Any, chunks: tuple[int, ...]) -> da.Array:
    """A lazy dask view of an array-like (zarr, numpy or dask), chunked for writing."""
    if isinstance(array, da.Array):
        return array.rechunk(chunks)
    return da.from_array(array, chunks=chunks)


def _axes(unit: str | None, channels: bool) -> list[dict[str, str]]:
    space = [{"name": n, "type": "space", **({"unit": unit} if unit else {})} for n in ("y", "x")]
    return ([{"name": "c", "type": "channel"}] if channels else []) + space


def _store_level(group: zarr.Group, index: int, level: da.Array) -> zarr.Array:
    """Write one pyramid level as array ``<index>`` (NGFF 0.4: zarr v2, "/" chunk keys)."""
    lead = level.ndim - 2
    chunks = (1,) * lead + (CHUNK, CHUNK)
    stored = group.create_array(
        str(index),
        shape=level.shape,
        chunks=tuple(min(c, s) for c, s in zip(chunks, level.shape, strict=True)),
        dtype=level.dtype,
        compressors=_COMPRESSOR,
        chunk_key_encoding={"name": "v2", "separator": "/"},
        fill_value=0,
    )
    da.store(level.rechunk(stored.chunks), stored, lock=False)
    return stored


def _datasets(n_levels: int, lead: int, pixel_yx: tuple[float, float]) -> list[dict[str, Any]]:
    """NGFF ``datasets``: level k is exactly 2**k times coarser (odd edges are padded), in
    physical units."""
    return [
        {
            "path": str(k),
            "coordinateTransformations": [
                {"type": "scale", "scale": [1.0] * lead + [pixel_yx[0] * 2.0**k, pixel_yx[1] * 2.0**k]}
            ],
        }
        for k in range(n_levels)
    ]


def _write_pyramid(
    group: zarr.Group,
    level0: da.Array,
    halve: Callable[[da.Array, int], da.Array],
    n_levels: int,
    pixel_yx: tuple[float, float],
) -> list[dict[str, Any]]:
    """Store ``level0`` and its halvings as arrays ``0..n-1``; return NGFF ``datasets``.

    Level ``k + 1`` is computed from the stored level ``k``, not from a chain of lazy halvings,
    so each step reads back one level chunk by chunk and memory stays bounded.
    """
    level = level0
    for index in range(n_levels):
        stored = _store_level(group, index, level)
        if index + 1 < n_levels:
            level = halve(da.from_zarr(stored), CHUNK)
    return _datasets(n_levels, level0.ndim - 2, pixel_yx)


def _label_metadata(label_map: LabelMap) -> tuple[list[dict], list[dict]]:
    """NGFF ``image-label`` colours and properties: one entry per class (+ nodata, transparent)."""
    colors = [
        {"label-value": i, "rgba": [int(r), int(g), int(b), 255]}
        for i, (r, g, b) in enumerate(label_map.colors)
    ]
    properties = [{"label-value": i, "class": name} for i, name in enumerate(label_map.classes)]
    nodata = label_map.nodata_label
    if nodata is not None and nodata >= len(label_map.classes):
        colors.append({"label-value": int(nodata), "rgba": [0, 0, 0, 0]})
        properties.append({"label-value": int(nodata), "class": "nodata"})
    return colors, properties


def _gigavim_attrs(label_map: LabelMap, has_probabilities: bool) -> dict[str, Any]:
    """Provenance plus what a reader needs to place the map back on its source."""
    transform = label_map.transform
    return {
        **label_map.provenance(),
        "source_kind": label_map.source_kind,
        "labels": f"labels/{LABELS_NAME}",
        "probabilities": PROBABILITIES_NAME if has_probabilities else None,
        "mpp": label_map.mpp,
        "gsd_m": label_map.gsd_m,
        "pixel_size_yx": list(physical_pixel(label_map)[1]),
        "crs": label_map.crs,
        "transform": list(transform)[:6] if transform is not None else None,
        "scale_to_level0": sum(label_map.scale_to_level0_yx) / 2,
        "scale_to_level0_yx": list(label_map.scale_to_level0_yx),
        "nodata_label": label_map.nodata_label,
    }


def write_ome_zarr(label_map: LabelMap, path: Path) -> None:
    """Write ``label_map`` as an NGFF 0.4 OME-Zarr directory at ``path`` (must not exist)."""
    unit, pixel = physical_pixel(label_map)
    height, width = label_map.shape
    n_levels = level_count((height, width))
    root = zarr.open_group(str(path), mode="w-", zarr_format=FORMAT.zarr_format)

    labels_group = root.require_group(f"labels/{LABELS_NAME}")
    labels = as_dask(label_map.labels, (CHUNK, CHUNK)).astype(np.uint8)
    datasets = _write_pyramid(labels_group, labels, halve_labels, n_levels, pixel)
    write_multiscales_metadata(
        labels_group, datasets, fmt=FORMAT, axes=_axes(unit, False), name=LABELS_NAME
    )
    colors, properties = _label_metadata(label_map)
    write_label_metadata(
        root["labels"], LABELS_NAME, colors=colors, properties=properties, fmt=FORMAT,
        source={"image": "../../"},
    )

    _write_root_image(root, label_map, labels_group, n_levels, unit, pixel)

    has_probabilities = label_map.probabilities is not None
    if has_probabilities:
        probs_group = root.require_group(PROBABILITIES_NAME)
        probs = as_dask(label_map.probabilities, (1, CHUNK, CHUNK)).astype(np.uint8)
        datasets = _write_pyramid(probs_group, probs, halve_intensities, n_levels, pixel)
        write_multiscales_metadata(
            probs_group, datasets, fmt=FORMAT, axes=_axes(unit, True), name=PROBABILITIES_NAME,
            metadata={"omero": _omero_channels(label_map.classes, label_map.colors)},
        )
    root.attrs["gigavim"] = _gigavim_attrs(label_map, has_probabilities)


def _write_root_image(
    root: zarr.Group, label_map: LabelMap, labels_group: zarr.Group, n_levels: int,
    unit: str | None, pixel: tuple[float, float],
) -> None:
    """The parent image of the labels: the engine's image if given, else the class ids."""
    if label_map.image is None:  # copy the stored label levels: no second downsampling
        for index in range(n_levels):
            _store_level(root, index, da.from_zarr(labels_group[str(index)]))
        datasets = _datasets(n_levels, 0, pixel)
        write_multiscales_metadata(root, datasets, fmt=FORMAT, axes=_axes(unit, False), name="classes")
        return
    image = as_dask(label_map.image, (CHUNK, CHUNK, -1)).astype(np.uint8).transpose(2, 0, 1)
    height, width = label_map.shape
    # A lower-resolution image covers the same area: its pixels are proportionally larger.
    pixel_yx = (pixel[0] * height / image.shape[1], pixel[1] * width / image.shape[2])
    n_image = level_count(image.shape[1:])
    datasets = _write_pyramid(root, image, halve_intensities, n_image, pixel_yx)
    channels = ["red", "green", "blue"] if image.shape[0] == 3 else None
    omero = _omero_channels(
        channels or [f"band {i + 1}" for i in range(image.shape[0])],
        [(255, 0, 0), (0, 255, 0), (0, 0, 255)] if channels else [(255, 255, 255)] * image.shape[0],
    )
    write_multiscales_metadata(
        root, datasets, fmt=FORMAT, axes=_axes(unit, True), name="image", metadata={"omero": omero}
    )


def _omero_channels(names: list[str], colors: list[tuple[int, int, int]]) -> dict[str, Any]:
    """OMERO rendering hints so viewers show each channel named and coloured, 0–255."""
    return {
        "channels": [
            {
                "label": name,
                "color": "{:02X}{:02X}{:02X}".format(*color),
                "window": {"min": 0, "max": 255, "start": 0, "end": 255},
                "active": True,
            }
            for name, color in zip(names, colors, strict=True)
        ]
    }
