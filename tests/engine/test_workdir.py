"""The work dir's tile files: an in-memory index and recent tiles that always agree with the disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gigavim.engine import workdir as workdir_module
from gigavim.engine.workdir import WorkDir


def _tile(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((3, 32, 32)).astype(np.float16)


def test_saved_tiles_are_on_disk_and_a_resuming_run_sees_the_same(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workdir_module, "RECENT_TILE_BYTES", 2 * _tile(0).nbytes)  # 2 tiles in memory
    work = WorkDir(tmp_path / "run.gigavim-work")
    assert work.prepare({"a": 1}, resume=False) is False
    assert not work.has_tile((0, 0))
    for i in range(4):
        work.save_tile((0, i), _tile(i))
    assert len(work._recent) == 2  # bounded; the older ones come back from their files
    for i in range(4):
        assert work.has_tile((0, i)) and (work.tiles / f"0_{i}.npy").exists()
        np.testing.assert_array_equal(work.load_tile((0, i)), _tile(i))
        assert not work.load_tile((0, i)).flags.writeable
    work.drop_tile((0, 3))
    work.drop_tile((0, 0))
    assert not work.has_tile((0, 3)) and not (work.tiles / "0_3.npy").exists()

    resumed = WorkDir(work.path)  # another process, after a kill: only the disk
    assert resumed.prepare({"a": 1}, resume=True) is True
    assert [resumed.has_tile((0, i)) for i in range(4)] == [False, True, True, False]
    np.testing.assert_array_equal(resumed.load_tile((0, 2)), _tile(2))


def test_a_saved_tile_file_is_what_np_save_writes_and_memory_is_the_runs_own(tmp_path: Path) -> None:
    """Tile files stay plain .npy (np.load reads them), whether the tile came as a view of a
    batch or not; the copy kept in memory does not change when the batch is reused."""
    import io

    work = WorkDir(tmp_path / "run.gigavim-work")
    work.prepare({"a": 1}, resume=False)
    batch = np.stack([_tile(1), _tile(2)])
    work.save_tile((0, 0), batch[1])
    expected = io.BytesIO()
    np.save(expected, _tile(2))
    assert (work.tiles / "0_0.npy").read_bytes() == expected.getvalue()
    batch[:] = 0  # the engine's next batch
    np.testing.assert_array_equal(work.load_tile((0, 0)), _tile(2))
