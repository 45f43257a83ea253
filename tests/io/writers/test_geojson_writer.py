"""GeoJSON output: one valid polygon feature per connected region, in the right coordinates."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from shapely.geometry import shape
from skimage.measure import label as connected_components
from writers_synthetic import CLASSES, COLORS, pattern

from gigavim.io.writers import geojson as geojson_writer
from gigavim.io.writers import write_outputs
from gigavim.io.writers.base import LabelMap


def region_counts(labels: np.ndarray, skip: set[int]) -> dict[int, int]:
    """8-connected regions per class, counted by scikit-image (the reference)."""
    return {
        int(v): int(connected_components(labels == v, connectivity=2).max())
        for v in np.unique(labels)
        if int(v) not in skip
    }


def load(path):
    collection = json.loads(path.read_text())
    assert collection["type"] == "FeatureCollection"
    return collection


def by_class(features) -> dict[int, list]:
    grouped: dict[int, list] = {}
    for feature in features:
        grouped.setdefault(feature["properties"]["class_id"], []).append(shape(feature["geometry"]))
    return grouped


def test_slide_features_follow_qupath_convention_in_level0_pixels(tmp_path, slide_map, monkeypatch):
    # Small bands (64 rows) so regions cross many band edges and must be merged back.
    monkeypatch.setattr(geojson_writer, "BAND_PIXELS", 64 * 600)
    labels = pattern()
    out = tmp_path / "slide.geojson"
    write_outputs(slide_map(labels), [out])
    collection = load(out)
    assert "crs" not in collection
    assert collection["gigavim"]["model"]["name"] == "tiny"

    features = collection["features"]
    for feature in features:
        props = feature["properties"]
        assert props["objectType"] == "annotation"
        cid = props["class_id"]
        assert props["classification"] == {"name": CLASSES[cid], "color": list(COLORS[cid])}
        assert props["class"] == CLASSES[cid]  # flat: a column in QGIS's attribute table
    grouped = by_class(features)
    assert 0 not in grouped  # background is not exported
    assert {c: len(g) for c, g in grouped.items()} == region_counts(labels, {0})
    for cid, geoms in grouped.items():
        assert all(g.is_valid for g in geoms)
        level0_area = sum(g.area for g in geoms)
        assert level0_area == (labels == cid).sum() * 4.0**2  # pixel-exact outlines
        for g in geoms:  # a point inside each region, scaled back to working pixels, has its class
            x, y = g.representative_point().coords[0]
            assert labels[int(y / 4.0), int(x / 4.0)] == cid

    block = min(grouped[1], key=lambda g: abs(g.area - 200 * 200 * 16))
    assert block.bounds == pytest.approx((50 * 4, 100 * 4, 250 * 4, 300 * 4))


def test_raster_features_in_the_input_crs(tmp_path, raster_map):
    label_map = raster_map()
    labels = np.asarray(label_map.labels)
    out = tmp_path / "scene.geojson"
    write_outputs(label_map, [out])
    collection = load(out)
    assert collection["crs"] == {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32618"}}
    grouped = by_class(collection["features"])
    assert 255 not in grouped  # nodata
    assert 0 in grouped  # "water" is a real class for this model, not background
    assert {c: len(g) for c, g in grouped.items()} == region_counts(labels, {255})
    to_pixel = ~label_map.transform
    for cid, geoms in grouped.items():
        assert sum(g.area for g in geoms) == pytest.approx((labels == cid).sum() * 300.0**2, rel=0.02)
        for g in geoms:
            col, row = to_pixel @ g.representative_point().coords[0]
            assert labels[int(row), int(col)] == cid
            for polygon in getattr(g, "geoms", [g]):  # RFC 7946: exterior rings counter-clockwise
                assert polygon.exterior.is_ccw


@settings(max_examples=40, deadline=None)
@given(
    labels=arrays(np.uint8, st.tuples(st.integers(1, 24), st.integers(1, 24)), elements=st.integers(0, 3)),
    rows_per_band=st.integers(1, 9),
)
def test_band_edges_never_split_a_region(labels, rows_per_band):
    label_map = LabelMap(
        labels=labels, classes=["background", "a", "b", "c"], colors=[(0, 0, 0)] * 4,
        source_path="x", source_kind="slide",
    )
    found = list(geojson_writer.regions(label_map, rows_per_band=rows_per_band))
    counts = {c: sum(1 for v, _ in found if v == c) for c in {v for v, _ in found}}
    assert counts == region_counts(labels, {0})
    for cid in range(1, 4):
        geoms = [g for v, g in found if v == cid]
        assert all(g.is_valid for g in geoms)
        union = shapely.unary_union(geoms) if geoms else shapely.Polygon()
        assert sum(g.area for g in geoms) == union.area == (labels == cid).sum()  # no overlaps, exact


def test_neighbouring_classes_share_their_edges_without_slivers(tmp_path, raster_map):
    """Every class is written (water is a real class here), touching each other along pixel edges:
    no two features overlap and together they cover exactly the data pixels."""
    label_map = raster_map()
    labels = np.asarray(label_map.labels)
    out = tmp_path / "scene.geojson"
    write_outputs(label_map, [out])
    geoms = [shape(f["geometry"]) for f in load(out)["features"]]
    left, right = shapely.STRtree(geoms).query(geoms, predicate="overlaps")
    assert not [(i, j) for i, j in zip(left, right, strict=True) if i != j]
    pixel_area = abs(label_map.transform.a * label_map.transform.e)
    data_area = (labels != 255).sum() * pixel_area
    assert sum(g.area for g in geoms) == pytest.approx(data_area, rel=1e-9)
    assert shapely.unary_union(geoms).area == pytest.approx(data_area, rel=1e-9)


def _lonlat_map(slide_map, crs: str) -> LabelMap:
    labels = np.zeros((40, 60), np.uint8)
    labels[10:20, 5:25] = 1
    return slide_map(labels, source_kind="raster", mpp=None, gsd_m=1000.0, crs=crs,
                     transform=Affine(0.01, 0, -75.0, 0, -0.01, 45.0))


def _lonlat_block(tmp_path, slide_map, crs: str):
    """The class-1 polygon of :func:`_lonlat_map` written as GeoJSON: RFC 7946 (no ``crs``)."""
    out = tmp_path / "lonlat.geojson"
    write_outputs(_lonlat_map(slide_map, crs), [out])
    collection = load(out)
    assert "crs" not in collection
    [block] = by_class(collection["features"])[1]
    return block


def test_lonlat_rasters_are_rfc7946_without_a_crs_member(tmp_path, slide_map):
    block = _lonlat_block(tmp_path, slide_map, "EPSG:4326")
    assert block.bounds == pytest.approx((-74.95, 44.8, -74.75, 44.9))  # (lon, lat), x first


def test_another_datum_is_reprojected_to_crs84(tmp_path, slide_map):
    from rasterio.warp import transform

    block = _lonlat_block(tmp_path, slide_map, "EPSG:4267")
    expected = tuple(v[0] for v in transform("EPSG:4267", "EPSG:4326", [-74.95], [44.9]))
    assert (-74.95, 44.9) != pytest.approx(expected, abs=1e-5)  # NAD27 → WGS 84 moves it
    corner = min(block.exterior.coords, key=lambda c: np.hypot(c[0] - expected[0], c[1] - expected[1]))
    assert corner == pytest.approx(expected, abs=1e-9)


def test_output_transform_is_identity_scaled_for_slides(slide_map):
    assert geojson_writer.output_transform(slide_map()) == Affine.scale(4.0)
