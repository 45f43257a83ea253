"""On EPSG:4326 a pixel is about twice as tall as wide on the ground at 60° N: the image layer
(read from the scene) and the labels layer (read from gigavim's OME-Zarr) must both use per-axis
sizes, so the overlay covers the image exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from engine.fakes import tiny_bundle
from gigavim.napari._reader import image_layers, zarr_layers
from rasterio.transform import from_origin

from gigavim.engine import segment
from gigavim.io.synthetic import write_geotiff


def _extent(data, kwargs) -> np.ndarray:
    """(y, x) world size of a layer: level-0 shape × scale."""
    level0 = data[0] if isinstance(data, list) else data
    return np.array(level0.shape[:2]) * np.array(kwargs["scale"])


@pytest.mark.parametrize("gsd_factor", [1.0, 2.0])
def test_labels_overlay_covers_the_image_on_a_geographic_scene(tmp_path: Path, gsd_factor: float) -> None:
    rng = np.random.default_rng(0)
    scene = write_geotiff(tmp_path / "wgs84.tif", rng.integers(0, 255, (96, 128, 3), np.uint8),
                          crs="EPSG:4326", transform=from_origin(10.0, 60.05, 0.0005, 0.0005))
    [(image, image_kw, _)] = image_layers(scene)
    y, x = image_kw["scale"]
    assert y / x == pytest.approx(2.0, rel=0.01)  # 55.7 m tall, 27.9 m wide: not square
    out = tmp_path / "seg.ome.zarr"
    model = tiny_bundle(tile=64, overlap=16)
    gsd = None if gsd_factor == 1 else gsd_factor * (x * y) ** 0.5
    result = segment(scene, [out], model=model, gsd=gsd)
    [(labels, labels_kw, kind)] = [layer for layer in zarr_layers(out, image=False) if layer[2] == "labels"]
    level0 = labels[0] if isinstance(labels, list) else labels
    assert kind == "labels" and tuple(level0.shape) == tuple(result.shape)
    label_pixel = np.array(labels_kw["scale"])
    # same world extent (to a label pixel's rounding), same aspect of pixels
    np.testing.assert_allclose(_extent(labels, labels_kw), _extent(image, image_kw), atol=label_pixel.max())
    assert label_pixel[0] / label_pixel[1] == pytest.approx(y / x, rel=0.02)
    # both layers put their top-left edge at world 0
    assert np.array(labels_kw["translate"]) == pytest.approx(label_pixel / 2)
    assert np.array(image_kw["translate"]) == pytest.approx(np.array([y, x]) / 2)
