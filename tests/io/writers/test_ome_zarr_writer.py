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
    assert meta["color"][0][3] == 0.0  # background: transparent, no dark veil over the image
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
    stored = zarr.open_group(str(out), mode="r")
    for level, datum in enumerate(root.data):  # without --with-image: the class ids, level by level
        np.testing.assert_array_equal(np.asarray(datum), stored[f"labels/{LABELS_NAME}/{level}"][:])

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

    # RGB.byte.tif's pixels are 300.0418 m tall and 300.0379 m wide (EPSG:32618, metres).
    t = raster_map().transform
    meta = read_nodes(out)[LABELS_NAME].metadata
    assert [a.get("unit") for a in meta["axes"]] == ["meter", "meter"]
    assert meta["coordinateTransformations"][0][0]["scale"] == pytest.approx([-t.e, t.a], rel=1e-12)
    assert meta["properties"][255] == {"class": "nodata"} and meta["color"][255][3] == 0.0

    prob_node = read_nodes(out / "probabilities")["probabilities"]
    np.testing.assert_array_equal(np.asarray(prob_node.data[0]), probs)
    assert prob_node.metadata["coordinateTransformations"][0][0]["scale"] == pytest.approx(
        [1.0, -t.e, t.a], rel=1e-12)
    assert prob_node.metadata["channel_names"] == ["water", "forest", "urban"]
    attrs = zarr.open_group(str(out), mode="r").attrs["gigavim"]
    assert attrs["crs"] == "EPSG:32618" and attrs["probabilities"] == "probabilities"


def assert_labels_match_their_image(root: zarr.Group) -> None:
    """NGFF 0.4 labels rules: as many levels as the parent image, each level the same (y, x)
    size and the same scale and translation on the spatial axes."""
    image = root.attrs["multiscales"][0]["datasets"]
    labels_group = root[f"labels/{LABELS_NAME}"]
    labels = labels_group.attrs["multiscales"][0]["datasets"]
    assert len(labels) == len(image) > 1
    for im, lab in zip(image, labels, strict=True):
        assert root[im["path"]].shape[-2:] == labels_group[lab["path"]].shape
        for t_im, t_lab in zip(im["coordinateTransformations"], lab["coordinateTransformations"],
                               strict=True):
            assert t_im["type"] == t_lab["type"]
            assert t_im[t_im["type"]][-2:] == t_lab[t_lab["type"]]


def test_with_image_the_source_pixels_are_the_parent_level_by_level(tmp_path, slide_map):
    """``--with-image``: the slide's own pixels on the label grid, as many levels as the labels,
    read back by ome_zarr.reader as the image with the labels as its child."""
    v04 = pytest.importorskip("ome_zarr_models.v04")
    picture = np.random.default_rng(1).integers(0, 256, (700, 600, 3), dtype=np.uint8)
    out = tmp_path / "with_image.zarr"
    write_outputs(slide_map(image=picture), [out])
    nodes = read_nodes(out)
    root = nodes[out.name]
    np.testing.assert_array_equal(np.asarray(root.data[0]), picture.transpose(2, 0, 1))
    assert [lvl.shape[1:] for lvl in root.data] == [lvl.shape for lvl in nodes[LABELS_NAME].data]
    # level 1 is the rounded mean of each 2x2 block
    mean = picture.reshape(350, 2, 300, 2, 3).astype(np.float32).mean(axis=(1, 3))
    np.testing.assert_array_equal(np.asarray(root.data[1]), np.rint(mean).astype(np.uint8).transpose(2, 0, 1))
    group = zarr.open_group(str(out), mode="r")
    assert_labels_match_their_image(group)
    image = v04.Image.from_zarr(group)
    assert [c.label for c in image.attributes.omero.channels] == ["red", "green", "blue"]
    assert image.labels.attributes.labels == [LABELS_NAME]


def test_an_image_off_the_label_grid_is_refused(tmp_path, slide_map):
    thumb = np.zeros((175, 150, 3), np.uint8)
    with pytest.raises(ValueError, match="not on the label grid"):
        write_outputs(slide_map(image=thumb), [tmp_path / "thumb.zarr"])
    assert not list(tmp_path.glob("*thumb.zarr*"))


def test_levels_are_translated_by_half_their_extra_size_and_scales_carry_no_float_noise(
        tmp_path, slide_map):
    """0.1 + 0.2 µm/px is 0.30000000000000004 in floats; the file says 0.3, 0.6, 1.2 and the
    centre of level-k pixel 0 at (2**k − 1)/2 working pixels."""
    out = tmp_path / "noisy.zarr"
    write_outputs(slide_map(mpp=0.1 + 0.2), [out])
    group = zarr.open_group(str(out), mode="r")
    assert_labels_match_their_image(group)
    datasets = group[f"labels/{LABELS_NAME}"].attrs["multiscales"][0]["datasets"]
    scales = [d["coordinateTransformations"][0]["scale"] for d in datasets]
    assert scales == [[0.3, 0.3], [0.6, 0.6], [1.2, 1.2]]
    assert [d["coordinateTransformations"][1]["translation"] for d in datasets] == [
        [0.0, 0.0], [0.15, 0.15], [0.45, 0.45]]
    assert group.attrs["gigavim"]["pixel_size_yx"] == [0.3, 0.3]


def test_metadata_validates_against_the_ngff_04_models(tmp_path, slide_map):
    """ome-zarr-models (ome-zarr's own dependency) checks the NGFF 0.4 schema, field by field."""
    v04 = pytest.importorskip("ome_zarr_models.v04")
    out = tmp_path / "valid.zarr"
    probs = np.zeros((3, 700, 600), np.uint8)
    write_outputs(slide_map(probabilities=probs), [out])
    root = zarr.open_group(str(out), mode="r")
    assert v04.Image.from_zarr(root).labels.attributes.labels == [LABELS_NAME]
    label = v04.ImageLabel.from_zarr(root[f"labels/{LABELS_NAME}"])
    assert [c.rgba for c in label.attributes.image_label.colors] == [
        (*c, 0 if name == "background" else 255) for name, c in zip(CLASSES, COLORS, strict=True)]
    assert label.attributes.image_label.source.image == "../../"
    channels = v04.Image.from_zarr(root["probabilities"]).attributes.omero.channels
    assert [c.label for c in channels] == CLASSES


def _scales(multiscale: dict) -> list[list[float]]:
    return [d["coordinateTransformations"][0]["scale"] for d in multiscale["datasets"]]


def test_non_square_raster_pixels_keep_their_own_y_and_x_sizes(tmp_path, slide_map):
    """A 3 m (y) × 2 m (x) grid: every scale is [3·2**k, 2·2**k], not √6 on both axes."""
    from rasterio.transform import Affine

    height, width = 301, 517
    checker = ((np.arange(height)[:, None] // 50 + np.arange(width)[None] // 50) % 3).astype(np.uint8)
    label_map = slide_map(checker, source_kind="raster", mpp=None, gsd_m=6**0.5,
                          crs="EPSG:32633", transform=Affine(2, 0, 500_000, 0, -3, 5_000_000),
                          probabilities=np.zeros((3, height, width), np.uint8),
                          image=np.arange(height * width * 4, dtype=np.uint16).reshape(height, width, 4))
    out = tmp_path / "scene.zarr"
    write_outputs(label_map, [out])
    root = zarr.open_group(str(out), mode="r")
    labels = root[f"labels/{LABELS_NAME}"].attrs["multiscales"][0]
    assert [a["unit"] for a in labels["axes"]] == ["meter", "meter"]
    assert _scales(labels) == [[3.0 * 2**k, 2.0 * 2**k] for k in range(3)]
    probs = root["probabilities"].attrs["multiscales"][0]
    assert _scales(probs) == [[1.0, 3.0 * 2**k, 2.0 * 2**k] for k in range(3)]
    # The parent image (4 uint16 bands, kept as they are) shares the labels' grid; its contrast
    # windows come from the data, not the uint16 range.
    image = root.attrs["multiscales"][0]
    assert _scales(image) == [[1.0, 3.0 * 2**k, 2.0 * 2**k] for k in range(3)]
    assert root["0"].dtype == np.uint16 and root["0"].shape == (4, height, width)
    windows = [c["window"] for c in root.attrs["omero"]["channels"]]
    assert [c["label"] for c in root.attrs["omero"]["channels"]] == [f"band {i}" for i in range(1, 5)]
    assert all(0 <= w["min"] <= w["start"] < w["end"] <= w["max"] <= height * width * 4 for w in windows)
    assert_labels_match_their_image(root)
    assert root.attrs["gigavim"]["pixel_size_yx"] == [3.0, 2.0]


def test_odd_sized_levels_have_exact_power_of_two_scales(tmp_path, slide_map):
    """Level k of a 301 × 517 map: ceil(n / 2**k) pixels of exactly 2**k working pixels each, so
    the last (odd) row and column land where they are in level 0, not stretched to fit."""
    height, width, mpp = 301, 517, 0.5
    labels = np.zeros((height, width), np.uint8)
    labels[-1, :] = 2  # the odd last row
    labels[:, -1] = 1  # the odd last column
    out = tmp_path / "odd.zarr"
    write_outputs(slide_map(labels, mpp=mpp), [out])
    group = zarr.open_group(str(out), mode="r")[f"labels/{LABELS_NAME}"]
    multiscale = group.attrs["multiscales"][0]
    for k, scale in enumerate(_scales(multiscale)):
        level = group[str(k)][:]
        assert scale == [mpp * 2**k, mpp * 2**k]
        assert level.shape == (-(-height // 2**k), -(-width // 2**k))
        # Physical extent: the map's, plus less than one level-k pixel of edge padding.
        for n, size, step in zip(level.shape, (height, width), scale, strict=True):
            assert size * mpp <= n * step < size * mpp + step
        # The last working row (y = 300·mpp) is in level k's last row, at the same place.
        last_row = level.shape[0] - 1
        assert last_row * scale[0] <= (height - 1) * mpp < (last_row + 1) * scale[0]
        assert (level[last_row, :-1] == 2).all() and (level[:-1, -1] == 1).all()
        assert (level[:-1, :-1] == 0).all()


def _chunk_files(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_a_small_map_written_in_memory_equals_the_chunked_dask_writer(tmp_path, raster_map,
                                                                       monkeypatch):
    """Maps up to IN_MEMORY_BYTES skip dask; every level's chunks must be the same bytes as the
    chunk-by-chunk writer's (odd sizes padded alike, labels by mode, probabilities by mean)."""
    from gigavim.io.writers import ome_zarr

    labels = pattern(1301, 1099)  # odd sides, more than one 1024² chunk
    probs = np.random.default_rng(1).integers(0, 256, (3, *labels.shape), dtype=np.uint8)
    written = {}
    for name, budget in (("memory", ome_zarr.IN_MEMORY_BYTES), ("dask", 0)):
        monkeypatch.setattr(ome_zarr, "IN_MEMORY_BYTES", budget)
        out = tmp_path / f"{name}.zarr"
        write_outputs(raster_map(labels=labels, probabilities=probs), [out])
        written[name] = _chunk_files(out)
    assert len(written["memory"]) > 10 and any("labels/segmentation/3/" in k for k in written["memory"])
    assert written["memory"] == written["dask"]



@pytest.mark.parametrize("chunk", [1024, 128])
def test_the_banded_pyramid_writes_the_files_of_the_level_by_level_writer(tmp_path, raster_map,
                                                                          monkeypatch, chunk):
    """Large maps are written in one pass of chunk-row bands, every level at once; the files must
    be the level-by-level dask writer's, byte for byte (odd sides, partial last bands, levels that
    gather two halved bands into one chunk row, labels by mode, probabilities by mean)."""
    from gigavim.io.writers import ome_zarr, pyramid_bands

    labels = pattern(1301, 1099)
    probs = np.random.default_rng(2).integers(0, 256, (3, *labels.shape), dtype=np.uint8)
    monkeypatch.setattr(ome_zarr, "CHUNK", chunk)
    monkeypatch.setattr(ome_zarr, "IN_MEMORY_BYTES", 0)
    # the engine's maps are zarr arrays in its work dir: read band by band without dask
    stored = []
    for name, a in (("labels", labels), ("probs", probs)):
        stored.append(zarr.create_array(tmp_path / f"{name}-in.zarr", shape=a.shape, dtype="uint8",
                                        chunks=(*a.shape[:-2], 300, 700), zarr_format=2))
        stored[-1][...] = a
    written = {}
    budget = pyramid_bands.BAND_BYTES
    for name, band_budget, maps in (("bands", budget, (labels, probs)), ("bands-zarr", budget, stored),
                                    ("dask", 0, (labels, probs))):
        monkeypatch.setattr(pyramid_bands, "BAND_BYTES", band_budget)
        out = tmp_path / f"{name}.zarr"
        write_outputs(raster_map(labels=maps[0], probabilities=maps[1]), [out])
        written[name] = _chunk_files(out)
    assert any("labels/segmentation/3/" in k for k in written["bands"])
    assert written["bands"] == written["dask"] == written["bands-zarr"]
