"""Touching objects come out as separate ids; speck removal; the classical baseline."""

import numpy as np

from gigavim.instances.postprocess import (
    haematoxylin_baseline,
    instances_from_foreground,
    instances_from_probabilities,
)


def _two_touching_discs(shape=(40, 60), r=9):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    a = (yy - 20) ** 2 + (xx - 20) ** 2 <= r * r
    b = (yy - 20) ** 2 + (xx - 36) ** 2 <= r * r
    return a, b


def test_distance_watershed_splits_two_touching_discs():
    a, b = _two_touching_discs()
    labels = instances_from_foreground(a | b, min_distance_px=3)
    assert labels.max() == 2
    assert len(np.unique(labels[a & ~b])) == 1 and len(np.unique(labels[b & ~a])) == 1
    assert labels[20, 20] != labels[20, 36]


def test_three_class_probabilities_split_along_the_predicted_boundary():
    a, b = _two_touching_discs()
    fg = a | b
    boundary = fg & ~(np.roll(fg, 1, 0) & np.roll(fg, -1, 0) & np.roll(fg, 1, 1) & np.roll(fg, -1, 1))
    boundary |= a & b
    boundary[:, 27:29] &= fg[:, 27:29]
    boundary[:, 27:29] |= fg[:, 27:29]
    interior = fg & ~boundary
    probs = np.stack([~fg, interior, boundary]).astype(np.float32)
    labels = instances_from_probabilities(probs)
    assert labels.max() == 2
    assert labels[20, 20] != labels[20, 36]
    assert (labels > 0).sum() == fg.sum()  # the flood fills the boundary pixels too


def test_min_area_drops_specks_and_ids_are_sequential():
    mask = np.zeros((30, 30), bool)
    mask[2:12, 2:12] = True
    mask[20, 20] = True
    labels = instances_from_foreground(mask, min_area_px=5)
    assert sorted(np.unique(labels)) == [0, 1]


def test_haematoxylin_baseline_finds_dark_purple_blobs():
    rng = np.random.default_rng(0)
    img = np.full((64, 64, 3), (235, 200, 220), np.uint8)  # pale eosin background
    yy, xx = np.mgrid[:64, :64]
    for cy, cx in [(16, 16), (16, 44), (44, 30)]:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 36] = (70, 40, 140)  # haematoxylin purple
    img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    labels = haematoxylin_baseline(img, mpp=0.5, min_area_um2=5)
    assert labels.max() == 3


def _touching_nuclei(seed: int) -> np.ndarray:
    """(3, H, W) background/interior/boundary probabilities of random, often touching discs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:160, 0:200]
    interior, boundary = np.zeros((160, 200)), np.zeros((160, 200))
    for _ in range(60):
        cy, cx, r = rng.integers(0, 160), rng.integers(0, 200), rng.integers(3, 10)
        d = np.hypot(yy - cy, xx - cx)
        interior = np.maximum(interior, (d < r) * rng.uniform(0.5, 1))
        boundary = np.maximum(boundary, (np.abs(d - r) < 1.5) * rng.uniform(0.2, 0.9))
    probs = np.stack([np.zeros_like(interior), interior * (1 - boundary), 0.6 * boundary])
    probs[0] = 1 - probs[1] - probs[2]
    return np.clip(probs + rng.normal(0, 0.05, probs.shape), 0, 1).astype(np.float32)


def test_distance_markers_per_component_are_the_whole_maps_h_maxima():
    """The markers are found component by component (fast); they must be exactly the h-maxima
    of the whole relief, so the ids equal a flood from whole-map markers."""
    from scipy import ndimage as ndi
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    from gigavim.instances.postprocess import (
        FOUR_CONNECTED,
        drop_small,
        instances_from_distance,
        probability_foreground,
    )

    for seed, (h, w) in [(0, (0.5, 1.0)), (1, (0.75, 1.5)), (2, (0.25, 1.0))]:
        probs = _touching_nuclei(seed)
        foreground = probability_foreground(probs)
        distance = ndi.distance_transform_edt(np.pad(foreground, 1))[1:-1, 1:-1]
        relief = distance * np.clip(1 - w * probs[2], 0, 1)
        relief[~foreground] = -(h + 1)
        markers = ndi.label(h_maxima(relief, h, footprint=FOUR_CONNECTED).astype(bool) & foreground)[0]
        components = ndi.label(foreground)[0]
        expected = np.zeros(foreground.shape, np.int32)
        for index, box in enumerate(ndi.find_objects(components), start=1):
            mine = components[box] == index
            seeds = np.where(mine, markers[box], 0)
            if seeds.any():
                expected[box][mine] = watershed(-relief[box], markers=seeds, mask=mine)[mine]
        got = instances_from_distance(probs, marker_height_px=h, boundary_weight=w)
        assert got.max() > 20
        np.testing.assert_array_equal(got, drop_small(expected, 1))
