"""Band refusals and value warnings in a batch: failed records with the one line; warnings and
the input check in the manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from engine.fakes import s2_bundle_file
from gigavim.pipelines import run_batch

PAN = "geo/road_mask_input.tif"
S2 = "geo_labelled/sen1floods11/Spain_7370579_S2Hand.tif"


def test_band_mismatches_fail_alone_and_value_warnings_reach_the_manifest(
        real_data: Path, tmp_path: Path, dask_address: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in (PAN, S2, "geo/RGB.byte.tif"):
        shutil.copy(real_data / name, folder / Path(name).name)
    pan, s2, rgb = (folder / Path(n).name for n in (PAN, S2, "geo/RGB.byte.tif"))

    # the default for a 13-band scene is water-s2: name the RGB model these refusals are about
    report = run_batch([pan, s2], tmp_path / "a", formats=("tif",), address=dask_address,
                       model="land-water")
    errors = {Path(r.input).name: r.error for r in report.records}
    assert [r.status for r in report.records] == ["failed", "failed"]
    assert errors[pan.name] == (f"{pan}: has 1 band (gray) but model 'land-water' wants 3 bands (red, green, "
                                "blue); choose the model's bands with --bands (e.g. --bands 1,1,1)")
    assert errors[s2.name].endswith("wants 3 bands (red, green, blue); choose the model's bands with "
                                    "--bands (e.g. --bands B4,B3,B2)")

    model = s2_bundle_file(tmp_path / "s2.pt")
    report = run_batch([rgb, s2], tmp_path / "b", formats=("tif",), address=dask_address, model=model,
                       segment_kwargs={"allow_untrained": True, "gsd": 40})
    by_name = {Path(r.input).name: r for r in report.records}
    assert by_name[s2.name].status == "ok", by_name[s2.name].error
    assert by_name[rgb.name].status == "failed" and "wants 13 bands" in by_name[rgb.name].error

    report = run_batch([s2], tmp_path / "c", formats=("tif",), address=dask_address, model="land-water",
                       segment_kwargs={"bands": "B4,B3,B2", "gsd": 80})
    manifest = json.loads(report.manifest_path.read_text())
    assert manifest["settings"]["segment"]["bands"] == "B4,B3,B2"
    (record,) = manifest["inputs"]
    assert record["status"] == "ok", record["error"]
    assert record["summary"]["input_check"]["bands"] == [4, 3, 2]
    assert record["summary"]["input_check"]["in_range"] is False
    (warning,) = record["warnings"]
    assert "far outside the range model 'land-water' was trained on (0–255, uint8)" in warning
