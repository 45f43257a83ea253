"""Issue 10's first "done when": the panchromatic uint16 tile, a 13-band Sentinel-2 chip given to
an RGB model and a 3-band image given to a 13-band model are each one clear line — or run with
an explicit ``--bands``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from engine.fakes import s2_bundle_file

PAN = "geo/road_mask_input.tif"  # SpaceNet WorldView-3 panchromatic, 1 band uint16
S2 = "geo_labelled/sen1floods11/Spain_7370579_S2Hand.tif"  # 13 bands int16, 10 m, 512²


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_panchromatic_tile_to_the_rgb_default_is_one_line(gigavim, real_data: Path, tmp_path: Path) -> None:
    run = gigavim("segment", str(real_data / PAN), "-o", str(tmp_path / "pan.tif"))
    assert run.returncode != 0
    assert one_error_line(run.stderr) == (
        f"gigavim: error: {real_data / PAN}: has 1 band (gray) but model 'land-water' wants 3 bands "
        "(red, green, blue); choose the model's bands with --bands (e.g. --bands 1,1,1)")
    assert list(tmp_path.iterdir()) == []


def test_s2_chip_to_an_rgb_model_is_one_line_then_runs_with_bands_and_warns_on_values(
        gigavim, real_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "s2.tif"
    # the default for a 13-band scene is water-s2: name the RGB model this test is about
    run = gigavim("segment", str(real_data / S2), "-o", str(out), "--model", "land-water")
    assert run.returncode != 0
    assert one_error_line(run.stderr).endswith(
        "has 13 bands (B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B10, B11, B12) but model 'land-water' "
        "wants 3 bands (red, green, blue); choose the model's bands with --bands (e.g. --bands B4,B3,B2)")
    run = gigavim("segment", str(real_data / S2), "-o", str(out), "--model", "land-water",
                  "--bands", "B4,B3,B2", "--gsd", "80", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["input_check"]["bands"] == [4, 3, 2] and summary["input_check"]["in_range"] is False
    (warning,) = summary["warnings"]
    assert "(int16) are far outside the range model 'land-water' was trained on (0–255, uint8)" in warning
    assert f"gigavim: warning: {warning}" in run.stderr


def test_three_bands_to_a_13_band_model_is_one_line(gigavim, real_data: Path, tmp_path: Path) -> None:
    model = s2_bundle_file(tmp_path / "s2.pt")
    rgb = real_data / "geo" / "RGB.byte.tif"
    run = gigavim("segment", str(rgb), "-o", str(tmp_path / "rgb.tif"), "--model", str(model),
                  "--allow-untrained")
    assert run.returncode != 0
    assert one_error_line(run.stderr) == (
        f"gigavim: error: {rgb}: has 3 bands (red, green, blue) but model 's2-test' wants 13 bands "
        "(B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B10, B11, B12); give an image that has the model's "
        "bands (none is made up or repeated silently)")


def test_the_13_band_chip_runs_on_the_13_band_model_in_range(gigavim, real_data: Path,
                                                             tmp_path: Path) -> None:
    model = s2_bundle_file(tmp_path / "s2.pt")
    out = tmp_path / "water.tif"
    run = gigavim("segment", str(real_data / S2), "-o", str(out), "--model", str(model),
                  "--allow-untrained", "--gsd", "40", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["input_check"]["in_range"] is True and summary["input_check"]["mapped"] is False
    with rasterio.open(out) as ds, rasterio.open(real_data / S2) as src:
        assert ds.crs == src.crs and ds.shape == tuple(summary["shape"]) and ds.shape[0] < 200
        assert set(np.unique(ds.read(1))) <= {0, 1, 255}


@pytest.mark.parametrize("bands", ["0,1,2", "1,2"])
def test_bad_bands_on_the_command_line_are_one_line(gigavim, real_data: Path, tmp_path: Path, bands) -> None:
    run = gigavim("segment", str(real_data / S2), "-o", str(tmp_path / "x.tif"), "--bands", bands)
    assert run.returncode != 0 and "--bands" in one_error_line(run.stderr)
