"""Ctrl-C and SIGTERM: one line saying how to continue, a non-zero exit, and a resumable run.

Real processes: the signal arrives while ``gigavim segment`` is computing tiles (its run lock
file exists from then on), and the interrupted run is then resumed to completion.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin


def _start(scene: Path, out: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "gigavim", "segment", str(scene), "-o", str(out), "-q",
                             "--batch-size", "1", "--workers", "1"], stderr=subprocess.PIPE, text=True)
    lock = out.with_name(out.name + ".gigavim-work.lock")
    deadline = time.monotonic() + 240
    while not lock.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lock.exists(), "the run never started computing"
    return proc


def test_sigint_and_sigterm_say_interrupted_and_the_run_resumes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    scene = tmp_path / "scene.tif"
    with rasterio.open(scene, "w", driver="GTiff", width=512, height=512, count=3, dtype="uint8",
                       crs="EPSG:32631", transform=from_origin(0, 0, 10, 10)) as ds:
        ds.write(rng.integers(0, 255, (3, 512, 512), dtype=np.uint8))
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        out = tmp_path / f"{sig.name}.tif"
        proc = _start(scene, out)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == code, stderr
        assert "gigavim: interrupted — rerun with --resume to continue" in stderr.splitlines()
        assert "Traceback" not in stderr and not out.exists()  # (a lock file left behind blocks nothing)
    resumed = subprocess.run([sys.executable, "-m", "gigavim", "segment", str(scene), "-o", str(out), "-q",
                              "--batch-size", "1", "--resume"],
                             capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr
    with rasterio.open(out) as ds:
        assert ds.shape == (512, 512)
