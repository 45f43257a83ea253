"""The block-wise measurements equal skimage regionprops' object by object."""

from __future__ import annotations

import json

import numpy as np
import pytest
from affine import Affine
from skimage.measure import regionprops

from gigavim.instances.measure import column_names, measure_objects
from gigavim.instances.postprocess import haematoxylin_density


def _awkward_objects() -> np.ndarray:
    """Touching objects, one cut by the array edge, a hole, a single pixel, a line, a split id."""
    rng = np.random.default_rng(3)
    ids = np.zeros((96, 120), np.int32)
    yy, xx = np.mgrid[:96, :120]
    for k, (cy, cx, r) in enumerate([(20, 20, 9), (20, 36, 8), (60, 50, 12), (0, 90, 10), (80, 110, 14)], 1):
        ids[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = k
    ids[(yy - 60) ** 2 + (xx - 50) ** 2 <= 9] = 0  # a hole
    ids[40, 5] = 6  # one pixel
    ids[45, 10:30] = 7  # a line
    ids[90:94, 2:6] = 8
    ids[90:94, 12:16] = 8  # one id, two pieces
    blob = rng.random((20, 20)) > 0.35
    ids[70:90, 70:90][blob & (ids[70:90, 70:90] == 0)] = 9  # ragged, with gaps
    return ids


@pytest.mark.parametrize("with_rgb", [False, True])
def test_measurements_equal_regionprops(with_rgb: bool) -> None:
    ids = _awkward_objects()
    rgb = np.random.default_rng(0).integers(0, 256, (*ids.shape, 3), dtype=np.uint8) if with_rgb else None
    shift = Affine.translation(1000, 2000) @ Affine.scale(2)
    got = {i: m for i, m, _ in measure_objects(ids, "um", 0.5, shift, rgb=rgb)}
    hema = haematoxylin_density(rgb) if with_rgb else None
    props = regionprops(ids, intensity_image=hema)
    assert sorted(got) == [p.label for p in props]
    assert list(next(iter(got.values()))) == column_names("um", with_rgb)
    for p in props:
        m = got[p.label]
        x, y = shift @ (p.centroid[1] + 0.5, p.centroid[0] + 0.5)
        assert m["centroid_x"] == pytest.approx(x) and m["centroid_y"] == pytest.approx(y)
        expected = {"area_um2": p.area * 0.25, "perimeter_um": p.perimeter * 0.5, "solidity": p.solidity,
                    "eccentricity": p.eccentricity, "major_axis_um": p.axis_major_length * 0.5,
                    "minor_axis_um": p.axis_minor_length * 0.5}
        if with_rgb:
            expected["hematoxylin_od_mean"] = p.intensity_mean
        for name, value in expected.items():
            assert m[name] == pytest.approx(value, abs=6e-5), (p.label, name)


def test_outlines_are_valid_geojson_in_output_coordinates() -> None:
    ids = np.zeros((10, 10), np.int32)
    ids[2:5, 3:7] = 4
    ((ident, measurements, geometry),) = measure_objects(ids, "px", 1.0, Affine.translation(100, 50))
    assert ident == 4 and measurements["area_px2"] == 12
    ring = json.loads(geometry)["coordinates"][0]
    xs, ys = [c[0] for c in ring], [c[1] for c in ring]
    assert (min(xs), max(xs), min(ys), max(ys)) == (103, 107, 52, 55)


def test_an_empty_map_has_no_objects() -> None:
    assert list(measure_objects(np.zeros((5, 5), np.int32), "px", 1.0, Affine.identity())) == []
