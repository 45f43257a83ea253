"""The work dir's label arrays: zarr v2 on local disk, one chunk per output block.

The engine writes its label map one output block at a time, and a block is exactly one chunk,
written straight to its file (:func:`gigavim.io.chunk_files.store_region`: through zarr's event
loop each block cost ~2 ms of CPU and two thread hand-offs, a third of a small model's run on a
busy 2-core host). zarr reads the arrays as usual (writers, instance pass, resume).
"""

from __future__ import annotations

from pathlib import Path

import numcodecs
import zarr

COMPRESSOR = numcodecs.Zstd(level=1)
"""Labels compress ~10× at ~400 MB/s: a 960² block costs ~2 ms."""


def create_block_array(path: Path, shape: tuple[int, ...], chunks: tuple[int, ...], fill_value: int,
                       ) -> zarr.Array:
    """A uint8 zarr v2 array at ``path``, its chunks written by :mod:`gigavim.io.chunk_files`."""
    return zarr.create_array(path, shape=shape, chunks=chunks, dtype="uint8", fill_value=fill_value,
                             zarr_format=2, compressors=COMPRESSOR, overwrite=True)
