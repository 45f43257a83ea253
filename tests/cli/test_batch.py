"""``gigavim batch`` as a user runs it: a subprocess, a folder with a good and a bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

import gigavim
from gigavim.data import sample_slide
from gigavim.io.synthetic import write_synthetic_slide


def _gigavim(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gigavim", "batch", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, real_data: Path) -> Path:
    folder = tmp_path_factory.mktemp("cli-batch")
    write_synthetic_slide(folder / "good.svs", 1500, 1500, mpp=0.5)
    shutil.copy(real_data / "bad_input" / "broken.svs", folder / "broken.svs")
    return folder


def test_a_failed_input_gives_exit_1_one_error_line_and_the_manifest_as_json(folder: Path, tmp_path: Path):
    out = tmp_path / "out"
    run = _gigavim(folder, "-o", out, "--workers", "1", "--json")
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("gigavim: error:")]
    assert errors == [f"gigavim: error: {folder / 'broken.svs'}: not a slide OpenSlide can read "
                      "(unrecognised or damaged contents)"]
    manifest = json.loads(run.stdout)
    assert manifest == json.loads((out / "gigavim-batch.json").read_text())
    assert manifest["counts"] == {"ok": 1, "failed": 1, "skipped": 0, "pending": 0}
    store = zarr.open_group(out / "good.ome.zarr", mode="r")
    assert "segmentation" in store["labels"]  # the default format: OME-Zarr with a label image

    rerun = _gigavim(folder / "good.svs", "-o", out)  # all done: skipped, success, no cluster needed
    assert rerun.returncode == 0, rerun.stderr
    assert "0 ok, 1 skipped, 0 failed" in rerun.stdout


def test_context_image_is_recorded_and_labels_equal_a_direct_whole_image_run(tmp_path: Path):
    """The bundled sample with ``tissue``: whole-image labels differ from tile mode's (1.7 %)."""
    out = tmp_path / "out"
    run = _gigavim(sample_slide(), "-o", out, "--context", "image", "--workers", "1", "--json")
    assert run.returncode == 0, run.stderr
    manifest = json.loads(run.stdout)
    assert manifest["settings"]["segment"]["context"] == "image"
    (record,) = manifest["inputs"]
    assert record["status"] == "ok", record["error"]
    batch = zarr.open_group(record["outputs"][0], mode="r")
    assert batch.attrs["gigavim"]["settings"]["context"] == "image"  # what the worker really ran

    direct = gigavim.segment(sample_slide(), [tmp_path / "direct.ome.zarr"], context="image")
    expected = zarr.open_group(direct.outputs[0], mode="r")["labels/segmentation/0"][:]
    np.testing.assert_array_equal(batch["labels/segmentation/0"][:], expected)
    assert record["summary"]["foreground_fraction"] == pytest.approx(direct.foreground_fraction)


@pytest.mark.parametrize("args, message", [
    (["--format", "png"], "unknown output format 'png'"),
    (["--address", "tcp://127.0.0.1:9"], "tcp://127.0.0.1:9: cannot connect to a dask scheduler"),
    (["--context", "whole"], "'whole' is not one of 'tile', 'image'"),
])
def test_bad_batch_options_are_one_line_without_traceback(folder: Path, tmp_path: Path, args, message):
    run = _gigavim(folder, "-o", tmp_path / "out", *args)
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1].startswith("gigavim: error:")
    assert message in run.stderr and "Traceback" not in run.stderr


def test_a_missing_input_is_named(tmp_path: Path):
    run = _gigavim(tmp_path / "nope.svs", "-o", tmp_path / "out")
    assert run.returncode != 0
    assert run.stderr.strip() == f"gigavim: error: {tmp_path / 'nope.svs'}: no such file or directory"


def test_summary_table_shows_file_names_and_errors_verbatim() -> None:
    from gigavim.pipelines import BatchReport, InputRecord
    from rich.console import Console

    from gigavim.cli.batch import summary_table

    failed = InputRecord(input="/data/scan [red].svs", outputs=[], status="failed",
                         error="scan [red].svs: cannot read [bold]pixels")
    report = BatchReport(out_dir=Path("/out"), records=[failed], settings={}, model=None)
    console = Console(width=200, record=True, color_system=None)
    console.print(summary_table(report))
    text = console.export_text()
    assert "scan [red].svs" in text
    assert "cannot read [bold]pixels" in text
