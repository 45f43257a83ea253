"""segment() with an instance model on a 20k × 20k pyramid: exact ids across tile and block
borders, QuPath detections, the CSV table, NGFF instance labels, atomic writes and resume."""

from __future__ import annotations

import csv
import errno
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import shapely
import zarr
from shapely.geometry import shape

from gigavim.cli.segment import summary_line
from gigavim.engine import segment
from gigavim.engine.instances import BLOCK_PX
from gigavim.errors import OutputError, UsageError
from gigavim.instances.postprocess import instances_from_probabilities
from gigavim.io import open_image
from gigavim.io.masks import foreground_mask
from gigavim.io.synthetic import write_synthetic_slide

from .fakes import FunctionSource, nuclei_bundle, nuclei_scene, tiny_bundle

TESTS = Path(__file__).resolve().parents[1]
SIDE = 20480  # level-0 pixels; the model works at 4 µm/px (8× level 0): a 2560² working grid
CENTRE = 8 * BLOCK_PX  # level 0: the working grid's first instance-block corner (1024, 1024)


@pytest.fixture(scope="module")
def slide_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One run over a mostly-glass slide whose tissue patch is centred on a block corner."""
    tmp = tmp_path_factory.mktemp("slide")
    scene = nuclei_scene((CENTRE, CENTRE), half=1600, scale=8)  # nuclei ≈ 9 working px in radius
    slide = write_synthetic_slide(tmp / "nuclei.svs", SIDE, SIDE, mpp=0.5, tile=1024,
                                  painter=lambda y0, x0, _: scene(y0, x0))
    outs = [tmp / "out.zarr", tmp / "out.geojson", tmp / "out.csv"]
    result = segment(slide, outs, model=nuclei_bundle(mpp=4.0, tile=128, overlap=16, max_size_um=400),
                     probabilities=True)
    return {"result": result, "zarr": outs[0], "geojson": outs[1], "csv": outs[2]}


def _pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    both = (a > 0) | (b > 0)
    return np.unique(np.stack([a[both], b[both]]), axis=1)


def test_ids_equal_a_single_pass_with_no_object_duplicated_or_cut(slide_run: dict) -> None:
    root = zarr.open_group(str(slide_run["zarr"]), mode="r")
    ids = root["labels/nuclei/0"]
    assert ids.shape == (2560, 2560) and ids.dtype == np.uint32
    crop = (slice(1024 - 256, 1024 + 256), slice(1024 - 256, 1024 + 256))  # all of the tissue
    got = ids[crop]
    probs = root["probabilities/0"][(slice(None), *crop)]
    single = instances_from_probabilities(probs.astype(np.float32) / 255, min_area_px=1)

    bar = single == single[(CENTRE + 1600 - 160) // 8 - 768, 256]  # far larger than any nucleus
    pairs = _pairs(np.where(bar, 0, single), np.where(bar, 0, got))
    assert (pairs > 0).all()  # same object pixels
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]  # one-to-one
    bar_ids = np.unique(got[bar])  # it alone is split, at the block border (column 1024)
    assert len(bar_ids) == 2 and all(len(np.unique(np.nonzero(got == i)[1] >= 256)) == 1 for i in bar_ids)

    cols = [np.nonzero(single == i)[1] + 1024 - 256 for i in np.unique(pairs[0])]
    assert sum(c.min() < 1024 <= c.max() for c in cols) >= 8  # objects across the block border
    assert sum(len(np.unique(c // 112)) > 1 for c in cols) >= 10  # ... and across tile blocks
    n = slide_run["result"].objects
    assert n == pairs.shape[1] + 2 and n > 150
    assert set(np.unique(got)) == set(range(n + 1))  # unique ids 1..N over the whole slide


def test_detections_table_and_labels_describe_the_same_objects(slide_run: dict) -> None:
    result = slide_run["result"]
    collection = json.loads(slide_run["geojson"].read_text())
    features = collection["features"]
    assert len(features) == result.objects and collection["gigavim"]["objects"] == result.objects
    rows = list(csv.DictReader(slide_run["csv"].open()))
    assert [int(r["id"]) for r in rows] == [f["properties"]["object_id"] for f in features]
    names = ["centroid_x", "centroid_y", "area_um2", "perimeter_um", "circularity", "solidity",
             "eccentricity", "major_axis_um", "minor_axis_um", "hematoxylin_od_mean"]
    assert list(rows[0]) == ["id", "class", *names]
    for feature, row in zip(features, rows, strict=True):
        props = feature["properties"]
        assert props["objectType"] == "detection"
        assert props["classification"] == {"name": "nucleus", "color": [220, 40, 40]}
        m = props["measurements"]
        assert list(m) == names and m["centroid_x"] == float(row["centroid_x"])
        outline = shape(feature["geometry"])  # level-0 pixels of 0.5 µm
        assert outline.is_valid and shapely.contains_xy(outline, m["centroid_x"], m["centroid_y"])
        assert outline.area * 0.25 == pytest.approx(m["area_um2"], rel=0.08)
        assert 0 < m["circularity"] <= 1 and 0 < m["solidity"] <= 1
        assert m["minor_axis_um"] <= m["major_axis_um"]
    areas = [f["properties"]["measurements"]["area_um2"] for f in features]
    assert np.median(areas) == pytest.approx(np.pi * 36**2 * 0.8, rel=0.3)  # a disc of r = 36 µm

    root = zarr.open_group(str(slide_run["zarr"]), mode="r")
    assert root["labels"].attrs["labels"] == ["segmentation", "nuclei"]
    assert root["labels/nuclei"].attrs["image-label"]["source"] == {"image": "../../"}
    datasets = root["labels/nuclei"].attrs["multiscales"][0]["datasets"]
    assert datasets == root["labels/segmentation"].attrs["multiscales"][0]["datasets"]
    assert datasets[0]["coordinateTransformations"][0]["scale"] == [4.0, 4.0]
    gv = root.attrs["gigavim"]
    assert gv["instances"] == "labels/nuclei" and gv["objects"] == result.objects
    assert gv["settings"]["instances"]["min_area"] == 5.0


def test_the_summary_counts_objects_per_mm2_of_tissue(slide_run: dict) -> None:
    result = slide_run["result"]
    with open_image(result.source) as src:
        tissue_mm2 = foreground_mask(src).fraction * SIDE * SIDE * 0.5**2 / 1e6
    assert result.object_class == "nucleus" and result.density_unit == "mm² of tissue"
    assert result.object_density == pytest.approx(result.objects / tissue_mm2)
    assert result.to_dict()["objects"] == result.objects and result.timings["objects_s"] > 0
    assert f"{result.objects} nuclei" in summary_line(result)


# -- small scenes: atomic writes, refusals, resume --------------------------------------------
def _small() -> FunctionSource:
    return FunctionSource(520, 600, nuclei_scene((260, 300), half=220))


def test_a_failing_table_leaves_no_output_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gigavim.io.writers.csv_table as table

    def full(label_map, path) -> None:
        Path(path).write_text("id,cl")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(table, "write_object_table", full)
    outs = [tmp_path / "a.zarr", tmp_path / "a.geojson", tmp_path / "a.csv"]
    with pytest.raises(OutputError, match="no space left"):
        segment(_small(), outs, model=nuclei_bundle(tile=128, overlap=16))
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".gigavim-work")) == []


def test_a_table_from_a_model_without_objects_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="table of objects"):
        segment(_small(), [tmp_path / "t.csv"], model=tiny_bundle(), level=0)
    with pytest.raises(UsageError, match="--min-area"):
        segment(_small(), [tmp_path / "t.zarr"], model=tiny_bundle(), level=0, min_area=3)
    assert list(tmp_path.iterdir()) == []


def test_min_area_overrides_the_models_rule(tmp_path: Path) -> None:
    kw = dict(model=nuclei_bundle(tile=128, overlap=16))
    all_ = segment(_small(), [tmp_path / "all.csv"], min_area=0, **kw)
    big = segment(_small(), [tmp_path / "big.csv"], min_area=100, **kw)
    areas = [float(r["area_um2"]) for r in csv.DictReader((tmp_path / "all.csv").open())]
    assert big.objects == sum(a >= 100 for a in areas) < all_.objects == len(areas)


_KILLED = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from engine.fakes import FunctionSource, nuclei_bundle, nuclei_scene
from gigavim.cli.segment import summary_line
from gigavim.engine import segment

def die(p):
    if p.tiles_done >= 8:
        os.kill(os.getpid(), signal.SIGKILL)

segment(FunctionSource(520, 600, nuclei_scene((260, 300), half=220)), {outs!r},
        model=nuclei_bundle(tile=128, overlap=16), batch_size=2, progress=die)
"""


def test_resume_after_sigkill_gives_the_same_ids(tmp_path: Path) -> None:
    outs = [str(tmp_path / "r.zarr"), str(tmp_path / "r.csv")]
    script = textwrap.dedent(_KILLED).format(tests=str(TESTS), outs=outs)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    kw = dict(model=nuclei_bundle(tile=128, overlap=16), batch_size=2)
    resumed = segment(_small(), outs, resume=True, **kw)
    assert resumed.resumed and resumed.tiles_resumed >= 4
    fresh = segment(_small(), [tmp_path / "f.zarr", tmp_path / "f.csv"], **kw)
    assert resumed.objects == fresh.objects > 20
    a = zarr.open_group(outs[0], mode="r")["labels/nuclei/0"][:]
    b = zarr.open_group(str(tmp_path / "f.zarr"), mode="r")["labels/nuclei/0"][:]
    np.testing.assert_array_equal(a, b)
    assert Path(outs[1]).read_text() == (tmp_path / "f.csv").read_text()
