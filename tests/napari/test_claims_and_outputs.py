"""What the plugin claims (only what needs gigavim), where the widget writes, and saving edits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from gigavim.napari._reader import get_image_reader, zarr_layers
from gigavim.napari._segment_job import default_output, resolve_output, segment_outcome
from gigavim.napari._writer import write_labels
from label_outputs import CLASSES, MPP, class_map
from PIL import Image

from gigavim.errors import GigavimError, OutputError


def test_plain_pictures_are_left_to_napari_and_slides_and_georasters_are_claimed(
        real_data: Path, tmp_path: Path) -> None:
    png, tif = tmp_path / "photo.png", tmp_path / "plain.tif"
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(png)
    tifffile.imwrite(tif, np.zeros((32, 48), np.uint16))
    assert get_image_reader(str(png)) is None and get_image_reader(str(tif)) is None
    for claimed in ("wsi/small.svs", "wsi/boxes.tiff", "geo/RGB.byte.tif"):
        assert get_image_reader(str(real_data / claimed)) is not None, claimed


def _npe2_plugins():
    """npe2's plugin manager as napari uses it (entry points discovered: gigavim + builtins)."""
    npe2 = pytest.importorskip("npe2")
    pm = npe2.PluginManager.instance()
    pm.discover()
    if "napari" not in pm._manifests:  # napari's builtin reader ships with napari
        pytest.skip("napari's builtin reader is not installed")
    return npe2, pm


def _offered(pm, path: Path) -> set[str]:
    """The plugins napari offers for ``path``; more than one makes napari ask the user."""
    return {reader.plugin_name for reader in pm.iter_compatible_readers([str(path)])}


def test_napari_asks_for_no_plain_picture_and_reads_slides_rasters_outputs_with_gigavim(
        real_data: Path, tmp_path: Path, label_zarr: Path) -> None:
    npe2, pm = _npe2_plugins()
    png, tif, fake_ome = tmp_path / "photo.png", tmp_path / "plain.tif", tmp_path / "plain.ome.tif"
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(png)
    tifffile.imwrite(tif, np.zeros((32, 48), np.uint16))
    tifffile.imwrite(fake_ome, np.zeros((32, 48), np.uint16))
    for plain in (png, tif):  # one reader only: napari opens it without a dialog
        assert _offered(pm, plain) == {"napari"}, plain
        [layer] = npe2.read([str(plain)], stack=False)  # napari's (data, ...) tuple
        assert np.asarray(layer[0]).shape[:2] == (32, 48)
    # a name gigavim claims but a plain picture inside: gigavim declines, the builtin reads it
    assert "gigavim" in _offered(pm, fake_ome)
    [_], reader = npe2.read_get_reader([str(fake_ome)], stack=False)
    assert reader.plugin_name == "napari"
    geotiff = tmp_path / "scene.cog.tif"
    geotiff.symlink_to(real_data / "geo" / "RGB.byte.tif")
    for path, unit in ((real_data / "wsi" / "small.svs", "micrometer"), (geotiff, "meter")):
        assert "gigavim" in _offered(pm, path), path
        [(_, kwargs, layer_type)] = npe2.read([str(path)], stack=False, plugin_name="gigavim")
        assert layer_type == "image" and kwargs["metadata"]["path"] == str(path)
        assert kwargs["scale"][0] != 1.0 and kwargs.get("units", (unit,))[0] == unit
    assert "gigavim" in _offered(pm, label_zarr)
    layers = npe2.read([str(label_zarr)], stack=False, plugin_name="gigavim")
    assert [layer_type for *_, layer_type in layers][-1] == "labels"


def test_the_manifest_offers_no_reader_for_names_napari_reads_as_plain_pictures() -> None:
    npe2 = pytest.importorskip("npe2")
    import gigavim.napari

    manifest = npe2.PluginManifest.from_file(Path(gigavim.napari.__file__).with_name("napari.yaml"))
    patterns = {p for r in manifest.contributions.readers for p in r.filename_patterns}
    assert not patterns & {"*.png", "*.jpg", "*.jpeg", "*.tif", "*.tiff", "*.jp2", "*.dcm", "*.img"}
    assert {"*.svs", "*.ome.tif", "*.vrt", "*.zarr"} <= patterns
    [writer] = manifest.contributions.writers
    assert writer.layer_types == ["labels"] and ".geojson" in writer.filename_extensions


def test_the_default_output_is_absolute_beside_the_input(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    source = Path("slides") / "case 7.svs"
    expected = (tmp_path / "slides" / "case 7.segmentation.ome.zarr")
    assert default_output(source) == expected and expected.is_absolute()
    assert resolve_output(source, Path()) == expected
    assert resolve_output(source, "mine.ome.zarr") == tmp_path / "slides" / "mine.ome.zarr"
    assert resolve_output(source, tmp_path / "elsewhere.zarr") == tmp_path / "elsewhere.zarr"


def test_a_user_error_is_a_result_of_the_job_not_an_exception(tmp_path: Path) -> None:
    steps = segment_outcome(tmp_path / "missing.svs", tmp_path / "o.ome.zarr")
    with pytest.raises(StopIteration) as stop:
        next(steps)
    assert isinstance(stop.value.value, GigavimError) and "no such file" in str(stop.value.value)


def _labels_layer(path: Path):
    [(data, kwargs, _)] = [layer for layer in zarr_layers(path) if layer[2] == "labels"]
    return data, kwargs


def test_an_edited_labels_layer_saves_back_to_ome_zarr_with_its_classes_and_scale(label_zarr: Path,
                                                                                  tmp_path: Path) -> None:
    from ome_zarr.format import FormatV04
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    data, kwargs = _labels_layer(label_zarr)
    edited = np.array(data[0] if isinstance(data, list) else data)
    edited[10:40, 20:60] = 2  # the user paints some stroma
    out = tmp_path / "edited.ome.zarr"
    attributes = {"metadata": kwargs["metadata"], "scale": kwargs["scale"]}
    assert write_labels(str(out), edited, attributes) == [str(out)]
    group = zarr.open_group(str(out), mode="r")
    np.testing.assert_array_equal(group["labels/segmentation/0"][:], edited)
    attrs = group.attrs["gigavim"]
    assert attrs["classes"] == CLASSES and attrs["mpp"] == MPP and attrs["model"]["edited_in"] == "napari"
    nodes = list(Reader(parse_url(str(out), fmt=FormatV04()))())
    assert any(isinstance(spec, Label) for node in nodes for spec in node.specs)
    # saving again over our own output replaces it; an unrelated folder is never replaced
    write_labels(str(out), edited, {"metadata": kwargs["metadata"]})
    other = tmp_path / "mine.zarr"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(OutputError, match="already exists"):
        write_labels(str(other), edited, {"metadata": kwargs["metadata"]})
    assert (other / "keep.txt").exists()


def test_a_labels_layer_saves_to_geojson_in_level0_pixels(label_zarr: Path, tmp_path: Path) -> None:
    data, kwargs = _labels_layer(label_zarr)
    out = tmp_path / "edited.geojson"
    level0 = np.asarray(data[0] if isinstance(data, list) else data)
    write_labels(str(out), level0, {"metadata": kwargs["metadata"]})
    features = json.loads(out.read_text())["features"]
    assert {f["properties"]["class"] for f in features} == {"tumour", "stroma"}  # background skipped
    from shapely.geometry import shape

    labels = class_map()
    tumor = sum(shape(f["geometry"]).area for f in features if f["properties"]["class"] == "tumour")
    assert tumor == (labels == 1).sum() * 4.0**2  # scale_to_level0 4: level-0 pixel areas


def test_a_labels_layer_from_elsewhere_gets_generic_classes(tmp_path: Path) -> None:
    labels = np.zeros((20, 30), np.int32)
    labels[5:10, 5:10] = 3
    out = tmp_path / "drawn.geojson"
    write_labels(str(out), labels, {"scale": (1.0, 1.0)})
    [feature] = json.loads(out.read_text())["features"]
    assert feature["properties"]["class"] == "class 3"
