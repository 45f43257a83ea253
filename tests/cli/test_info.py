"""``gigavim info`` on real slides and rasters: JSON lines, readable tables, thumbnails."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image


def test_json_lines_describe_every_real_file(real_data, gigavim):
    names = [
        "wsi/CMU-1-Small-Region.svs",
        "wsi/boxes.tiff",
        "wsi/boxes_0.dcm",
        "geo/RGB.byte.tif",
        "geo/cogeo.tif",
        "geo/float_nan.tif",
        "geo/sample_geotiff_custom_proj.tif",
        "nuclei_miccai2015/image06.png",
    ]
    result = gigavim("info", "--json", *(str(real_data / n) for n in names))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(names)  # one JSON object per input, one per line
    facts = {n: json.loads(line) for n, line in zip(names, lines, strict=True)}
    for name, f in facts.items():
        assert f["path"] == str(real_data / name)
        for key in ("format", "width", "height", "levels", "mpp", "crs", "bands", "dtype", "nodata"):
            assert key in f
    cmu = facts["wsi/CMU-1-Small-Region.svs"]
    assert (cmu["format"], cmu["width"], cmu["height"], cmu["mpp"]) == ("aperio", 2220, 2967, 0.499)
    assert cmu["objective_power"] == 20 and cmu["crs"] is None
    boxes = facts["wsi/boxes.tiff"]
    assert [lv["downsample"] for lv in boxes["levels"]] == pytest.approx([1, 2, 4.016, 8.086], abs=1e-3)
    assert facts["wsi/boxes_0.dcm"]["format"] == "dicom"
    rgb = facts["geo/RGB.byte.tif"]
    assert (rgb["crs"], rgb["bands"], rgb["dtype"], rgb["nodata"]) == ("EPSG:32618", 3, "uint8", 0)
    assert rgb["gsd_m"] == pytest.approx(300.04, rel=1e-3) and 0.64 < rgb["valid_fraction"] < 0.70
    assert len(facts["geo/cogeo.tif"]["levels"]) == 7
    assert facts["geo/float_nan.tif"]["nodata"] == "nan"
    custom = facts["geo/sample_geotiff_custom_proj.tif"]
    assert custom["nodata"] == -9999 and custom["dtype"] == "int16" and "Albers" in custom["crs"]
    png = facts["nuclei_miccai2015/image06.png"]
    assert (png["format"], png["width"], png["height"], png["bands"]) == ("png", 459, 392, 3)


def test_readable_table_and_sample(real_data, gigavim):
    result = gigavim("info", "--sample", str(real_data / "geo/RGB.byte.tif"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for text in ("aperio", "2220 × 2967", "0.499 µm/px", "20×", "EPSG:32618", "300 m/px", "nodata"):
        assert text in out


def test_all_nodata_is_reported_not_refused(real_data, gigavim):
    result = gigavim("info", "--json", str(real_data / "bad_input/all-nodata.tif"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["valid_fraction"] == 0
    table = gigavim("info", str(real_data / "bad_input/all-nodata.tif")).stdout
    assert "every pixel is nodata" in table


def test_thumbnails_one_file_or_a_directory(real_data, tmp_path, gigavim):
    single = tmp_path / "thumb.png"
    slide = real_data / "wsi/CMU-1-Small-Region.svs"
    assert gigavim("info", "--thumbnail", str(single), str(slide)).returncode == 0
    picture = np.asarray(Image.open(single))
    assert picture.shape == (1024, 766, 3) and picture.std() > 10

    folder = tmp_path / "thumbs"
    shapes = {"ms1.tif": (300, 300, 3), "sample_geotiff_custom_proj.tif": (512, 512, 3)}
    inputs = [real_data / "geo" / name for name in shapes]
    result = gigavim("info", "--json", "--thumbnail", str(folder), *map(str, inputs))
    assert result.returncode == 0, result.stderr
    for path, line in zip(inputs, result.stdout.splitlines(), strict=True):
        written = folder / f"{path.name}.png"
        assert json.loads(line)["thumbnail"] == str(written)
        img = np.asarray(Image.open(written))  # float64 / int16 rasters stretched to RGB uint8
        assert img.dtype == np.uint8 and img.shape == shapes[path.name] and img.std() > 10


def test_good_inputs_reported_bad_ones_one_line_each(real_data, tmp_path, gigavim):
    result = gigavim(
        "info", "--json", str(real_data / "wsi/small.svs"), str(tmp_path / "missing.svs"),
        str(real_data / "bad_input/broken.svs"), str(real_data / "geo/goes.tif"),
    )  # fmt: skip
    assert result.returncode != 0
    assert [json.loads(line)["path"] for line in result.stdout.splitlines()] == [
        str(real_data / "wsi/small.svs"),
        str(real_data / "geo/goes.tif"),
    ]
    errors = result.stderr.splitlines()
    assert len(errors) == 2 and "missing.svs: no such file" in errors[0] and "broken.svs" in errors[1]


def test_no_input_is_a_usage_error(gigavim):
    result = gigavim("info")
    assert result.returncode != 0 and "at least one PATH" in result.stderr


def test_thumbnails_of_same_named_inputs_do_not_overwrite(real_data, tmp_path, gigavim):
    slide = str(real_data / "wsi/small.svs")
    result = gigavim("info", "--json", "--thumbnail", str(tmp_path / "t"), slide, slide)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["small.svs-2.png", "small.svs.png"]
