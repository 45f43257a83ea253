"""Write a large map's whole pyramid in one pass down the map, one band of chunk rows at a time.

The dask road writes level 0, then reads it back chunk by chunk to compute level 1, and so on:
every level is decoded again and each chunk goes through zarr's event loop (on a 25k² label map
7 s, two thirds of it levels 0 and 1). Here each band of ``chunk`` rows of level 0 is read once
(one zarr or dask read), its chunks are encoded and written straight to their files by a few
threads (:func:`gigavim.io.chunk_files.store_region`), and it is halved in numpy and handed to
level 1, which writes a chunk row once it has ``chunk`` rows, halves them for level 2, and so
on. The 2×2 reductions are local and odd edges are padded by repetition only at the last row
and column, so the files are the ones the level-by-level road writes (tested). Memory: about two
bands of level 0 (the next levels' partial rows add at most one more), so this road is taken
only when a band fits :data:`BAND_BYTES`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import zarr

from gigavim.io.chunk_files import store_if_data

BAND_BYTES = 1 << 27
"""Largest level-0 band (``chunk`` rows, all columns and channels) written this way (128 MiB)."""


def band_fits(shape: tuple[int, ...], dtype: Any, chunk: int) -> bool:
    """Whether a band of ``chunk`` rows of a map of ``shape`` fits :data:`BAND_BYTES`."""
    planes = int(np.prod(shape[:-2], dtype=np.int64))
    return planes * min(chunk, shape[-2]) * shape[-1] * np.dtype(dtype).itemsize <= BAND_BYTES


def write_pyramid_in_bands(
    levels: list[zarr.Array],
    level0: Any,
    halve: Callable[[np.ndarray, int], np.ndarray],
    chunk: int,
    threads: int,
) -> None:
    """Fill the created arrays ``levels`` (level k: ``ceil(n / 2**k)`` pixels, chunks of ``chunk``
    rows) from ``level0`` (zarr, dask or numpy; read band by band) and its halvings."""
    height = level0.shape[-2]
    pending: list[list[np.ndarray]] = [[] for _ in levels]  # rows each level has not written yet
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gigavim-bands") as pool:
        written = [0] * len(levels)

        def feed(k: int, rows: np.ndarray, last: bool) -> None:
            pending[k].append(rows)
            have = sum(p.shape[-2] for p in pending[k])
            if have < chunk and not last:
                return
            band = pending[k][0] if len(pending[k]) == 1 else np.concatenate(pending[k], axis=-2)
            pending[k] = []
            list(pool.map(lambda region: _store_from_band(levels[k], region, band, written[k]),
                          _band_regions(levels[k], written[k], band.shape[-2])))
            written[k] += band.shape[-2]
            if k + 1 < len(levels):
                feed(k + 1, halve(band, chunk), last)

        for y in range(0, height, chunk):
            band = np.asarray(level0[..., y:min(y + chunk, height), :])  # a dask band computes here
            feed(0, np.ascontiguousarray(band, dtype=levels[0].dtype), y + chunk >= height)


def _band_regions(array: zarr.Array, y0: int, rows: int) -> list[tuple[slice, ...]]:
    """The chunk regions of ``array`` in rows ``[y0, y0 + rows)`` (whole chunk rows)."""
    lead = [range(0, n, c) for n, c in zip(array.shape[:-2], array.chunks[:-2], strict=True)]
    step, width = array.chunks[-2], array.shape[-1]
    rows_slices = [slice(y, min(y + step, array.shape[-2])) for y in range(y0, y0 + rows, step)]
    cols = [slice(x, min(x + array.chunks[-1], width)) for x in range(0, width, array.chunks[-1])]
    return [(*(slice(i, min(i + c, n)) for i, c, n in zip(starts, array.chunks[:-2], array.shape[:-2],
                                                          strict=True)), r, c)
            for starts in itertools.product(*lead) for r in rows_slices for c in cols]


def _store_from_band(array: zarr.Array, region: tuple[slice, ...], band: np.ndarray, y0: int) -> None:
    """One chunk of ``array`` from the band that starts at its row ``y0``."""
    rows = slice(region[-2].start - y0, region[-2].stop - y0)
    store_if_data(array, region, band[(*region[:-2], rows, region[-1])])  # store_region copies a view
