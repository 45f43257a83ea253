"""Ground pixel sizes per axis from pyproj: geographic degrees and Web Mercator metres are
converted to metres on the ground at the scene centre; outputs keep the input's CRS and grid."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyproj
import pytest
import rasterio
from rasterio.transform import Affine, from_origin

from gigavim.io import open_image
from gigavim.io.raster_source import pixel_size_m
from gigavim.io.synthetic import write_geotiff


def test_web_mercator_gsd_is_within_1_percent_of_the_geodesic_length(real_data: Path) -> None:
    """cogeo.tif (EPSG:3857, 0.597 projected m at 37.7° N): the reported size is the ground one,
    checked against the geodesic length of the whole centre row and column (not one pixel)."""
    path = real_data / "geo" / "cogeo.tif"
    with rasterio.open(path) as ds:
        t, w, h = ds.transform, ds.width, ds.height
    to_lonlat = pyproj.Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)
    geod = pyproj.Geod(ellps="WGS84")
    (lon0, lon1), (lat0, lat1) = to_lonlat.transform(*zip(t * (0, h / 2), t * (w, h / 2), strict=True))
    across = geod.inv(lon0, lat0, lon1, lat1)[2] / w
    (lon0, lon1), (lat0, lat1) = to_lonlat.transform(*zip(t * (w / 2, 0), t * (w / 2, h), strict=True))
    down = geod.inv(lon0, lat0, lon1, lat1)[2] / h
    with open_image(path) as src:
        y, x = src.ground_pixel_yx
        assert x == pytest.approx(across, rel=0.01) and y == pytest.approx(down, rel=0.01)
        assert src.gsd_m == pytest.approx(math.sqrt(across * down), rel=0.01)
        assert src.gsd_m / t.a == pytest.approx(0.79, abs=0.01)  # projected metres are 26 % long
        assert src.crs == "EPSG:3857"  # the CRS itself is untouched


def test_geographic_pixels_are_not_square_on_the_ground(tmp_path: Path) -> None:
    """0.001° at 60° N: 111.4 m north-south, 55.8 m east-west (WGS84 geodesics)."""
    path = write_geotiff(tmp_path / "geo.tif", np.zeros((20, 20), np.uint8), crs="EPSG:4326",
                         transform=from_origin(10.0, 60.01, 0.001, 0.001))
    with open_image(path) as src:
        y, x = src.ground_pixel_yx
    geod = pyproj.Geod(ellps="WGS84")
    assert y == pytest.approx(geod.inv(10.01, 59.9995, 10.01, 60.0005)[2], rel=1e-4)
    assert x == pytest.approx(geod.inv(10.0095, 60.0, 10.0105, 60.0)[2], rel=1e-4)
    assert y == pytest.approx(111.4, abs=0.2) and x == pytest.approx(55.8, abs=0.1)


def test_utm_keeps_its_own_metres_and_feet_are_converted() -> None:
    # UTM zone 33 central meridian: k = 0.9996 (10 grid m = 10.004 ground m), within 0.5 %: 10 m
    assert pixel_size_m("EPSG:32633", Affine(10, 0, 500_000, 0, -10, 5_000_000), 100, 100) == (10.0, 10.0)
    # a US-feet state plane: 3 ft pixels are about 0.914 m
    feet = pixel_size_m("EPSG:2263", Affine(3, 0, 1_000_000, 0, -3, 200_000), 100, 100)
    assert feet == pytest.approx((3 * 0.3048006, 3 * 0.3048006), rel=1e-3)


def test_info_reports_per_axis_ground_sizes(tmp_path: Path) -> None:
    from gigavim.cli.info import _readable_rows

    path = write_geotiff(tmp_path / "geo.tif", np.zeros((20, 20), np.uint8), crs="EPSG:4326",
                         transform=from_origin(10.0, 60.01, 0.001, 0.001))
    with open_image(path) as src:
        facts = src.describe()
    assert facts["ground_pixel_yx_m"] == pytest.approx([111.4, 55.8], abs=0.2)
    rows = dict(_readable_rows({**facts, "valid_fraction": 1.0, "valid_fraction_exact": True}))
    assert rows["ground distance"] == "78.85 m/px (y 111.4 m, x 55.8 m on the ground)"
