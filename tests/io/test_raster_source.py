"""RasterSource against the real GeoTIFFs' documented facts: CRS, GSD, bands, nodata, overviews."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gigavim.errors import InputError
from gigavim.io import Window, open_image, require_data, valid_fraction
from gigavim.io.raster_source import RasterSource
from gigavim.io.synthetic import write_geotiff

# file, (width, height), bands, dtype, crs (exact, or a WKT fragment), gsd_m, nodata, levels
RASTERS = [
    # Web Mercator's 0.597 projected metres are 0.472 on the ground at 37.7° N
    ("geo/RGB.byte.tif", (791, 718), 3, "uint8", "EPSG:32618", 300.04, 0.0, 1),
    ("geo/cogeo.tif", (1024, 1024), 3, "uint8", "EPSG:3857", 0.47229, None, 7),
    ("geo/float_nan.tif", (3, 2), 1, "float32", None, None, math.nan, 1),
    ("geo/ms1.tif", (300, 300), 4, "float64", "EPSG:32631", 1.0, None, 1),
    ("geo/sample_geotiff_custom_proj.tif", (512, 512), 3, "int16", "Albers", 30.0, -9999.0, 1),
    ("geo/world.byte.tif", (2880, 1200), 1, "uint8", "EPSG:4326", 13868.0, None, 1),
    ("geo/goes.tif", (542, 542), 3, "uint8", "+proj=geos", 20054.96, None, 2),
    ("geo/road_mask_input.tif", (1300, 1300), 1, "uint16", "EPSG:4326", 0.27, None, 1),
    ("geo/sample_road_raster_mask.tif", (1300, 1300), 1, "uint8", "EPSG:4326", 0.27, None, 1),
    # 0.703125° at the equator: sqrt(78,271.5 m east-west × 77,747.6 m north-south)
    ("geo/world.rgb.tif", (512, 256), 3, "uint8", "EPSG:4326", 78009.1, None, 1),
]


@pytest.mark.parametrize(("name", "size", "bands", "dtype", "crs", "gsd_m", "nodata", "levels"), RASTERS)
def test_real_raster_facts(real_data, name, size, bands, dtype, crs, gsd_m, nodata, levels):
    with open_image(real_data / name) as src:
        assert isinstance(src, RasterSource) and src.kind == "raster"
        assert (src.width, src.height, src.bands, str(src.dtype)) == (*size, bands, dtype)
        assert src.level_count == levels
        if crs is None:
            assert src.crs is None
        elif crs.startswith("EPSG:"):
            assert src.crs == crs
        else:  # custom projections have no EPSG code: the WKT is kept
            assert src.crs.startswith("PROJCS") and (crs in src.crs or "Geostationary" in src.crs)
        assert src.gsd_m == (None if gsd_m is None else pytest.approx(gsd_m, rel=2e-3))
        if nodata is None or not math.isnan(nodata):
            assert src.nodata == nodata
        else:
            assert math.isnan(src.nodata)
        assert src.mpp is None and src.transform is not None


def test_cog_overviews_are_levels(real_data):
    with open_image(real_data / "geo/cogeo.tif") as src:
        assert [lv.downsample for lv in src.levels] == [1, 2, 4, 8, 16, 32, 64]
        assert [lv.width for lv in src.levels] == [1024, 512, 256, 128, 64, 32, 16]
        # an overview is the same picture, smaller: compare with a 2×2 mean of level 0
        full = src.read(0, Window(0, 0, 1024, 1024)).astype(float)
        half = src.read(1, Window(0, 0, 512, 512)).astype(float)
        assert np.abs(full.reshape(512, 2, 512, 2, 3).mean(axis=(1, 3)) - half).mean() < 8


@pytest.mark.parametrize("level", [0, 1, 3, 6])
def test_windows_equal_crops_of_level(real_data, level):
    with open_image(real_data / "geo/cogeo.tif") as src:
        lv = src.levels[level]
        whole = src.read(level, Window(0, 0, lv.height, lv.width))
        rng = np.random.default_rng(level)
        for _ in range(10):
            h, w = rng.integers(1, lv.height + 1), rng.integers(1, lv.width + 1)
            y, x = rng.integers(0, lv.height - h + 1), rng.integers(0, lv.width - w + 1)
            part = src.read(level, Window(int(y), int(x), int(h), int(w)))
            np.testing.assert_array_equal(part, whole[y : y + h, x : x + w])


@pytest.mark.parametrize(
    ("name", "fill"),
    [("geo/RGB.byte.tif", 0), ("geo/sample_geotiff_custom_proj.tif", -9999), ("geo/float_nan.tif", np.nan)],
)
def test_out_of_bounds_filled_with_nodata(real_data, name, fill):
    with open_image(real_data / name) as src:
        window = Window(src.height - 1, src.width - 1, 3, 4)
        out = src.read(0, window)
        assert out.shape == (3, 4, src.bands) and out.dtype == src.dtype
        inside = src.read(0, Window(src.height - 1, src.width - 1, 1, 1))
        np.testing.assert_array_equal(out[0, 0], inside[0, 0])
        np.testing.assert_array_equal(out[1:], np.full_like(out[1:], fill))
        assert not src.read_valid(0, window)[1:].any() and not src.read_valid(0, window)[:, 1:].any()


def test_nodata_collar_is_invalid(real_data):
    with open_image(real_data / "geo/RGB.byte.tif") as src:
        data = src.read(0, Window(0, 0, 718, 791))
        valid = src.read_valid(0, Window(0, 0, 718, 791))
        assert 0.30 < 1 - valid.mean() < 0.36  # README: about 33 % nodata
        np.testing.assert_array_equal(valid, (data != 0).any(axis=-1))
        assert valid_fraction(src).fraction == pytest.approx(valid.mean())


def test_nan_pixel_is_invalid(real_data):
    with open_image(real_data / "geo/float_nan.tif") as src:
        data = src.read(0, Window(0, 0, 2, 3))[..., 0]
        assert np.isnan(data).sum() == 1
        np.testing.assert_array_equal(src.read_valid(0, Window(0, 0, 2, 3)), ~np.isnan(data))


def test_internal_mask_marks_space_invalid(real_data):
    """goes.tif's mask covers the space around the Earth disk."""
    with open_image(real_data / "geo/goes.tif") as src:
        valid = src.read_valid(0, Window(0, 0, 542, 542))
        assert not valid[0, 0] and valid[271, 271] and 0.7 < valid.mean() < 0.85


def test_dask_view_equals_reads(real_data):
    with open_image(real_data / "geo/ms1.tif") as src:
        lazy = src.to_dask(0, chunk=128)
        assert lazy.shape == (300, 300, 4) and lazy.dtype == np.float64
        np.testing.assert_array_equal(lazy.compute(), src.read(0, Window(0, 0, 300, 300)))


def test_damaged_tiles_raise_input_error(real_data):
    path = real_data / "bad_input/corrupt.tif"
    with open_image(path) as src:  # the profile is intact
        assert (src.width, src.height, src.crs, src.level_count) == (1024, 1024, "EPSG:3857", 7)
        with pytest.raises(InputError, match=r"corrupt\.tif.*cannot read raster pixels"):
            src.read(0, Window(0, 0, 1024, 1024))


def test_all_nodata_opens_but_is_refused_for_processing(real_data):
    path = real_data / "bad_input/all-nodata.tif"
    with open_image(path) as src:
        assert (src.width, src.height, src.bands, src.nodata) == (71, 2475, 4, 0.0)
        assert valid_fraction(src).fraction == 0
        with pytest.raises(InputError, match=r"all-nodata\.tif: every pixel is nodata"):
            require_data(src)


def test_geographic_gsd_is_metres_at_scene_centre(tmp_path):
    """0.001° pixels at 60° N: a degree is ~55.80 km east-west and ~111.41 km north-south."""
    from rasterio.transform import from_origin

    path = write_geotiff(
        tmp_path / "geo.tif",
        np.zeros((20, 20), np.uint8),
        crs="EPSG:4326",
        transform=from_origin(10.0, 60.01, 0.001, 0.001),
    )
    with open_image(path) as src:
        assert src.crs == "EPSG:4326"
        assert src.gsd_m == pytest.approx(math.sqrt(55.80 * 111.41), rel=2e-3)


def test_written_geotiff_round_trips(tmp_path):
    data = np.random.default_rng(0).integers(0, 4000, (600, 520, 2)).astype(np.uint16)
    data[:10] = 65535
    path = write_geotiff(tmp_path / "r.tif", data, crs="EPSG:32633", gsd_m=10, nodata=65535, overviews=(2, 4))
    with open_image(path) as src:
        assert (src.crs, src.gsd_m, src.nodata, src.bands) == ("EPSG:32633", 10.0, 65535.0, 2)
        assert [(lv.width, lv.height) for lv in src.levels] == [(520, 600), (260, 300), (130, 150)]
        np.testing.assert_array_equal(src.read(0, Window(0, 0, 600, 520)), data)
        assert not src.read_valid(0, Window(0, 0, 600, 520))[:10].any()
        assert src.read_valid(0, Window(0, 0, 600, 520))[10:].all()


def test_valid_fraction_of_a_thin_strip_samples_only_inside_it(tmp_path) -> None:
    """Above 4 MP the fraction is sampled in 64-px windows; a strip thinner than that must not
    count the rows beyond its edge as nodata."""
    path = write_geotiff(tmp_path / "strip.tif", np.ones((40, 110_000), dtype=np.uint8), tile=16)
    with open_image(path) as src:
        found = valid_fraction(src)
    assert not found.exact and found.fraction == 1.0


def test_handles_of_finished_threads_are_closed(tmp_path) -> None:
    """Each segment() run reads through fresh worker threads; a source kept open across runs
    (napari, notebooks) must not keep one GDAL handle per thread that ever read it."""
    import os
    import threading

    path = write_geotiff(tmp_path / "small.tif", np.ones((32, 32), dtype=np.uint8))
    with open_image(path) as src:
        src.read(0, Window(0, 0, 4, 4))
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(10):
            reader = threading.Thread(target=src.read, args=(0, Window(0, 0, 4, 4)))
            reader.start()
            reader.join()
        assert len(os.listdir("/proc/self/fd")) - before <= 1


@pytest.mark.parametrize("nodata, shown", [(-math.inf, "-inf"), (math.inf, "inf"), (math.nan, "nan")])
def test_non_finite_nodata_is_valid_json(tmp_path, nodata, shown) -> None:
    import json

    path = tmp_path / "inf.tif"
    write_geotiff(path, np.ones((8, 8, 1), dtype=np.float32), nodata=nodata)
    with open_image(path) as src:
        text = json.dumps(src.describe(), allow_nan=False)  # raises on NaN/Infinity literals
    assert json.loads(text)["nodata"] == shown
