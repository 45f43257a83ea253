"""Instance labels → background / interior / boundary classes on the working grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from skimage.io import imsave

from gigavim import open_image
from gigavim.engine.plan import resolve_resolution
from gigavim.train.instance_labels import (
    BOUNDARY,
    INTERIOR,
    boundary_radius_px,
    interior_boundary_classes,
    load_instance_map,
)
from gigavim.train.labels import load_label_map
from gigavim.train.metrics import IGNORE_LABEL


def test_touching_objects_get_a_boundary_on_both_sides_of_the_contact() -> None:
    ids = np.zeros((8, 12), np.int32)
    ids[1:7, 1:6] = 1
    ids[1:7, 6:11] = 2  # touches object 1 along column 5|6
    ids[0, 0] = -1
    cls = interior_boundary_classes(ids, 1)
    assert cls[0, 0] == IGNORE_LABEL
    assert (cls[ids == 0] == 0).all()
    assert (cls[2:6, 5] == BOUNDARY).all() and (cls[2:6, 6] == BOUNDARY).all()  # the contact
    assert (cls[2:6, 2:5] == INTERIOR).all() and (cls[2:6, 7:10] == INTERIOR).all()
    assert (cls[1, 1:11] == BOUNDARY).all()  # each object's outer ring
    # the interiors are apart: the two objects' cores do not touch
    assert not ((cls[:, 5] == INTERIOR) | (cls[:, 6] == INTERIOR)).any()


def test_the_image_edge_is_not_a_boundary() -> None:
    ids = np.ones((5, 5), np.int32)
    assert (interior_boundary_classes(ids, 1) == INTERIOR).all()


def test_the_boundary_width_is_in_micrometres() -> None:
    assert boundary_radius_px(0.5, 0.5) == 1
    assert boundary_radius_px(0.5, 0.25) == 2
    assert boundary_radius_px(0.1, 0.5) == 1  # at least one pixel
    ids = np.zeros((20, 20), np.int32)
    ids[2:18, 2:18] = 1
    cls = interior_boundary_classes(ids, 2)
    assert (cls[9, 2:4] == BOUNDARY).all() and cls[9, 4] == INTERIOR


def _scene(scale: int) -> tuple[np.ndarray, np.ndarray]:
    """A 40-µm square field with two touching nuclei, at ``scale`` pixels per µm."""
    n = 40 * scale
    ids = np.zeros((n, n), np.uint16)
    ids[8 * scale:24 * scale, 4 * scale:16 * scale] = 1
    ids[8 * scale:24 * scale, 16 * scale:30 * scale] = 2
    rgb = np.full((n, n, 3), 230, np.uint8)
    rgb[ids > 0] = (80, 40, 120)
    return rgb, ids


def test_20x_and_40x_tiles_give_the_same_classes_at_the_working_resolution(tmp_path: Path) -> None:
    classes = []
    for scale, mpp in ((2, 0.5), (4, 0.25)):  # the same field at 20x and at 40x
        rgb, ids = _scene(scale)
        imsave(tmp_path / f"i{scale}.png", rgb, check_contrast=False)
        imsave(tmp_path / f"l{scale}.png", ids, check_contrast=False)
        with open_image(tmp_path / f"i{scale}.png") as src:
            src.mpp = mpp
            res = resolve_resolution(src, mpp=0.5)
            classes.append(load_label_map(src, tmp_path / f"l{scale}.png", resolution=res,
                                          mode="boundary", boundary_um=0.5))
    assert classes[0].shape == classes[1].shape == (80, 80)  # 40 µm at 0.5 µm/px
    np.testing.assert_array_equal(classes[0], classes[1])
    assert set(np.unique(classes[0])) == {0, INTERIOR, BOUNDARY}
    assert (classes[0][20:44, 31:33] == BOUNDARY).all()  # the contact between the two nuclei
    assert (classes[0][20:44, 30] == INTERIOR).all() and (classes[0][20:44, 33] == INTERIOR).all()


def test_geojson_polygons_become_one_id_each(tmp_path: Path) -> None:
    imsave(tmp_path / "img.png", np.zeros((30, 30, 3), np.uint8), check_contrast=False)
    square = [[[2, 2], [12, 2], [12, 12], [2, 12], [2, 2]]]
    other = [[[12, 2], [25, 2], [25, 12], [12, 12], [12, 2]]]
    features = [{"type": "Feature", "properties": {"classification": {"name": "nucleus"}},
                 "geometry": {"type": "Polygon", "coordinates": c}} for c in (square, other)]
    (tmp_path / "ann.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with open_image(tmp_path / "img.png") as src:
        ids = load_instance_map(src, tmp_path / "ann.geojson", resolution=resolve_resolution(src))
    assert ids.dtype == np.int32
    assert sorted(np.unique(ids)) == [0, 1, 2]
    assert (ids[5, 3:12] == 1).all() and (ids[5, 13:25] == 2).all()
