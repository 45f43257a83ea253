"""Finite but huge weights (×1e38, ±1e38 everywhere, A_log ×1e38) run through the real model and
the compiled CPU scan: a result or one line, never a crash. An unreproduced report said such a
bundle segfaulted; the run is a subprocess, so a crash fails this test instead of pytest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from . import corpus

_RUN = """
import sys
from gigavim.cli import main
sys.exit(main(["segment", sys.argv[1], "--model", sys.argv[2], "-o", sys.argv[3]]))
"""


def _segment(scene: Path, bundle: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _RUN, str(scene), str(bundle), str(out)],
                          capture_output=True, text=True, timeout=600)


def test_huge_weights_give_a_result_or_one_line_never_a_crash(tmp_path: Path) -> None:
    scene = corpus.images(tmp_path)["scene"]
    hostile = corpus.bundles(tmp_path, tmp_path / "pwned")
    # ±1e38 everywhere: the logits overflow to inf/NaN — the one-line ModelError, nothing written
    done = _segment(scene, hostile["weights +-1e38"], tmp_path / "pm.tif")
    assert done.returncode == 4, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "non-finite outputs" in done.stderr
    assert not (tmp_path / "pm.tif").exists()
    # A = -exp(A_log): ±inf/0 decay rates; exp(Δ·A) stays within [0, 1], the scan stays finite
    done = _segment(scene, hostile["A_log x1e38"], tmp_path / "alog.tif")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "alog.tif").exists()
