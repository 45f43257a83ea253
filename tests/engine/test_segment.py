"""segment(): seam-free blending, masks, resume after SIGKILL, refusals and bounded memory."""

from __future__ import annotations

import errno
import importlib
import signal
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import rasterio
import zarr
from rasterio.transform import Affine
from skimage.filters import gaussian

from gigavim.engine import Progress, segment
from gigavim.engine import merger as merger_module
from gigavim.engine.workdir import WorkDir
from gigavim.errors import ModelError, OutputError, UsageError
from gigavim.io.masks import foreground_mask

from .fakes import ArraySource, FunctionSource, blobs, tiny_bundle

TESTS = Path(__file__).resolve().parents[1]


def _texture(h: int = 300, w: int = 360, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = gaussian(rng.random((h, w, 3)), sigma=3, channel_axis=-1)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).astype(np.uint8)


def _ome(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict]:
    root = zarr.open_group(str(path), mode="r")
    probs = root["probabilities/0"][:] if "probabilities" in root else None
    return root["labels/segmentation/0"][:], probs, dict(root.attrs["gigavim"])


def _run(tmp_path: Path, name: str, src, **kw) -> tuple[np.ndarray, np.ndarray | None, dict]:
    out = tmp_path / f"{name}.zarr"
    kw.setdefault("model", tiny_bundle())
    segment(src, [out], **kw)
    return _ome(out)


# -- seams ------------------------------------------------------------------------------------
def test_tiled_run_equals_a_single_pass(tmp_path: Path) -> None:
    """With a 5×5 receptive field, blended tiles must reproduce the whole-image prediction.

    (A Vim model sees the whole tile, so its tiled and single-pass outputs differ by design; a
    local conv net makes the equality exact up to the tiny blend weight at tile edges.)
    """
    src = ArraySource([_texture()], kind="image", mpp=None)
    whole_labels, whole, _ = _run(tmp_path, "whole", src, level=0, tile=512, overlap=0, probabilities=True)
    tiled_labels, tiled, _ = _run(tmp_path, "tiled", src, level=0, tile=96, overlap=24, probabilities=True)
    assert whole is not None and tiled is not None
    diff = np.abs(whole.astype(int) - tiled.astype(int))
    assert diff.max() <= 3  # of 255: edge pixels weigh < 1 % against the neighbouring tile
    confident = np.abs(whole[1].astype(int) - 128) > 4
    assert 0.1 < whole_labels.mean() < 0.9  # the test image has both classes
    np.testing.assert_array_equal(whole_labels[confident], tiled_labels[confident])
    # Control: without overlap the same tiles leave seams the check above would catch.
    _, seamy, _ = _run(tmp_path, "seamy", src, level=0, tile=96, overlap=0, probabilities=True)
    assert np.abs(whole.astype(int) - seamy.astype(int)).max() > 10


# -- masks ------------------------------------------------------------------------------------
def test_glass_tiles_are_skipped_and_labelled_background(tmp_path: Path) -> None:
    def one_blob(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        img = blobs(yy, xx)
        img[(yy >= 300) | (xx >= 300)] = 245  # only the top-left disc is tissue
        return img

    src = FunctionSource(900, 1200, one_blob, mpp=0.5)
    out = tmp_path / "slide.zarr"
    events: list[Progress] = []
    result = segment(src, [out], model=tiny_bundle(), level=0, tile=128, overlap=32, probabilities=True,
                     progress=events.append)
    labels, probs, attrs = _ome(out)
    assert events[0].tiles_done == 0 and events[-1].tiles_done == events[-1].tiles_total
    assert all(e.tiles_total == result.tiles_foreground for e in events)
    assert [e.tiles_done for e in events] == sorted(e.tiles_done for e in events)
    assert result.tiles_foreground < result.tiles_total / 3
    assert result.tiles_computed == result.tiles_foreground
    assert (labels[500:, :] == 0).all() and (labels[:, 600:] == 0).all()
    assert probs is not None and (probs[0, 500:, :] == 255).all() and (probs[1, 500:, :] == 0).all()
    assert labels[:300, :300].any()  # the model did run on the tissue
    assert attrs["nodata_label"] is None and attrs["mpp"] == pytest.approx(0.5)
    assert not out.with_name(out.name + ".gigavim-work").exists()  # work dir removed on success


def test_raster_nodata_becomes_the_nodata_label_and_georeference_is_kept(real_data, tmp_path: Path) -> None:
    path = real_data / "geo" / "RGB.byte.tif"
    out, half = tmp_path / "labels.tif", tmp_path / "half.tif"
    segment(path, [out], model=tiny_bundle(tile=256, overlap=32))
    coarse = segment(path, [half], model=tiny_bundle(tile=256, overlap=32), gsd=600.0)
    with rasterio.open(path) as src, rasterio.open(out) as dst, rasterio.open(half) as dst2:
        valid = src.dataset_mask() > 0
        labels = dst.read(1)
        assert dst.crs == src.crs and dst.transform == src.transform and labels.shape == valid.shape
        assert (labels[~valid] == 255).all()
        assert set(np.unique(labels[valid])) <= {0, 1}
        assert dst2.crs == src.crs and dst2.shape == (359, 396)
        assert coarse.gsd_m == pytest.approx(600.0) and coarse.downsample == pytest.approx(2, rel=1e-3)
        assert dst2.transform.almost_equals(src.transform * Affine.scale(coarse.downsample), precision=1e-9)



def test_a_raster_overview_level_keeps_gdals_own_georeference(tmp_path: Path) -> None:
    """Odd sizes give an overview different x and y factors (791/99 vs 718/90); the output must
    carry the overview's own transform, not one scaled by their mean."""
    from gigavim.io.synthetic import write_geotiff

    rng = np.random.default_rng(0)
    path = write_geotiff(tmp_path / "odd.tif", rng.integers(1, 255, (718, 791, 3), dtype=np.uint8),
                         overviews=[2, 8], tile=256)
    out = tmp_path / "labels.tif"
    segment(path, [out], model=tiny_bundle(tile=64, overlap=0), level=2)
    with rasterio.open(path, overview_level=1) as overview, rasterio.open(out) as dst:
        assert dst.shape == overview.shape
        assert dst.transform.almost_equals(overview.transform, precision=1e-9)


# -- refusals ---------------------------------------------------------------------------------
def test_existing_output_is_not_overwritten_without_overwrite(tmp_path: Path) -> None:
    src = ArraySource([_texture(64, 64)], kind="image", mpp=None)
    out = tmp_path / "out.tif"
    out.write_bytes(b"precious")
    with pytest.raises(OutputError, match="already exists"):
        segment(src, [out], model=tiny_bundle())
    assert out.read_bytes() == b"precious"
    segment(src, [out], model=tiny_bundle(), overwrite=True)
    with rasterio.open(out) as ds:
        assert ds.shape == (64, 64)


def test_a_band_count_the_model_cannot_use_is_refused_before_any_read(tmp_path: Path) -> None:
    two_bands = np.zeros((64, 64, 2), dtype=np.uint8)
    src = ArraySource([two_bands], kind="raster", mpp=None)
    with pytest.raises(ModelError, match=r"array-source\.tif: has 2 bands \(band1, band2\) but model "
                       r"'tiny-conv' wants 3 bands \(red, green, blue\); give an image that has"):
        segment(src, [tmp_path / "a.zarr"], model=tiny_bundle())
    assert src.reads == []
    assert not list(tmp_path.iterdir())  # no work dir left behind


def test_the_input_is_never_overwritten_by_its_own_output(tmp_path: Path) -> None:
    from gigavim.io.synthetic import write_geotiff

    path = write_geotiff(tmp_path / "scene.tif", _texture(64, 64))
    before = path.read_bytes()
    with pytest.raises(OutputError, match=r"scene\.tif: .*is the input"):
        segment(path, [tmp_path / "scene.zarr", path], model=tiny_bundle(), overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


@pytest.mark.parametrize("tile", [0, 8])
def test_a_tile_too_small_is_refused_not_replaced_by_the_default(tmp_path: Path, tile: int) -> None:
    src = ArraySource([_texture(64, 64)], kind="image", mpp=None)
    with pytest.raises(UsageError, match=f"--tile must be at least 16 pixels, got {tile}"):
        segment(src, [tmp_path / "a.zarr"], model=tiny_bundle(), tile=tile, overlap=0)


@pytest.mark.parametrize("device", ["mps", "meta", "nonsense"])
def test_a_device_other_than_cpu_or_cuda_is_a_usage_error(tmp_path: Path, device: str) -> None:
    src = ArraySource([_texture(64, 64)], kind="image", mpp=None)
    with pytest.raises(UsageError, match=device):
        segment(src, [tmp_path / "a.zarr"], model=tiny_bundle(), device=device)
    assert src.reads == []


def test_untrained_model_is_refused_unless_allowed(tmp_path: Path) -> None:
    src = ArraySource([_texture(64, 64)], kind="image", mpp=None)
    with pytest.raises(ModelError, match=r"untrained.*--allow-untrained"):
        segment(src, [tmp_path / "a.zarr"], model=tiny_bundle(trained=False))
    assert not (tmp_path / "a.zarr").exists()
    with pytest.warns(UserWarning, match="untrained"):
        result = segment(src, [tmp_path / "a.zarr"], model=tiny_bundle(trained=False), allow_untrained=True)
    assert result.trained is False
    assert _ome(tmp_path / "a.zarr")[2]["model"]["trained"] is False


@pytest.mark.parametrize("outputs, error, message", [
    (["missing-dir/out.zarr"], OutputError, "does not exist"),
    (["out.png"], OutputError, "unsupported output extension"),
    ([], UsageError, "at least one output"),
])
def test_bad_outputs_fail_before_any_work(
    tmp_path: Path, outputs: list[str], error: type, message: str
) -> None:
    src = ArraySource([_texture(64, 64)], kind="image", mpp=None)
    with pytest.raises(error, match=message):
        segment(src, [tmp_path / o for o in outputs], model=tiny_bundle())
    assert src.reads == []


def test_a_full_disk_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self, tile, data) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(WorkDir, "save_tile", full)
    src = ArraySource([_texture(64, 64)], kind="image", mpp=None)
    with pytest.raises(OutputError, match="no space left on the device") as err:
        segment(src, [tmp_path / "a.zarr"], model=tiny_bundle())
    assert "\n" not in str(err.value)


def test_a_real_full_disk_in_tile_mode_is_one_clear_error(tmp_path: Path) -> None:
    """On a real 1 MB disk the tile cache fills up: one OutputError line, not a traceback (np.save
    on a file reported the short write as an OSError without an errno)."""
    from tmpfs_disk import tmpfs

    with tmpfs(tmp_path / "tiny", "size=1m", "cannot mount a small tmpfs here (needs root)") as disk:
        with pytest.raises(OutputError, match="no space left on the device") as err:
            segment(FunctionSource(600, 700, blobs), [disk / "out.zarr"], model=tiny_bundle(),
                    level=0, tile=256, overlap=32)
    assert "\n" not in str(err.value)


# -- resume -----------------------------------------------------------------------------------
_KILLED_RUN = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from engine.fakes import FunctionSource, blobs, tiny_bundle
from gigavim.engine import Progress, segment
from gigavim.engine.workdir import WorkDir

def die(p):
    if {where!r} == "between batches" and p.tiles_done >= 9:
        os.kill(os.getpid(), signal.SIGKILL)

journal, calls = WorkDir.journal, []
def die_before_journalling(self, entries):
    calls.append(entries)
    if {where!r} == "blocks written, not journalled" and len(calls) >= 5:
        os.kill(os.getpid(), signal.SIGKILL)
    journal(self, entries)

WorkDir.journal = die_before_journalling
segment(FunctionSource(500, 600, blobs), [{out!r}], model=tiny_bundle(), level=0, tile=128,
        overlap=32, batch_size=2, probabilities=True, progress=die)
"""


@pytest.mark.parametrize("where", ["between batches", "blocks written, not journalled"])
def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path: Path, where: str) -> None:
    out = tmp_path / "resumed.zarr"
    script = textwrap.dedent(_KILLED_RUN).format(tests=str(TESTS), where=where, out=str(out))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    work = WorkDir(out.with_name(out.name + ".gigavim-work"))
    assert not out.exists() and work.settings_file.exists() and work.finalized_blocks()

    src = FunctionSource(500, 600, blobs)
    kwargs = dict(model=tiny_bundle(), level=0, tile=128, overlap=32, batch_size=2, probabilities=True)
    with pytest.raises(UsageError, match="--resume"):
        segment(src, [out], **kwargs)
    with pytest.raises(UsageError, match="settings differ"):
        segment(src, [out], resume=True, **{**kwargs, "tile": 160})
    resumed = segment(src, [out], resume=True, **kwargs)
    assert resumed.resumed and resumed.tiles_resumed >= 4
    assert resumed.tiles_computed + resumed.tiles_resumed == resumed.tiles_foreground
    fresh = segment(src, [tmp_path / "fresh.zarr"], **kwargs)
    assert fresh.tiles_computed == fresh.tiles_foreground > resumed.tiles_computed

    labels_a, probs_a, _ = _ome(out)
    labels_b, probs_b, _ = _ome(tmp_path / "fresh.zarr")
    np.testing.assert_array_equal(labels_a, labels_b)
    np.testing.assert_array_equal(probs_a, probs_b)
    assert resumed.foreground_fraction == fresh.foreground_fraction


def test_a_run_stopped_before_its_arrays_existed_resumes(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C between writing the work dir's settings and creating its arrays: --resume starts
    the arrays afresh (nothing was merged yet) instead of a FileNotFoundError traceback."""
    kwargs = dict(model=tiny_bundle(), level=0, tile=128, overlap=32, probabilities=True)
    create = WorkDir.label_arrays

    def interrupted(self, *args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(WorkDir, "label_arrays", interrupted)
    with pytest.raises(KeyboardInterrupt):
        segment(FunctionSource(300, 260, blobs), [tmp_path / "a.zarr"], **kwargs)
    monkeypatch.setattr(WorkDir, "label_arrays", create)
    resumed = segment(FunctionSource(300, 260, blobs), [tmp_path / "a.zarr"], resume=True, **kwargs)
    segment(FunctionSource(300, 260, blobs), [tmp_path / "b.zarr"], **kwargs)
    assert resumed.resumed and resumed.tiles_computed == resumed.tiles_foreground
    for got, want in zip(_ome(tmp_path / "a.zarr")[:2], _ome(tmp_path / "b.zarr")[:2], strict=True):
        np.testing.assert_array_equal(got, want)


# -- memory ---------------------------------------------------------------------------------
def _streaming_bytes(tmp_path: Path, side: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """Peak bytes numpy/Python allocated after the (fixed-size) tissue mask, writers included."""
    module = importlib.import_module("gigavim.engine.segment")
    baseline: list[int] = []

    def mask_then_reset(src):
        mask = foreground_mask(src)
        baseline.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.reset_peak()
        return mask

    monkeypatch.setattr(module, "foreground_mask", mask_then_reset)
    # streaming only: no copy of the (small) label map in memory, which is bounded on its own
    monkeypatch.setattr(merger_module, "LABELS_IN_MEMORY_BYTES", 0)
    tracemalloc.start()
    try:
        segment(FunctionSource(side, side, blobs), [tmp_path / f"m{side}.tif"], model=tiny_bundle(),
                level=0, tile=256, overlap=32, batch_size=2)
        return tracemalloc.get_traced_memory()[1] - baseline[0]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 6× larger image needs no more memory: tiles stream through, the map lives in zarr."""
    small = _streaming_bytes(tmp_path, 1024, monkeypatch)
    large = _streaming_bytes(tmp_path, 2560, monkeypatch)
    full_probabilities = 2 * 4 * 2560 * 2560  # one full-size float32 map of 2 classes
    assert large < 1.5 * small + 2**20, (small, large)
    assert large < full_probabilities / 2, (small, large)  # tiles × batch, not H × W


def test_a_two_band_raster_is_refused_up_front_naming_file_bands_and_model(tmp_path: Path) -> None:
    """The bundled raster model on a 2-band GeoTIFF: one line, nothing written, no work dir."""
    scene = tmp_path / "scene.tif"
    profile = {"driver": "GTiff", "width": 48, "height": 40, "count": 2, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": Affine(10, 0, 500_000, 0, -10, 5_000_000)}
    with rasterio.open(scene, "w", **profile) as ds:
        ds.write(np.full((2, 40, 48), 7, dtype=np.uint8))
    outputs = [tmp_path / "scene.zarr", tmp_path / "scene_labels.tif", tmp_path / "scene.geojson"]
    with pytest.raises(ModelError) as err:
        segment(scene, outputs)
    assert str(err.value).startswith(f"{scene}: has 2 bands (gray, undefined) but model 'land-water' "
                                     "wants 3 bands (red, green, blue)")
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]  # no output, no work dir


def test_non_square_raster_pixels_reach_the_ome_zarr_scales(tmp_path: Path) -> None:
    """A 2 m × 3 m (x × y) GeoTIFF: the OME-Zarr scales are the real y and x metres at every
    level (odd map size included), and the COG keeps the input's grid."""
    transform = Affine(2, 0, 500_000, 0, -3, 5_000_000)
    scene = tmp_path / "scene.tif"
    with rasterio.open(scene, "w", driver="GTiff", width=517, height=301, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=transform) as ds:
        ds.write(_texture(301, 517).transpose(2, 0, 1))
    result = segment(scene, [tmp_path / "out.zarr", tmp_path / "out.tif"], model=tiny_bundle())
    assert result.shape == (301, 517)
    group = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["labels/segmentation"]
    datasets = group.attrs["multiscales"][0]["datasets"]
    assert len(datasets) == 3
    for k, d in enumerate(datasets):
        assert d["coordinateTransformations"][0]["scale"] == [3.0 * 2**k, 2.0 * 2**k]
        assert group[d["path"]].shape == (-(-301 // 2**k), -(-517 // 2**k))
    with rasterio.open(tmp_path / "out.tif") as ds:
        assert ds.transform.almost_equals(transform) and ds.shape == (301, 517)


def test_the_label_map_kept_in_memory_is_bounded_and_equals_the_work_dirs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A map within the budget is handed to the writers from memory, identical to its blocks on
    disk (the GeoTIFF written from it equals the work dir's labels); above the budget, none."""
    seen: list[object] = []
    module = importlib.import_module("gigavim.engine.segment")
    original = module._Run.label_map

    def label_map(self, *args, **kwargs):  # the LabelMap the writers get, and the disk's labels
        result = original(self, *args, **kwargs)
        seen.append((type(result.labels), np.asarray(self.labels[...]).copy()))
        return result

    monkeypatch.setattr(module._Run, "label_map", label_map)
    for budget, kind in ((1 << 26, np.ndarray), (0, zarr.Array)):
        monkeypatch.setattr(merger_module, "LABELS_IN_MEMORY_BYTES", budget)
        out = tmp_path / f"m{budget}.tif"
        segment(FunctionSource(700, 600, blobs), [out], model=tiny_bundle(), level=0, tile=256, overlap=32)
        labels_type, on_disk = seen.pop()
        assert issubclass(labels_type, kind)
        with rasterio.open(out) as ds:
            np.testing.assert_array_equal(ds.read(1), on_disk)
