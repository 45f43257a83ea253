"""OME-Zarr output: what napari-ome-zarr / ome_zarr.reader find, and that it is the input."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from ome_zarr.format import FormatV04
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Multiscales, Reader
from writers_synthetic import CLASSES, COLORS, pattern

from gigavim.io.writers import write_outputs
from gigavim.io.writers.ome_zarr import LABELS_NAME


def read_nodes(path):
    """The nodes ome_zarr.reader (napari-ome-zarr's engine) finds, by the last path component."""
    nodes = Reader(parse_url(str(path), fmt=FormatV04()))()
    return {str(node.zarr.path).rstrip("/").split("/")[-1]: node for node in nodes}


def test_labels_pyramid_metadata_and_values(tmp_path, slide_map):
    out = tmp_path / "slide.ome.zarr"
    labels = pattern()
    write_outputs(slide_map(labels), [out])

    nodes = read_nodes(out)
    label_node = nodes[LABELS_NAME]
    assert any(isinstance(spec, Label) for spec in label_node.specs)
    levels = label_node.data
    assert [lvl.shape for lvl in levels] == [(700, 600), (350, 300), (175, 150)]
    assert all(lvl.dtype == np.uint8 for lvl in levels)
    np.testing.assert_array_equal(np.asarray(levels[0]), labels)
    # Mode downsampling keeps class ids (no averaged, invented classes) and the big regions.
    level1 = np.asarray(levels[1])
    assert set(np.unique(level1)) <= {0, 1, 2}
    np.testing.assert_array_equal(level1[50:150, 25:125], 1)

    meta = label_node.metadata
    assert meta["color"][1] == pytest.approx([1.0, 0.0, 0.0, 1.0])
    assert meta["color"][2] == pytest.approx([0.0, 200 / 255, 0.0, 1.0])
    assert {v: p["class"] for v, p in meta["properties"].items()} == dict(enumerate(CLASSES))
    assert [a.get("unit") for a in meta["axes"]] == ["micrometer", "micrometer"]
    scales = [t[0]["scale"] for t in meta["coordinateTransformations"]]
    assert scales == [[2.0, 2.0], [4.0, 4.0], [8.0, 8.0]]

    # The parent image the NGFF labels spec asks for is readable and has the same grid.
    root = nodes[out.name]
    assert any(isinstance(spec, Multiscales) for spec in root.specs)
    assert root.data[0].shape == labels.shape

    attrs = zarr.open_group(str(out), mode="r").attrs["gigavim"]
    assert attrs["model"] == {"name": "tiny", "version": "1", "trained": False}
    assert attrs["settings"] == {"tile": 1024, "overlap": 128}
    assert attrs["classes"] == CLASSES and attrs["colors"] == [list(c) for c in COLORS]
    assert attrs["mpp"] == 2.0 and attrs["scale_to_level0"] == 4.0


def test_probabilities_and_raster_scale_in_metres(tmp_path, raster_map):
    labels = raster_map().labels
    rng = np.random.default_rng(0)
    probs = rng.integers(0, 256, (3, *labels.shape), dtype=np.uint8)
    out = tmp_path / "scene.zarr"
    write_outputs(raster_map(probabilities=probs), [out])

    meta = read_nodes(out)[LABELS_NAME].metadata
    assert [a.get("unit") for a in meta["axes"]] == ["meter", "meter"]
    assert meta["coordinateTransformations"][0][0]["scale"] == [300.0, 300.0]
    assert meta["properties"][255] == {"class": "nodata"} and meta["color"][255][3] == 0.0

    prob_node = read_nodes(out / "probabilities")["probabilities"]
    np.testing.assert_array_equal(np.asarray(prob_node.data[0]), probs)
    assert prob_node.metadata["coordinateTransformations"][0][0]["scale"] == [1.0, 300.0, 300.0]
    assert prob_node.metadata["channel_names"] == ["water", "forest", "urban"]
    attrs = zarr.open_group(str(out), mode="r").attrs["gigavim"]
    assert attrs["crs"] == "EPSG:32618" and attrs["probabilities"] == "probabilities"


def test_low_resolution_input_image_is_the_parent_with_proportional_scale(tmp_path, slide_map):
    thumb = np.random.default_rng(1).integers(0, 256, (175, 150, 3), dtype=np.uint8)
    out = tmp_path / "with_image.zarr"
    write_outputs(slide_map(image=thumb), [out])
    root = read_nodes(out)[out.name]
    np.testing.assert_array_equal(np.asarray(root.data[0]), thumb.transpose(2, 0, 1))
    assert root.metadata["coordinateTransformations"][0][0]["scale"] == [1.0, 8.0, 8.0]


def test_metadata_validates_against_the_ngff_04_models(tmp_path, slide_map):
    """ome-zarr-models (ome-zarr's own dependency) checks the NGFF 0.4 schema, field by field."""
    v04 = pytest.importorskip("ome_zarr_models.v04")
    out = tmp_path / "valid.zarr"
    probs = np.zeros((3, 700, 600), np.uint8)
    write_outputs(slide_map(probabilities=probs), [out])
    root = zarr.open_group(str(out), mode="r")
    assert v04.Image.from_zarr(root).labels.attributes.labels == [LABELS_NAME]
    label = v04.ImageLabel.from_zarr(root[f"labels/{LABELS_NAME}"])
    assert [c.rgba for c in label.attributes.image_label.colors] == [(*c, 255) for c in COLORS]
    assert label.attributes.image_label.source.image == "../../"
    channels = v04.Image.from_zarr(root["probabilities"]).attributes.omero.channels
    assert [c.label for c in channels] == CLASSES
