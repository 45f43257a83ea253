"""Bands against the model's input contract: refused with one line, or mapped with --bands;
values far outside the training range reported (summary, --json, batch manifest)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

from gigavim.engine import segment
from gigavim.engine.bands import BandView, match_bands, sample_values
from gigavim.errors import ModelError, UsageError
from gigavim.models.contract import InputContract

from .fakes import ArraySource, tiny_bundle

GEO = {"driver": "GTiff", "crs": "EPSG:32633", "transform": Affine(10, 0, 500_000, 0, -10, 5_000_000)}


def write_scene(path: Path, data: np.ndarray, names: list[str] | None = None) -> Path:
    """A GeoTIFF of (bands, h, w) ``data`` with optional band descriptions."""
    with rasterio.open(path, "w", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, **GEO) as ds:
        ds.write(data)
        for i, name in enumerate(names or [], start=1):
            ds.set_band_description(i, name)
    return path


def s2_like(path: Path) -> Path:
    """13 bands named like Sentinel-2's, band b holding the value 10·b (so picks are visible)."""
    names = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
    data = np.stack([np.full((40, 48), 10 * (b + 1), np.uint8) for b in range(13)])
    return write_scene(path, data, names)


def test_a_13_band_scene_to_an_rgb_model_is_one_line_suggesting_the_s2_bands(tmp_path: Path) -> None:
    scene = s2_like(tmp_path / "s2.tif")
    with pytest.raises(ModelError) as err:
        segment(scene, [tmp_path / "out.tif"], model=tiny_bundle())
    assert str(err.value) == (
        f"{scene}: has 13 bands (B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B10, B11, B12) but model "
        "'tiny-conv' wants 3 bands (red, green, blue); choose the model's bands with --bands "
        "(e.g. --bands B4,B3,B2)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s2.tif"]


@pytest.mark.parametrize("bands", ["4,3,2", "B4,B3,B2", "b04, b3 ,B2", [4, 3, 2]])
def test_explicit_bands_by_number_or_name_feed_exactly_those_bands(tmp_path: Path, bands) -> None:
    scene = s2_like(tmp_path / "s2.tif")
    result = segment(scene, [tmp_path / "out.tif"], model=tiny_bundle(tile=32, overlap=8), bands=bands)
    assert result.input_check["bands"] == [4, 3, 2] and result.input_check["mapped"]
    assert result.input_check["band_names"] == ["B4", "B3", "B2"]
    assert result.input_check["values"] == [[40.0, 40.0], [30.0, 30.0], [20.0, 20.0]]
    assert result.input_check["in_range"] and not result.warnings


def test_band_view_reads_the_picked_bands_in_order_repeats_allowed() -> None:
    levels = [np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)]
    src = ArraySource(levels, kind="raster", mpp=None)
    view, check = match_bands(src, tiny_bundle(bands=3).meta, "4,4,1")
    assert isinstance(view, BandView) and view.bands == 3 and check.bands == [4, 4, 1]
    from gigavim.io.base import Window

    np.testing.assert_array_equal(view.read(0, Window(0, 0, 2, 3)), levels[0][..., [3, 3, 0]])


def test_bad_band_maps_are_one_line(tmp_path: Path) -> None:
    scene = s2_like(tmp_path / "s2.tif")
    out = [tmp_path / "out.tif"]
    with pytest.raises(UsageError, match=r"--bands 14: no such band; the image has 13 bands \(B1, .*from 1"):
        segment(scene, out, model=tiny_bundle(), bands="14,3,2")
    with pytest.raises(UsageError, match=r"--bands NIR: not a band number or name; the image has 13"):
        segment(scene, out, model=tiny_bundle(), bands="NIR,3,2")
    with pytest.raises(ModelError, match=r"--bands picks 2 bands but model 'tiny-conv' wants 3 bands"):
        segment(scene, out, model=tiny_bundle(), bands="4,3")


def test_a_grey_band_is_never_repeated_silently_but_can_be_on_request(tmp_path: Path) -> None:
    pan = write_scene(tmp_path / "pan.tif", np.full((1, 40, 48), 90, np.uint8))
    with pytest.raises(ModelError, match=r"has 1 band \(gray\) but model 'tiny-conv' wants 3 bands "
                                         r"\(red, green, blue\); .*--bands 1,1,1"):
        segment(pan, [tmp_path / "a.tif"], model=tiny_bundle())
    result = segment(pan, [tmp_path / "a.tif"], model=tiny_bundle(tile=32, overlap=8), bands="1,1,1")
    assert result.input_check["bands"] == [1, 1, 1]


def test_three_bands_to_a_13_band_model_is_one_line(tmp_path: Path) -> None:
    rgb = write_scene(tmp_path / "rgb.tif", np.full((3, 40, 48), 90, np.uint8))
    with pytest.raises(ModelError) as err:
        segment(rgb, [tmp_path / "a.tif"], model=tiny_bundle(bands=13))
    assert str(err.value) == (f"{rgb}: has 3 bands (red, green, blue) but model 'tiny-conv' wants 13 bands "
                              f"({', '.join(f'band{i}' for i in range(1, 14))}); give an image that has "
                              "the model's bands (none is made up or repeated silently)")


def test_band_kinds_that_differ_are_refused_unless_mapped(tmp_path: Path) -> None:
    """Same count, different kinds: a NIR-R-G false-colour file to an RGB model."""
    scene = write_scene(tmp_path / "cir.tif", np.full((3, 40, 48), 90, np.uint8), ["nir", "red", "green"])
    with pytest.raises(ModelError, match=r"has 3 bands \(nir, red, green\) but model 'tiny-conv' wants "
                                         r"3 bands \(red, green, blue\); the band kinds differ"):
        segment(scene, [tmp_path / "a.tif"], model=tiny_bundle())
    result = segment(scene, [tmp_path / "a.tif"], model=tiny_bundle(tile=32, overlap=8), bands="1,2,3")
    assert result.input_check["band_names"] == ["nir", "red", "green"]


def test_values_far_outside_the_training_range_warn_in_summary_and_json(tmp_path: Path) -> None:
    """A float 'DEM' 0–3000 to an 8-bit model; reflectances 0–1 too; 8-bit data does not warn."""
    ramp = np.linspace(0, 3000, 40 * 48, dtype=np.float32).reshape(1, 40, 48).repeat(3, 0)
    dem = write_scene(tmp_path / "dem.tif", ramp)
    model = tiny_bundle(tile=32, overlap=8)
    result = segment(dem, [tmp_path / "a.tif"], model=model)
    assert len(result.warnings) == 1
    assert re.search(r"dem\.tif: pixel values (29\.7|30)–2970 \(float32\) are far outside the range model "
                     r"'tiny-conv' was trained on \(0–255, uint8\)", result.warnings[0])
    check = json.loads(json.dumps(result.to_dict()))["input_check"]
    assert check["in_range"] is False and check["dtype"] == "float32" and check["model_dtype"] == "uint8"
    refl = write_scene(tmp_path / "refl.tif", ramp / 3000)
    assert not segment(refl, [tmp_path / "b.tif"], model=model).input_check["in_range"]
    byte = write_scene(tmp_path / "byte.tif", (ramp / 3000 * 255).astype(np.uint8))
    assert segment(byte, [tmp_path / "c.tif"], model=model).input_check["in_range"]


def test_the_value_sample_reads_small_windows_of_a_coarse_level_only() -> None:
    big = np.zeros((1024, 1024, 3), np.uint8)
    small = np.zeros((256, 256, 3), np.uint8)
    src = ArraySource([big, np.zeros((512, 512, 3), np.uint8), small], kind="raster", mpp=None)
    assert sample_values(src).shape == (16 * 64 * 64, 3)
    assert {level for level, _ in src.reads} == {2}
    assert all(w.height * w.width <= 64 * 64 for _, w in src.reads)


def test_percentile_contract_range_is_used_for_the_check(tmp_path: Path) -> None:
    model = tiny_bundle(tile=32, overlap=8)
    model.meta.input_contract = InputContract(
        bands=["red", "green", "blue"], dtype="uint16", value_range=[[100.0, 2000.0]] * 3,
        scaling={"method": "percentile", "low": [100.0] * 3, "high": [2000.0] * 3}).to_dict()
    scene = write_scene(tmp_path / "u16.tif", np.full((3, 40, 48), 1500, np.uint16))
    assert segment(scene, [tmp_path / "a.tif"], model=model).input_check["in_range"]
