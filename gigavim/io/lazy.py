"""Lazy dask views of anything read window by window, with one blockwise layer and a stable name.

Building a dask array from one ``delayed`` read per chunk and ``concatenate`` materialises a task
and a slicing step per chunk: on a 100k² slide that is ~10⁴ tasks to build (seconds) and to
cull on every viewport read. ``da.map_blocks`` with no input array instead makes one blockwise
layer whose tasks exist only for the chunks a computation touches, and a name derived from
what is read (not from a random token) lets dask and napari recognise the same view again.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import dask.array as da
import numpy as np
from dask.base import tokenize

from gigavim.io.base import Window


def _axis_chunks(length: int, chunk: int) -> tuple[int, ...]:
    full, rest = divmod(length, chunk)
    return (chunk,) * full + ((rest,) if rest else ())


def windowed_dask(
    read: Callable[[Window], np.ndarray],
    shape: tuple[int, int, int],
    dtype: np.dtype,
    chunk: int,
    key: tuple[Hashable, ...],
    prefix: str = "gigavim-read",
) -> da.Array:
    """A (h, w, bands) dask array whose chunk at (y, x) is ``read(Window(y, x, h, w))``.

    ``key`` identifies what ``read`` returns (e.g. file path, level, chunk): equal keys give
    equal dask names, so the graph is reused rather than rebuilt.
    """
    height, width, bands = shape
    rows, cols = _axis_chunks(height, chunk), _axis_chunks(width, chunk)

    # ``block_id`` rather than ``block_info``: dask builds block_info for every chunk up front.
    def block(block_id: tuple[int, int, int]) -> np.ndarray:
        iy, ix, _ = block_id
        window = Window(iy * chunk, ix * chunk, rows[iy], cols[ix])
        return np.asarray(read(window), dtype=dtype)

    return da.map_blocks(block, chunks=(rows, cols, (bands,)), dtype=dtype,
                         name=f"{prefix}-{tokenize(*key, shape, chunk)}",
                         meta=np.empty((0, 0, 0), dtype=dtype))
