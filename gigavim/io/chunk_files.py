"""Whole zarr v2 chunks written straight to their files, bypassing zarr's event loop.

A v2 chunk on a local store is simply its encoded bytes in one file (``"y.x"``, or ``"y/x"``
for NGFF 0.4's nested keys). Through zarr-python 3 each write is a coroutine handed to zarr's
event-loop thread and waited for: ~2 ms of CPU and two thread hand-offs per chunk. Here a chunk
is encoded with the array's own compressor in the calling thread (codecs release the GIL, so
several threads write in parallel) and its file replaced (temporary name, then rename: a reader
never sees half a chunk). zarr reads the array as usual. Anything else — another layout, a
region that is not one whole chunk — goes through zarr.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore


def store_region(array: Any, region: tuple[slice, ...], data: np.ndarray) -> None:
    """``array[region] = data``; a whole chunk of a local v2 array as one file write."""
    path = _chunk_file(array, region)
    if path is None:
        array[region] = data
        return
    if data.shape == tuple(array.chunks) and data.dtype == array.dtype and data.flags.c_contiguous:
        chunk = data
    else:  # edge chunks are stored full-size
        chunk = np.full(array.chunks, array.fill_value, dtype=array.dtype)
        chunk[tuple(slice(0, n) for n in data.shape)] = data
    compressor = array.metadata.compressor
    payload = compressor.encode(chunk) if compressor is not None else chunk.tobytes()
    tmp = path.with_name(path.name + ".partial")
    if array.metadata.dimension_separator == "/":  # nested chunk keys: "y/x" (NGFF 0.4)
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as fh:
        fh.write(payload)
    os.replace(tmp, path)


def store_if_data(array: Any, region: tuple[slice, ...], data: np.ndarray) -> None:
    """:func:`store_region`, unless ``data`` is all fill value: as zarr, such a chunk is not written."""
    if (data != array.fill_value).any():
        store_region(array, region, data)


def _chunk_file(array: Any, region: tuple[slice, ...]) -> Path | None:
    """The file of the one chunk ``region`` covers exactly, or None (zarr must write it)."""
    if not isinstance(array, zarr.Array):
        return None
    meta = array.metadata
    store = array.store_path.store
    if (meta.zarr_format != 2 or meta.filters or meta.order != "C" or not isinstance(store, LocalStore)
            or len(region) != array.ndim):
        return None
    index = []
    for sl, chunk, size in zip(region, array.chunks, array.shape, strict=True):
        start, stop = sl.start or 0, size if sl.stop is None else sl.stop
        if sl.step not in (None, 1) or start % chunk or stop != min(start + chunk, size):
            return None
        index.append(str(start // chunk))
    folder = Path(store.root) / array.store_path.path
    return folder / meta.dimension_separator.join(index)


def chunk_regions(array: Any) -> Iterator[tuple[slice, ...]]:
    """The region of every chunk of ``array``, in C order."""
    axes = [range(0, size, chunk) for size, chunk in zip(array.shape, array.chunks, strict=True)]
    for starts in itertools.product(*axes):
        yield tuple(slice(start, min(start + chunk, size))
                    for start, chunk, size in zip(starts, array.chunks, array.shape, strict=True))
