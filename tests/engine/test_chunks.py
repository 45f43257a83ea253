"""Work-dir label arrays: whole chunks written as files must read back through zarr unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from gigavim.engine.chunks import create_block_array
from gigavim.io.chunk_files import _chunk_file, store_region


def test_whole_chunks_written_as_files_read_back_through_zarr(tmp_path: Path) -> None:
    array = create_block_array(tmp_path / "labels.zarr", (50, 70), (16, 32), fill_value=7)
    rng = np.random.default_rng(0)
    want = np.full((50, 70), 7, np.uint8)
    for y in range(0, 50, 16):
        for x in range(0, 70, 32):  # edge chunks (2 rows, 6 columns) included
            region = (slice(y, min(y + 16, 50)), slice(x, min(x + 32, 70)))
            assert _chunk_file(array, region) is not None
            block = rng.integers(0, 5, (region[0].stop - y, region[1].stop - x), dtype=np.uint8)
            store_region(array, region, block)
            want[region] = block
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "labels.zarr", mode="r")[:], want)
    assert not list((tmp_path / "labels.zarr").glob("*.partial"))


def test_class_probability_chunks_and_other_regions_go_through_zarr(tmp_path: Path) -> None:
    probs = create_block_array(tmp_path / "p.zarr", (3, 20, 20), (3, 10, 10), fill_value=0)
    block = np.arange(300, dtype=np.uint8).reshape(3, 10, 10)
    store_region(probs, (slice(None), slice(10, 20), slice(0, 10)), block)  # a chunk: its file
    assert (tmp_path / "p.zarr" / "0.1.0").is_file()
    store_region(probs, (slice(None), slice(0, 5), slice(0, 10)), block[:, :5])  # half a chunk: zarr
    got = zarr.open_array(tmp_path / "p.zarr", mode="r")
    np.testing.assert_array_equal(got[:, 10:, :10], block)
    np.testing.assert_array_equal(got[:, :5, :10], block[:, :5])
    np.testing.assert_array_equal(got[:, 5:10, :10], 0)
    v3 = zarr.create_array(tmp_path / "v3.zarr", shape=(20, 20), chunks=(10, 10), dtype="uint8")
    assert _chunk_file(v3, (slice(0, 10), slice(0, 10))) is None  # an older work dir's array
    store_region(v3, (slice(0, 10), slice(0, 10)), np.ones((10, 10), np.uint8))
    assert v3[:10, :10].all()
