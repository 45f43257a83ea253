"""run_batch on real dask clusters: isolation of bad inputs, equal labels, manifest, reruns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from gigavim.pipelines import MANIFEST_NAME, run_batch

import gigavim
from gigavim.errors import ModelError, UsageError
from gigavim.models.bundle import ModelBundle, ModelMeta
from gigavim.models.factory import build_segmenter

GOOD = ("slide.svs", "world.rgb.tif")
BAD = ("broken.svs", "corrupt.tif")


def _labels(path: str | Path) -> np.ndarray:
    return tifffile.imread(path)


@pytest.fixture(scope="module")
def first_batch(mixed_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    """One batch of the mixed folder on a LocalCluster that run_batch starts itself (2 workers)."""
    out = tmp_path_factory.mktemp("batch-out")
    seen = []
    report = run_batch(mixed_folder, out, formats=("tif",), n_workers=2,
                       progress=lambda record, done, total: seen.append((record.input, done, total)))
    return out, report, seen


def test_good_inputs_succeed_and_bad_ones_fail_alone_with_one_line(first_batch, mixed_folder: Path):
    _, report, seen = first_batch
    by_name = {Path(r.input).name: r for r in report.records}
    assert sorted(by_name) == sorted(GOOD + BAD)  # README.txt is not an image: not picked up
    for name in GOOD:
        record = by_name[name]
        assert record.status == "ok", record.error
        assert [Path(o).name for o in record.outputs] == [Path(name).stem + ".tif"]
        assert Path(record.outputs[0]).is_file()
    for name in BAD:
        record = by_name[name]
        assert record.status == "failed" and record.error_type == "InputError"
        assert str(mixed_folder / name) in record.error and "\n" not in record.error
        assert not Path(record.outputs[0]).exists()
    assert report.exit_code == 1
    assert sorted(done for _, done, _ in seen) == [1, 2, 3, 4] and {t for *_, t in seen} == {4}


def test_batch_labels_equal_a_direct_segment_run(first_batch, mixed_folder: Path, tmp_path: Path):
    _, report, _ = first_batch
    for record in report.records:
        if record.status != "ok":
            continue
        direct = gigavim.segment(record.input, [tmp_path / Path(record.outputs[0]).name])
        np.testing.assert_array_equal(_labels(record.outputs[0]), _labels(direct.outputs[0]))
        assert record.summary["model"] == direct.model
        assert record.summary["shape"] == list(direct.shape)


def test_manifest_records_every_input_settings_and_version(first_batch):
    out, report, _ = first_batch
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest == json.loads(json.dumps(report.to_dict()))
    assert manifest["gigavim_version"] == gigavim.__version__
    assert manifest["counts"] == {"ok": 2, "failed": 2, "skipped": 0, "pending": 0}
    assert manifest["settings"]["formats"] == ["tif"]
    assert manifest["settings"]["cluster"]["n_workers"] == 2
    assert manifest["finished"] is not None
    for entry in manifest["inputs"]:
        assert entry["worker"].startswith("tcp://") and entry["seconds"] >= 0
        assert entry["started"] <= entry["finished"]
        if entry["status"] == "ok":
            assert entry["summary"]["outputs"] == entry["outputs"] and entry["error"] is None
    assert not list(out.glob(".*tmp*"))  # no half-written manifest left behind


def test_rerun_on_a_given_scheduler_skips_finished_inputs_and_retries_failed_ones(
        first_batch, mixed_folder: Path, dask_address: str, dask_workers: set[str]):
    out, first, _ = first_batch
    outputs = {r.input: r.outputs[0] for r in first.records if r.status == "ok"}
    mtimes = {o: Path(o).stat().st_mtime_ns for o in outputs.values()}
    again = run_batch(mixed_folder, out, formats=("tif",), address=dask_address)
    by_input = {r.input: r for r in again.records}
    for src, output in outputs.items():
        assert by_input[src].status == "skipped"
        assert by_input[src].summary == next(r.summary for r in first.records if r.input == src)
        assert Path(output).stat().st_mtime_ns == mtimes[output]  # not rewritten
    failed = [r for r in again.records if r.status == "failed"]
    assert sorted(Path(r.input).name for r in failed) == sorted(BAD)
    assert {r.worker for r in failed} <= dask_workers  # ran on that cluster
    assert again.settings["cluster"]["address"] == dask_address
    assert again.exit_code == 1


def test_a_bug_is_recorded_with_its_type_and_the_batch_goes_on(mixed_folder: Path, tmp_path: Path,
                                                               dask_address: str):
    slide = tmp_path / "in" / "slide.svs"
    slide.parent.mkdir()
    shutil.copy(mixed_folder / "slide.svs", slide)
    # a string batch size is not a user error the engine checks: it raises TypeError in the task
    report = run_batch([slide], tmp_path / "out", address=dask_address,
                       segment_kwargs={"batch_size": "4"})
    (record,) = report.records
    assert record.status == "failed" and record.error_type == "TypeError"
    assert record.error.startswith(f"{slide}: TypeError: ") and "\n" not in record.error
    assert report.exit_code == 1


def test_batch_options_are_checked_before_any_work(tmp_path: Path, mixed_folder: Path):
    with pytest.raises(UsageError, match="may not set outputs"):
        run_batch(mixed_folder, tmp_path, segment_kwargs={"outputs": ["x.tif"]})
    with pytest.raises(UsageError, match="unknown segment option"):
        run_batch(mixed_folder, tmp_path, segment_kwargs={"tile_size": 3})
    with pytest.raises(UsageError, match="unknown output format"):
        run_batch(mixed_folder, tmp_path, formats=("png",))
    with pytest.raises(ModelError, match="unknown model 'no-such-model'"):
        run_batch(mixed_folder, tmp_path, model="no-such-model")
    fpn = tmp_path / "fpn.pt"  # a Vim with the FPN head mixes neighbouring tokens: cannot stream
    arch = {"backbone": {"embed_dim": 16, "depth": 1, "patch_size": 4, "stride": 4, "img_size": 32,
                         "cls_token": "none", "pos_embed_mode": "sincos"},
            "head": {"kind": "fpn", "channels": 16}, "num_classes": 2}
    meta = ModelMeta(name="fpn-model", classes=["background", "object"], colors=[(0, 0, 0), (255, 0, 0)],
                     arch=arch, trained=True, tile=64, overlap=0)
    ModelBundle(build_segmenter(**arch), meta).save(fpn)
    with pytest.raises(ModelError, match="'fpn-model' cannot run with whole-image context"):
        run_batch(mixed_folder, tmp_path, model=fpn, segment_kwargs={"context": "image"})
    with pytest.raises(UsageError, match="--tta takes 1"):
        run_batch(mixed_folder, tmp_path, model=fpn, segment_kwargs={"tta": 3})
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_a_worker_killed_mid_input_is_replaced_and_the_input_resumes_elsewhere(
        mixed_folder: Path, tmp_path: Path, dask_address: str):
    """SIGKILL the worker once an input has finished tiles on disk: the batch still succeeds.

    The input is cut into ~200 small nuclei tiles (seconds of work), and the kill waits for the
    first finished tile, so it always lands mid-input, however slow or loaded the machine is.
    """
    import os
    import signal
    import threading
    import time

    from distributed import Client

    slide = tmp_path / "in" / "slide.svs"
    slide.parent.mkdir()
    shutil.copy(mixed_folder / "slide.svs", slide)
    settings = {"tile": 128, "overlap": 16, "batch_size": 1}
    out = tmp_path / "out"
    work = out / "slide.tif.gigavim-work"
    done: dict = {}
    batch = threading.Thread(target=lambda: done.update(report=run_batch(
        [slide], out, formats=("tif",), model="nuclei-he-20x", address=dask_address,
        segment_kwargs=settings)))
    with Client(dask_address) as client:
        batch.start()
        deadline = time.monotonic() + 120
        busy: list[str] = []
        while not busy or not any((work / "tiles").glob("*.npy")):  # a finished foreground tile
            assert time.monotonic() < deadline and batch.is_alive(), "the input never started"
            busy = [w for w, keys in client.processing().items() if keys]
            time.sleep(0.01)
        pid = client.run(os.getpid, workers=busy)[busy[0]]
        os.kill(pid, signal.SIGKILL)
        batch.join(timeout=240)
    assert not batch.is_alive(), "the batch did not finish after the worker was killed"
    (record,) = done["report"].records
    assert record.status == "ok", record.error
    assert record.worker != busy[0], "the input finished on the killed worker: the kill came too late"
    assert record.summary["resumed"] is True  # the new attempt continued the killed one's work dir
    assert 0 < record.summary["tiles_resumed"] < record.summary["tiles_foreground"]
    direct = gigavim.segment(slide, tmp_path / "direct.tif", model="nuclei-he-20x", **settings)
    assert direct.tiles_foreground == record.summary["tiles_foreground"]
    np.testing.assert_array_equal(_labels(record.outputs[0]), _labels(tmp_path / "direct.tif"))
