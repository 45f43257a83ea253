"""OME-Zarr (NGFF 0.4, zarr v2 layout) output: a labels pyramid with class names and colours.

Why 0.4: napari-ome-zarr, QuPath, vizarr, OMERO and Fiji/MoBIE all read NGFF 0.4; 0.5 (zarr v3)
support is newer and patchier, and ``ome_zarr.reader`` reads both. Layout of ``out.zarr``::

    out.zarr/                      root multiscale image (the parent NGFF labels need):
      0, 1, ...                      ``LabelMap.image`` (C, y, x): the source's pixels on the
                                     label grid (``segment --with-image``), otherwise the
                                     class ids themselves (y, x); same levels as the labels
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
working pixels past the map's edge; its translation is half of its extra size, so levels (and
image and labels, which share transforms) line up in every viewer. A map over
:data:`IN_MEMORY_BYTES` is written in one pass of bands of chunk rows, every level at once
(:mod:`gigavim.io.writers.pyramid_bands`), or, when even a band is too large, level by level
chunk by chunk from dask (level ``k+1`` computed from the stored level ``k``), so memory stays
bounded whatever the map size; a smaller map is read whole and halved in numpy (the same files,
without dask's per-chunk overhead).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr
from numcodecs import Blosc
from ome_zarr.format import FormatV04
from ome_zarr.writer import write_label_metadata, write_multiscales_metadata
from zarr.storage import LocalStore

from gigavim.io.chunk_files import chunk_regions, store_if_data
from gigavim.io.writers.base import LabelMap
from gigavim.io.writers.pyramid import halve_intensities, halve_labels, level_count
from gigavim.io.writers.pyramid_bands import band_fits, write_pyramid_in_bands

FORMAT = FormatV04()
LABELS_NAME = "segmentation"
PROBABILITIES_NAME = "probabilities"
CHUNK = 1024
IN_MEMORY_BYTES = 1 << 26
CHUNK_THREADS = 2  # codecs release the GIL
"""A level-0 map up to this size (64 MiB: a 8k × 8k label map) is written from memory."""

# Level 1, not 5: a 1024² label chunk encodes in 1.4 instead of 4.4 ms and comes out ~6 % larger.
_COMPRESSOR = Blosc(cname="zstd", clevel=1, shuffle=Blosc.BITSHUFFLE)


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


def level0_of(array: Any, chunks: tuple[int, ...], dtype: Any) -> da.Array | np.ndarray | zarr.Array:
    """The full-resolution level to write: read whole into numpy when it fits
    :data:`IN_MEMORY_BYTES` (one zarr read, no dask graph), a zarr array of that dtype as it is
    (read band by band, without dask: :mod:`gigavim.io.writers.pyramid_bands`), else a lazy
    chunked dask view."""
    nbytes = math.prod(array.shape) * np.dtype(dtype).itemsize
    if not isinstance(array, da.Array) and nbytes <= IN_MEMORY_BYTES:
        return np.asarray(array[...]).astype(dtype, copy=False)
    if isinstance(array, zarr.Array) and array.dtype == np.dtype(dtype):
        return array
    return as_dask(array, chunks).astype(dtype)


def _axes(unit: str | None, channels: bool) -> list[dict[str, str]]:
    space = [{"name": n, "type": "space", **({"unit": unit} if unit else {})} for n in ("y", "x")]
    return ([{"name": "c", "type": "channel"}] if channels else []) + space


def _create_level(group: zarr.Group, index: int, shape: tuple[int, ...], dtype: Any) -> zarr.Array:
    """Pyramid level ``index`` as an empty array (NGFF 0.4: zarr v2, "/" chunk keys)."""
    chunks = (1,) * (len(shape) - 2) + (CHUNK, CHUNK)
    return group.create_array(
        str(index),
        shape=shape,
        chunks=tuple(min(c, s) for c, s in zip(chunks, shape, strict=True)),
        dtype=dtype,
        compressors=_COMPRESSOR,
        chunk_key_encoding={"name": "v2", "separator": "/"},
        fill_value=0,
    )


def _store_level(group: zarr.Group, index: int, level: da.Array | np.ndarray) -> zarr.Array:
    """Write one pyramid level as array ``<index>``: a dask level chunk by chunk, a numpy level
    in one assignment (the same chunks and bytes)."""
    stored = _create_level(group, index, level.shape, level.dtype)
    if isinstance(level, np.ndarray):
        _store_chunks(stored, level)
    else:
        da.store(level.rechunk(stored.chunks), stored, lock=False)
    return stored


def _store_chunks(stored: zarr.Array, level: np.ndarray) -> None:
    """A numpy level chunk by chunk, each encoded and written straight to its file by
    ``CHUNK_THREADS`` threads: zarr's own write of the CMU-1 sample's label pyramid took
    60–75 ms, mostly its event loop's per-chunk overhead, this 30–40 ms (the same files)."""
    with ThreadPoolExecutor(max_workers=CHUNK_THREADS, thread_name_prefix="gigavim-chunks") as pool:
        list(pool.map(lambda region: store_if_data(stored, region, level[region]), chunk_regions(stored)))


def _copy_level(source: zarr.Group, dest: zarr.Group, name: str) -> None:
    """Array ``name`` of ``source`` into ``dest`` as is: on a local store its files (metadata
    and compressed chunks) are copied, neither decoded nor re-encoded (the parent image of a
    label map without ``--with-image`` is a copy of the labels; re-encoding it was a tenth of a
    run); elsewhere chunk by chunk through dask."""
    src_root, dst_root = _local_root(source), _local_root(dest)
    if src_root is None or dst_root is None:
        _store_level(dest, int(name), da.from_zarr(source[name]))
        return
    shutil.copytree(src_root / source.path / name, dst_root / dest.path / name)


def _local_root(group: zarr.Group) -> Path | None:
    store = group.store
    return Path(store.root) if isinstance(store, LocalStore) else None


def physical(value: float) -> float:
    """``value`` to 12 significant digits: 3.9999999999999996 → 4.0 (float noise from unit
    conversions and powers of two), far below any pixel size's precision."""
    return float(f"{value:.12g}")


def _datasets(n_levels: int, lead: int, pixel_yx: tuple[float, float]) -> list[dict[str, Any]]:
    """NGFF ``datasets``: level k is exactly 2**k times coarser (odd edges are padded), in
    physical units, and shifted by half of its extra size: a level-k pixel covers level-0 pixels
    [j·2**k, (j+1)·2**k), so its centre lies (2**k − 1)/2 level-0 pixels past level 0's centre
    of pixel j·2**k. With that translation every viewer puts all levels (and the image and its
    labels, which share these transforms) on the same ground."""
    return [
        {
            "path": str(k),
            "coordinateTransformations": [
                {"type": "scale", "scale": [1.0] * lead + [physical(p * 2.0**k) for p in pixel_yx]},
                {"type": "translation",
                 "translation": [0.0] * lead + [physical(p * (2.0**k - 1) / 2) for p in pixel_yx]},
            ],
        }
        for k in range(n_levels)
    ]


def _write_pyramid(
    group: zarr.Group,
    level0: da.Array | np.ndarray | zarr.Array,
    halve: Callable[[da.Array, int], da.Array],
    n_levels: int,
    pixel_yx: tuple[float, float],
) -> list[dict[str, Any]]:
    """Store ``level0`` and its halvings as arrays ``0..n-1``; return NGFF ``datasets``.

    Level ``k + 1`` is computed from the stored level ``k``, not from a chain of lazy halvings,
    so each step reads back one level chunk by chunk and memory stays bounded. A map of at most
    :data:`IN_MEMORY_BYTES` is computed once and halved in numpy instead: for a small map dask's
    graph and per-chunk tasks cost more than the work (same arrays, same chunks and bytes).
    """
    if level0.nbytes <= IN_MEMORY_BYTES:
        level = level0 if isinstance(level0, np.ndarray) else np.asarray(level0.compute())
        for index in range(n_levels):
            _store_level(group, index, level)
            if index + 1 < n_levels:
                level = halve(level, CHUNK)
        return _datasets(n_levels, level0.ndim - 2, pixel_yx)
    if band_fits(level0.shape, level0.dtype, CHUNK):  # one pass down the map (pyramid_bands)
        *lead, height, width = level0.shape
        levels = [_create_level(group, k, (*lead, -(-height // 2**k), -(-width // 2**k)), level0.dtype)
                  for k in range(n_levels)]
        write_pyramid_in_bands(levels, level0, halve, CHUNK, CHUNK_THREADS)
        return _datasets(n_levels, level0.ndim - 2, pixel_yx)
    level = as_dask(level0, (1,) * (level0.ndim - 2) + (CHUNK, CHUNK))
    for index in range(n_levels):
        stored = _store_level(group, index, level)
        if index + 1 < n_levels:
            level = halve(da.from_zarr(stored), CHUNK)
    return _datasets(n_levels, level0.ndim - 2, pixel_yx)


def _label_metadata(label_map: LabelMap) -> tuple[list[dict], list[dict]]:
    """NGFF ``image-label`` colours and properties: one entry per class, plus nodata.

    Background (a class named "background", class 0 of slide models) and nodata are fully
    transparent (alpha 0), so viewers overlay the labels on the image without a dark veil.
    """
    skip = _transparent_values(label_map)
    colors = [
        {"label-value": i, "rgba": [int(r), int(g), int(b), 0 if i in skip else 255]}
        for i, (r, g, b) in enumerate(label_map.colors)
    ]
    properties = [{"label-value": i, "class": name} for i, name in enumerate(label_map.classes)]
    nodata = label_map.nodata_label
    if nodata is not None and nodata >= len(label_map.classes):
        colors.append({"label-value": int(nodata), "rgba": [0, 0, 0, 0]})
        properties.append({"label-value": int(nodata), "class": "nodata"})
    return colors, properties


def _transparent_values(label_map: LabelMap) -> set[int]:
    values = {i for i, name in enumerate(label_map.classes) if name.lower() == "background"}
    if label_map.nodata_label is not None:
        values.add(int(label_map.nodata_label))
    return values


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
        "pixel_size_yx": [physical(p) for p in physical_pixel(label_map)[1]],
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
    labels = level0_of(label_map.labels, (CHUNK, CHUNK), np.uint8)
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
        probs = level0_of(label_map.probabilities, (1, CHUNK, CHUNK), np.uint8)
        datasets = _write_pyramid(probs_group, probs, halve_intensities, n_levels, pixel)
        write_multiscales_metadata(
            probs_group, datasets, fmt=FORMAT, axes=_axes(unit, True), name=PROBABILITIES_NAME,
            metadata={"omero": _omero_channels(label_map.classes, label_map.colors)},
        )
    root.attrs["gigavim"] = _gigavim_attrs(label_map, has_probabilities)
    if label_map.instances is not None:
        from gigavim.io.writers.ome_zarr_instances import write_instance_labels

        write_instance_labels(root, label_map)


def _write_root_image(
    root: zarr.Group, label_map: LabelMap, labels_group: zarr.Group, n_levels: int,
    unit: str | None, pixel: tuple[float, float],
) -> None:
    """The parent image of the labels, on the labels' grid with as many levels (NGFF 0.4 says
    labels MUST match their image level by level): the source pixels when given, else a copy
    of the class ids."""
    if label_map.image is None:  # copy the stored label levels: no second downsampling
        for index in range(n_levels):
            _copy_level(labels_group, root, str(index))
        datasets = _datasets(n_levels, 0, pixel)
        write_multiscales_metadata(root, datasets, fmt=FORMAT, axes=_axes(unit, False), name="classes")
        return
    image = as_dask(label_map.image, (CHUNK, CHUNK, -1)).transpose(2, 0, 1)
    if image.shape[1:] != label_map.shape:
        raise ValueError(f"LabelMap.image is {image.shape[1:]} (y, x), "
                         f"not on the label grid {label_map.shape}")
    datasets = _write_pyramid(root, image, halve_intensities, n_levels, pixel)
    bands = image.shape[0]
    rgb = bands in (3, 4) and image.dtype == np.uint8
    if rgb:
        names = ["red", "green", "blue", "alpha"][:bands]
        colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)][:bands]
    else:
        names, colors = [f"band {i + 1}" for i in range(bands)], [(255, 255, 255)] * bands
    windows = _display_windows(root[str(n_levels - 1)])
    write_multiscales_metadata(
        root, datasets, fmt=FORMAT, axes=_axes(unit, True), name="image",
        metadata={"omero": _omero_channels(names, colors, windows)},
    )


def _display_windows(smallest: zarr.Array) -> list[tuple[float, float, float, float]]:
    """Per channel (min, max, start, end) for viewers' contrast: the dtype's range for uint8,
    else the 0.5–99.5 percentiles of the smallest level (≤ 256² pixels, read at once)."""
    pixels = np.asarray(smallest[...])
    if pixels.dtype == np.uint8:
        return [(0, 255, 0, 255)] * pixels.shape[0]
    windows = []
    for channel in pixels.reshape(pixels.shape[0], -1).astype(np.float64):
        finite = channel[np.isfinite(channel)]
        if not finite.size:
            windows.append((0.0, 1.0, 0.0, 1.0))
            continue
        low, high = np.percentile(finite, [0.5, 99.5])
        windows.append((float(finite.min()), float(finite.max()), float(low), float(max(high, low + 1e-6))))
    return windows


def _omero_channels(
    names: list[str], colors: list[tuple[int, int, int]],
    windows: list[tuple[float, float, float, float]] | None = None,
) -> dict[str, Any]:
    """OMERO rendering hints so viewers show each channel named, coloured and contrasted
    ((min, max, start, end) per channel; 0–255 by default)."""
    windows = windows or [(0, 255, 0, 255)] * len(names)
    return {
        "channels": [
            {
                "label": name,
                "color": "{:02X}{:02X}{:02X}".format(*color),
                "window": dict(zip(("min", "max", "start", "end"), window, strict=True)),
                "active": True,
            }
            for name, color, window in zip(names, colors, windows, strict=True)
        ]
    }
