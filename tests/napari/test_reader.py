"""The readers hand napari the right layers: pyramids, physical scale, RGB, colours; or decline."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from gigavim.napari._reader import get_image_reader, get_zarr_reader, image_layers, zarr_layers
from label_outputs import CLASSES, COLORS, MPP, class_map, write_label_zarr

from gigavim.data import sample_slide
from gigavim.errors import InputError
from gigavim.io import open_image


def test_slide_pyramid_is_one_multiscale_rgb_layer_in_micrometres(real_data: Path) -> None:
    path = real_data / "wsi" / "boxes.tiff"  # 4-level generic tiled TIFF
    src = open_image(path)
    [(data, kwargs, layer_type)] = get_image_reader(str(path))(str(path))
    assert layer_type == "image"
    assert kwargs["multiscale"] and kwargs["rgb"]
    assert [lvl.shape for lvl in data] == [(lv.height, lv.width, 3) for lv in src.levels]
    assert all(isinstance(lvl, da.Array) for lvl in data)
    assert kwargs["scale"] == pytest.approx((src.mpp, src.mpp))
    assert kwargs["translate"] == pytest.approx((src.mpp / 2, src.mpp / 2))  # top-left edge at 0
    assert kwargs["name"] == "boxes.tiff"
    assert kwargs["metadata"]["path"] == str(path)
    assert kwargs["metadata"]["gigavim_source"]["levels"] == src.describe()["levels"]
    # the coarsest level's pixels are the reader's pixels
    np.testing.assert_array_equal(data[-1].compute(), src.read(src.level_count - 1, _whole(src, -1)))


def _whole(src, level: int):
    from gigavim.io import Window

    lv = src.levels[level]
    return Window(0, 0, lv.height, lv.width)


def test_single_level_slide_is_a_plain_array() -> None:
    [(data, kwargs, _)] = image_layers(sample_slide())
    assert isinstance(data, da.Array) and data.shape == (2967, 2220, 3)
    assert not kwargs["multiscale"] and kwargs["rgb"]
    assert kwargs["scale"] == pytest.approx((0.499, 0.499), rel=1e-3)


def test_raster_scale_is_metres(real_data: Path) -> None:
    path = real_data / "geo" / "RGB.byte.tif"
    src = open_image(path)
    [(data, kwargs, _)] = image_layers(path)
    assert data.shape == (718, 791, 3) and kwargs["rgb"]
    assert kwargs["scale"] == pytest.approx(src.ground_pixel_yx)  # y and x ground metres
    assert kwargs["metadata"]["gigavim_source"]["crs"] == src.crs


def test_single_band_raster_is_2d_and_not_rgb(real_data: Path) -> None:
    [(data, kwargs, _)] = image_layers(real_data / "geo" / "float_nan.tif")
    assert data.shape == (2, 3) and kwargs["rgb"] is False
    assert kwargs["scale"] == (1.0, 1.0)  # no pixel size: napari pixels


def test_image_reader_declines_what_gigavim_cannot_open(
    real_data: Path, tmp_path: Path, label_zarr: Path
) -> None:
    text = tmp_path / "notes.svs"
    text.write_text("not a slide")
    for path in (real_data / "bad_input" / "broken.svs", real_data / "bad_input" / "unopenable.tiff",
                 text, tmp_path / "missing.svs", tmp_path, label_zarr):
        assert get_image_reader(str(path)) is None, path
    assert get_image_reader([str(real_data / "wsi" / "small.svs"), str(text)]) is None


def test_zarr_reader_declines_zarrs_gigavim_did_not_write(tmp_path: Path, real_data: Path) -> None:
    import zarr
    from ome_zarr.writer import write_image

    plain = tmp_path / "plain.ome.zarr"
    write_image(np.zeros((64, 64), dtype=np.uint8), zarr.open_group(str(plain), mode="w", zarr_format=2),
                axes="yx")
    assert get_zarr_reader(str(plain)) is None  # left to napari-ome-zarr
    assert get_zarr_reader(str(tmp_path)) is None  # a plain directory
    assert get_zarr_reader(str(real_data / "wsi" / "small.svs")) is None
    with pytest.raises(InputError, match="not a gigavim OME-Zarr"):
        zarr_layers(plain)


def test_output_labels_keep_pyramid_scale_colours_and_class_names(label_zarr: Path) -> None:
    pytest.importorskip("napari", reason="napari not installed (pip install -e '.[napari]')")
    import zarr

    layers = get_zarr_reader(str(label_zarr))(str(label_zarr))
    assert [t for _, _, t in layers] == ["labels"]  # root image is only a copy of the classes
    data, kwargs, _ = layers[0]
    stored = zarr.open_group(str(label_zarr), mode="r")["labels/segmentation"]
    assert [lvl.shape for lvl in data] == [stored[str(k)].shape for k in range(len(data))]
    np.testing.assert_array_equal(data[0].compute(), class_map())
    assert kwargs["scale"] == pytest.approx((MPP, MPP))
    assert kwargs["translate"] == pytest.approx((MPP / 2, MPP / 2))
    assert dict(zip(kwargs["features"]["index"], kwargs["features"]["class"], strict=True)) == dict(
        enumerate(CLASSES))
    rgba = kwargs["colormap"].map(np.arange(len(CLASSES)))
    for label, (color, name) in enumerate(zip(COLORS, CLASSES, strict=True)):
        if name == "background":  # drawn transparent so the slide shows through
            assert rgba[label][3] == 0
        else:
            np.testing.assert_allclose(rgba[label], [*(c / 255 for c in color), 1.0], atol=1e-6)


def test_output_with_source_picture_and_probabilities(tmp_path: Path) -> None:
    pytest.importorskip("napari", reason="napari not installed (pip install -e '.[napari]')")
    picture = np.random.default_rng(0).integers(0, 255, (300, 200, 3), dtype=np.uint8)  # the label grid
    path = write_label_zarr(tmp_path / "full.ome.zarr", image=picture, probabilities=True)
    image, probs, labels = zarr_layers(path)
    assert image[2] == "image" and image[1]["rgb"]
    first = image[0][0] if isinstance(image[0], list) else image[0]
    np.testing.assert_array_equal(first.compute(), picture)
    assert image[1]["scale"] == pytest.approx((MPP, MPP))  # the labels' grid
    assert probs[1]["channel_axis"] == 0 and probs[1]["visible"] is False
    assert probs[1]["name"] == [f"full.ome.zarr P({c})" for c in CLASSES]
    assert labels[2] == "labels"
    overlay = zarr_layers(path, image=False)
    assert [t for _, _, t in overlay] == ["image", "labels"]  # probabilities + labels, no picture


def test_every_layer_tuple_is_accepted_by_napari(real_data: Path, tmp_path: Path) -> None:
    """The kwargs are napari's: a (display-less) ViewerModel adds every layer the readers make."""
    pytest.importorskip("napari", reason="napari not installed (pip install -e '.[napari]')")
    from gigavim.napari._widget import add_layer_data
    from napari.components import ViewerModel

    viewer = ViewerModel()
    bands = add_layer_data(viewer, image_layers(real_data / "geo" / "ms1.tif"))  # 4 bands, not uint8
    assert [layer.name for layer in bands] == [f"ms1.tif [band {i}]" for i in range(1, 5)]
    picture = np.zeros((300, 200, 3), dtype=np.uint8)
    path = write_label_zarr(tmp_path / "all.ome.zarr", image=picture, probabilities=True)
    added = add_layer_data(viewer, zarr_layers(path) + image_layers(real_data / "wsi" / "boxes.tiff"))
    kinds = [(type(layer).__name__, layer.visible) for layer in added]
    probabilities = [("Image", False)] * len(CLASSES)
    assert kinds == [("Image", True), *probabilities, ("Labels", True), ("Image", True)]
    labels = added[len(CLASSES) + 1]
    assert labels.multiscale and list(labels.features["class"]) == CLASSES
