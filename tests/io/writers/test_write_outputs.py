"""write_outputs: format by extension, checks before work, all-or-nothing atomic outputs."""

from __future__ import annotations

import errno
import json
import os
import subprocess

import numpy as np
import pytest
import zarr
from tmpfs_disk import tmpfs
from writers_synthetic import GuardedArray, pattern

from gigavim.errors import OutputError
from gigavim.io.writers import check_outputs, output_format, write_outputs
from gigavim.io.writers import geojson as geojson_writer
from gigavim.io.writers import geotiff as geotiff_writer
from gigavim.io.writers import ome_zarr as ome_zarr_writer


def listing(directory):
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("engine_labels"))


def snapshot(outputs):
    """Bytes of each file output, the file list of each directory output."""
    return {
        p.name: sorted(str(q.relative_to(p)) for q in p.rglob("*")) if p.is_dir() else p.read_bytes()
        for p in outputs
    }


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.zarr", "ome-zarr"), ("a.ome.zarr", "ome-zarr"), ("a.TIF", "geotiff"), ("a.tiff", "geotiff"),
     ("a.geojson", "geojson"), ("a.json", "geojson")],
)
def test_format_follows_the_extension(tmp_path, name, fmt):
    assert output_format(tmp_path / name) == fmt


def test_unknown_extension_is_refused_before_anything_is_written(tmp_path, slide_map):
    good, bad = tmp_path / "ok.tif", tmp_path / "labels.png"
    with pytest.raises(OutputError, match=r"labels\.png: unsupported output extension .*ome\.zarr.*geojson"):
        write_outputs(slide_map(), [good, bad])
    assert not good.exists() and not bad.exists()


def test_one_run_writes_every_format(tmp_path, slide_map):
    outs = [tmp_path / "s.ome.zarr", tmp_path / "s.tif", tmp_path / "s.geojson"]
    assert write_outputs(slide_map(), outs) == outs
    assert listing(tmp_path) == sorted(["s.ome.zarr", "s.tif", "s.geojson"])


def test_existing_output_is_kept_without_overwrite(tmp_path, slide_map):
    existing = tmp_path / "s.geojson"
    existing.write_text("precious")
    other = tmp_path / "s.tif"
    with pytest.raises(OutputError, match=r"s\.geojson: output already exists .*--overwrite"):
        write_outputs(slide_map(), [other, existing])
    assert existing.read_text() == "precious"
    assert not other.exists()  # checked up front: nothing was written


def test_overwrite_replaces_files_and_directories(tmp_path, slide_map):
    outs = [tmp_path / "s.zarr", tmp_path / "s.geojson"]
    write_outputs(slide_map(labels=np.zeros((300, 200), np.uint8)), outs)
    labels = pattern()
    write_outputs(slide_map(labels=labels), outs, overwrite=True)
    np.testing.assert_array_equal(zarr.open_array(str(outs[0] / "labels" / "segmentation" / "0"))[:], labels)
    assert json.loads(outs[1].read_text())["features"]
    assert listing(tmp_path) == sorted(["s.zarr", "s.geojson"])  # no leftovers


def test_missing_output_directory_is_reported(tmp_path, slide_map):
    with pytest.raises(OutputError, match=r"does not exist"):
        write_outputs(slide_map(), [tmp_path / "nowhere" / "s.tif"])


@pytest.fixture
def unwritable_dir(tmp_path):
    """A directory the user cannot write into: chmod for users, a read-only tmpfs for root."""
    locked = tmp_path / "locked"
    if os.geteuid() != 0:
        locked.mkdir()
        locked.chmod(0o500)
        yield locked
        locked.chmod(0o700)
        return
    with tmpfs(locked, "ro,size=1m", "root, and no read-only tmpfs can be mounted: nothing unwritable"):
        yield locked


def test_unwritable_output_directory_is_reported(unwritable_dir, slide_map):
    with pytest.raises(OutputError, match=r"locked/s\.tif: output directory .* is not writable"):
        write_outputs(slide_map(), [unwritable_dir / "s.tif"])


def test_same_output_twice_is_refused(tmp_path, slide_map):
    with pytest.raises(OutputError, match=r"given twice"):
        write_outputs(slide_map(), [tmp_path / "s.tif", tmp_path / "." / "s.tif"])


def _disk_full_after(count: int, original):
    """Wrap a function so that its ``count``-th call raises ENOSPC, like a disk filling up."""
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= count:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(*args, **kwargs)

    return wrapped


@pytest.mark.parametrize("failing", ["geojson", "geotiff", "ome_zarr"])
def test_failure_midway_keeps_old_outputs_and_no_temporaries(tmp_path, slide_map, monkeypatch, failing):
    outs = [tmp_path / "s.zarr", tmp_path / "s.tif", tmp_path / "s.geojson"]
    write_outputs(slide_map(labels=np.ones((300, 200), np.uint8)), outs)
    before = snapshot(outs)
    if failing == "geojson":  # fails after a few features were written
        monkeypatch.setattr(geojson_writer, "_feature", _disk_full_after(3, geojson_writer._feature))
    elif failing == "geotiff":  # fails while GDAL builds the COG
        monkeypatch.setattr(geotiff_writer.rasterio.shutil, "copy", _disk_full_after(1, None))
    else:  # fails after the labels pyramid, while writing the parent image
        monkeypatch.setattr(ome_zarr_writer, "_write_root_image", _disk_full_after(1, None))

    with pytest.raises(OutputError, match=r"no space left on the device") as err:
        write_outputs(slide_map(), outs, overwrite=True)
    assert "\n" not in str(err.value)
    assert snapshot(outs) == before
    assert listing(tmp_path) == sorted(["s.zarr", "s.tif", "s.geojson"])


def test_failure_of_a_new_output_leaves_nothing(tmp_path, slide_map, monkeypatch):
    monkeypatch.setattr(geojson_writer, "_feature", _disk_full_after(2, geojson_writer._feature))
    with pytest.raises(OutputError):
        write_outputs(slide_map(), [tmp_path / "s.tif", tmp_path / "s.geojson"])
    assert listing(tmp_path) == []  # the finished .tif was not moved in either


@pytest.mark.parametrize("name", ["s.zarr", "s.tif", "s.geojson"])
def test_writers_read_the_map_piece_by_piece(tmp_path, slide_map, monkeypatch, name):
    monkeypatch.setattr(ome_zarr_writer, "CHUNK", 256)
    monkeypatch.setattr(ome_zarr_writer, "IN_MEMORY_BYTES", 0)  # as for a map over the budget
    monkeypatch.setattr(geotiff_writer, "WINDOW", 256)
    monkeypatch.setattr(geojson_writer, "BAND_PIXELS", 64 * 600)
    labels = pattern()  # 700 × 600
    write_outputs(slide_map(labels=GuardedArray(labels, limit=labels.size // 4)), [tmp_path / name])
    assert (tmp_path / name).exists()


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 2 MiB file system (tmpfs); skipped where mounting is not allowed (non-root CI)."""
    with tmpfs(tmp_path / "tiny_disk", "size=2m", "cannot mount a small tmpfs here (needs root)") as disk:
        yield disk


@pytest.mark.parametrize("name", ["s.zarr", "s.tif", "s.geojson"])
def test_really_full_disk_gives_one_line_and_leaves_nothing(tiny_disk, slide_map, name, capfd):
    side = 300 if name.endswith("geojson") else 1000  # 90 000 one-pixel regions are ~20 MB of JSON
    noise = np.random.default_rng(0).integers(0, 256, (side, side), dtype=np.uint8)  # incompressible
    classes, colors = [f"c{i}" for i in range(256)], [(i, i, i) for i in range(256)]
    label_map = slide_map(labels=noise, classes=classes, colors=colors)
    with pytest.raises(OutputError, match=r"no space left on the device"):
        write_outputs(label_map, [tiny_disk / name])
    assert list(tiny_disk.iterdir()) == []
    # libtiff's "_tiffWriteProc: No space left on device." and GDAL's lines stay off stderr
    assert capfd.readouterr().err == ""


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_leftovers_of_a_killed_run_are_cleaned_or_restored(tmp_path, slide_map):
    dead = _dead_pid()
    out = tmp_path / "s.zarr"
    # Killed mid-replacement: the old output was set aside, the new one never moved in.
    aside = tmp_path / f".s.zarr.gigavim-old-{dead}-0000abcd"
    aside.mkdir()
    (aside / "marker").write_text("previous result")
    unfinished = tmp_path / f".s.zarr.gigavim-tmp-{dead}-0000beef"
    unfinished.mkdir()
    live = tmp_path / f".s.zarr.gigavim-tmp-{os.getpid()}-0000cafe"  # a writer still running
    live.mkdir()

    with pytest.raises(OutputError, match="already exists"):  # the old output is back
        write_outputs(slide_map(), [out])
    assert (out / "marker").read_text() == "previous result"
    assert not unfinished.exists() and not aside.exists()
    assert live.exists()


def test_check_outputs_can_run_before_inference(tmp_path):
    (tmp_path / "old.tif").write_bytes(b"x")
    assert check_outputs([str(tmp_path / "a.zarr")]) == [tmp_path / "a.zarr"]
    with pytest.raises(OutputError, match="already exists"):
        check_outputs([tmp_path / "a.zarr", tmp_path / "old.tif"])
    assert check_outputs([tmp_path / "old.tif"], overwrite=True) == [tmp_path / "old.tif"]


def test_geotiff_scratch_of_a_killed_run_is_removed(tmp_path):
    scratch = tmp_path / f".s.tif.gigavim-tmp-{_dead_pid()}-0000aaaa.scratch.tif"
    scratch.write_bytes(b"half a tiff")
    check_outputs([tmp_path / "s.tif"])
    assert not scratch.exists()


def test_per_axis_level0_scale_reaches_every_format(tmp_path, slide_map):
    """A pyramid level read as-is whose size is no exact division of level 0 (boxes.tiff level 3:
    300×250 px → 37×31, i.e. 8.108 in x and 8.065 in y) keeps each axis's own factor: GeoJSON
    polygons end exactly on the slide's edges, OME-Zarr and TIFF pixel sizes differ per axis."""
    import json

    import rasterio
    import zarr
    from shapely.geometry import shape

    sy, sx = 250 / 31, 300 / 37
    mpp = 0.25 * (sy + sx) / 2  # what the engine records: level-0 µm/px × the mean factor
    label_map = slide_map(np.ones((31, 37), np.uint8), mpp=mpp, scale_to_level0=(sy, sx))
    out = [tmp_path / "m.geojson", tmp_path / "m.ome.zarr", tmp_path / "m.tif"]
    write_outputs(label_map, out)
    (feature,) = json.loads(out[0].read_text())["features"]
    assert shape(feature["geometry"]).bounds == pytest.approx((0, 0, 300, 250))
    root = zarr.open_group(str(out[1]), mode="r")
    scale = root.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale[-2:] == pytest.approx([0.25 * sy, 0.25 * sx])
    assert root.attrs["gigavim"]["scale_to_level0_yx"] == pytest.approx([sy, sx])
    with rasterio.open(out[2]) as tif:
        tags = tif.tags()
    assert float(tags["TIFFTAG_XRESOLUTION"]) == pytest.approx(1e4 / (0.25 * sx))
    assert float(tags["TIFFTAG_YRESOLUTION"]) == pytest.approx(1e4 / (0.25 * sy))


def test_preload_writers_imports_the_writers_of_the_outputs(monkeypatch):
    """``segment`` preloads the writers so dask/ome-zarr import while tiles are computed (a failed
    preload silently put ~1.5 s of imports back after the tiles)."""
    import sys

    from gigavim.io.writers import preload_writers

    for name in ("gigavim.io.writers.ome_zarr", "gigavim.io.writers.geotiff"):
        monkeypatch.delitem(sys.modules, name)  # restored (the same module objects) afterwards
    preload_writers(["out.ome.zarr", "out.tif"]).join()
    assert "gigavim.io.writers.ome_zarr" in sys.modules
    assert "gigavim.io.writers.geotiff" in sys.modules
