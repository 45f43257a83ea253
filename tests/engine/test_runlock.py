"""Two runs on one output: the second is told another run (its PID) is busy, whatever it asks.

The lock holder is a real second process (fcntl locks are per process); killing it with
SIGKILL releases the lock, so a crashed run never blocks the next one.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from gigavim.engine import segment
from gigavim.errors import OutputError
from gigavim.io.writers.atomic import check_writable

from .fakes import tiny_bundle


def _scene(path: Path) -> Path:
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8",
                       crs="EPSG:32631", transform=from_origin(0, 0, 10, 10)) as ds:
        ds.write(rng.integers(0, 255, (3, 64, 64), dtype=np.uint8))
    return path


def _hold_lock(out: Path) -> subprocess.Popen[str]:
    """Another process that takes the run lock of ``out`` and keeps it."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from gigavim.engine.runlock import RunLock
        RunLock(Path({str(out) + '.gigavim-work'!r}), Path({str(out)!r})).acquire()
        print("held", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_is_refused_while_another_process_writes_the_output(tmp_path: Path) -> None:
    scene, out = _scene(tmp_path / "scene.tif"), tmp_path / "labels.tif"
    holder = _hold_lock(out)
    try:
        for options in ({}, {"resume": True}, {"overwrite": True}):
            with pytest.raises(OutputError) as err:
                segment(scene, [out], model=tiny_bundle(gsd_m=10.0, tile=32, overlap=8), **options)
            assert str(err.value) == (f"{out}: another gigavim run (pid {holder.pid}) is writing {out}; "
                                      "wait for it to finish or choose another output"), options
        assert not out.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The killed holder left its lock file behind; it blocks nothing.
    assert (tmp_path / "labels.tif.gigavim-work.lock").exists()
    segment(scene, [out], model=tiny_bundle(gsd_m=10.0, tile=32, overlap=8))
    assert out.exists() and not (tmp_path / "labels.tif.gigavim-work.lock").exists()


def test_a_work_dir_left_by_a_killed_run_is_resumable_not_locked(tmp_path: Path) -> None:
    scene, out = _scene(tmp_path / "scene.tif"), tmp_path / "labels.tif"
    holder = _hold_lock(out)
    (tmp_path / "labels.tif.gigavim-work").mkdir()  # what a run killed right after starting leaves
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    result = segment(scene, [out], model=tiny_bundle(gsd_m=10.0, tile=32, overlap=8))
    assert out.exists() and result.tiles_computed > 0


def test_overwrite_never_deletes_a_directory_that_is_not_a_gigavim_output(tmp_path: Path) -> None:
    scene = _scene(tmp_path / "scene.tif")
    precious = tmp_path / "data.zarr"
    (precious / "sub").mkdir(parents=True)
    (precious / "sub" / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="is a directory that is not a gigavim output"):
        segment(scene, [precious], model=tiny_bundle(gsd_m=10.0, tile=32, overlap=8), overwrite=True)
    assert (precious / "sub" / "keep.txt").read_text() == "mine"
    workdir = tmp_path / "mine"
    (workdir / "notes").mkdir(parents=True)
    with pytest.raises(OutputError, match="is not a gigavim work dir; refusing to delete"):
        segment(scene, [tmp_path / "x.tif"], model=tiny_bundle(gsd_m=10.0, tile=32, overlap=8),
                workdir=workdir, overwrite=True)
    assert (workdir / "notes").is_dir()
    # A gigavim output directory is still replaced.
    ours = tmp_path / "ours.zarr"
    segment(scene, [ours], model=tiny_bundle(gsd_m=10.0, tile=32, overlap=8))
    check_writable(ours, overwrite=True)
    segment(scene, [ours], model=tiny_bundle(gsd_m=10.0, tile=32, overlap=8), overwrite=True)
