"""segment(with_image=True): the OME-Zarr's parent image is the source's pixels on the label grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import zarr
from ome_zarr.format import FormatV04
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from rasterio.transform import Affine

from gigavim.engine import segment

from .fakes import ArraySource, tiny_bundle


def test_a_raster_at_native_resolution_is_its_own_image_under_the_labels(tmp_path: Path) -> None:
    """uint16 bands stay uint16 and equal the file; nodata pixels become 0; levels match."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(1, 5000, (3, 301, 517), dtype=np.uint16)
    pixels[:, :20] = 0  # nodata collar
    scene = tmp_path / "scene.tif"
    with rasterio.open(scene, "w", driver="GTiff", width=517, height=301, count=3, dtype="uint16",
                       nodata=0, crs="EPSG:32633", transform=Affine(2, 0, 5e5, 0, -3, 5e6)) as ds:
        ds.write(pixels)
    out = tmp_path / "out.ome.zarr"
    segment(scene, [out], model=tiny_bundle(), with_image=True)
    root = zarr.open_group(str(out), mode="r")
    assert root.attrs["multiscales"][0]["name"] == "image"
    np.testing.assert_array_equal(root["0"][:], pixels)
    labels = root["labels/segmentation"]
    image_sets = root.attrs["multiscales"][0]["datasets"]
    label_sets = labels.attrs["multiscales"][0]["datasets"]
    assert len(image_sets) == len(label_sets) == 3
    for im, lab in zip(image_sets, label_sets, strict=True):
        assert root[im["path"]].shape[1:] == labels[lab["path"]].shape
        assert [t["scale"][-2:] if "scale" in t else t["translation"][-2:]
                for t in im["coordinateTransformations"]] == [
            t.get("scale", t.get("translation")) for t in lab["coordinateTransformations"]]
    nodes = list(Reader(parse_url(str(out), fmt=FormatV04()))())
    names = [str(n.zarr.path).rstrip("/").split("/")[-1] for n in nodes]
    assert names[0] == "out.ome.zarr" and "segmentation" in names
    np.testing.assert_array_equal(np.asarray(nodes[0].data[0]), pixels)


def test_a_slide_read_below_level_0_gives_the_resampled_pixels_the_model_saw(tmp_path: Path) -> None:
    base = np.random.default_rng(4).integers(0, 256, (256, 384, 3), dtype=np.uint8)
    src = ArraySource([base], mpp=0.5)
    out = tmp_path / "slide.zarr"
    segment(src, [out], model=tiny_bundle(), mpp=1.0, with_image=True)
    image = zarr.open_group(str(out), mode="r")["0"][:]
    expected = np.rint(base.reshape(128, 2, 192, 2, 3).astype(np.float32).mean(axis=(1, 3)))
    np.testing.assert_array_equal(image, expected.astype(np.uint8).transpose(2, 0, 1))
