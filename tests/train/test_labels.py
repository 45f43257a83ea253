"""Label sources put onto an image grid: label images, reprojected rasters, GeoJSON/QuPath."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from skimage.io import imsave

from gigavim import open_image
from gigavim.errors import InputError
from gigavim.train.labels import load_label_map, to_class_ids
from gigavim.train.metrics import IGNORE_LABEL


def _rc(lon: float, lat: float) -> tuple[int, int]:
    """Row, column of a lon/lat in world.rgb.tif's grid (0.703125°, origin −180, 90)."""
    return int((90 - lat) / 0.703125), int((lon + 180) / 0.703125)


def test_world_mask_reprojected_onto_image_grid(real_data: Path) -> None:
    geo = real_data / "geo"
    with open_image(geo / "world.rgb.tif") as src:
        labels = load_label_map(src, geo / "world.byte.tif", mode="values")
    assert labels.shape == (256, 512)
    assert labels[_rc(15, 22)] == 1  # Sahara: land
    assert labels[_rc(-100, 40)] == 1  # Kansas: land
    assert labels[_rc(135, -25)] == 1  # central Australia: land
    assert labels[_rc(-150, 0)] == 0  # Pacific: water
    assert labels[_rc(-30, 30)] == 0  # Atlantic: water
    # The mask covers −75..75° only: polar rows have no ground truth.
    assert labels[_rc(0, -85)] == IGNORE_LABEL and labels[_rc(0, 85)] == IGNORE_LABEL
    assert (labels[_rc(0, -74)[0] : _rc(0, 74)[0] + 1] != IGNORE_LABEL).all()
    land = (labels == 1).sum() / (labels != IGNORE_LABEL).sum()
    assert 0.25 < land < 0.35  # the mask's own land fraction is 0.299


def test_instance_label_image_becomes_binary(real_data: Path) -> None:
    tiles = real_data / "nuclei_miccai2015"
    with open_image(tiles / "image02.png") as src:
        labels = load_label_map(src, tiles / "image02_label.png", mode="binary")
    assert set(np.unique(labels)) == {0, 1}
    assert labels.mean() == pytest.approx(0.166, abs=0.002)  # README: foreground fraction 0.166


def test_label_image_of_wrong_size_is_refused(real_data: Path) -> None:
    tiles = real_data / "nuclei_miccai2015"
    with open_image(tiles / "image02.png") as src, pytest.raises(InputError, match=r"image01_label\.png"):
        load_label_map(src, tiles / "image01_label.png")


def test_geojson_rasterized_in_raster_crs(tmp_path: Path) -> None:
    raster = tmp_path / "scene.tif"
    transform = from_origin(500000, 4200000, 10, 10)  # 10 m pixels, UTM 33N
    with rasterio.open(raster, "w", driver="GTiff", width=40, height=30, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=transform) as dst:
        dst.write(np.zeros((3, 30, 40), np.uint8))
    # A square covering columns 10..19 and rows 5..14 (x 500100..500200, y 4199950..4199850).
    square = [[[500100, 4199950], [500200, 4199950], [500200, 4199850], [500100, 4199850],
               [500100, 4199950]]]
    gj = tmp_path / "fields.geojson"
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"class": "field"}, "geometry": {"type": "Polygon",
                                                                          "coordinates": square}}]}))
    with open_image(raster) as src:
        labels = load_label_map(src, gj, mode="values", class_names=["other", "field"])
    expected = np.zeros((30, 40), np.uint8)
    expected[5:15, 10:20] = 1
    np.testing.assert_array_equal(labels, expected)


def test_qupath_annotations_use_level0_pixels(tmp_path: Path) -> None:
    image = tmp_path / "tile.png"
    imsave(image, np.full((20, 30, 3), 200, np.uint8), check_contrast=False)
    features = [  # QuPath "export as array", classification by name
        {"type": "Feature", "properties": {"classification": {"name": "Tumor"}},
         "geometry": {"type": "Polygon", "coordinates": [[[2, 3], [8, 3], [8, 9], [2, 9], [2, 3]]]}},
        {"type": "Feature", "properties": {"classification": {"name": "Stroma"}},
         "geometry": {"type": "Polygon",
                      "coordinates": [[[20, 10], [25, 10], [25, 15], [20, 15], [20, 10]]]}},
    ]
    gj = tmp_path / "annotations.json"
    gj.write_text(json.dumps(features))
    with open_image(image) as src:
        labels = load_label_map(src, gj, mode="values", class_names=["background", "Tumor", "Stroma"])
    assert (labels[3:9, 2:8] == 1).all() and (labels[10:15, 20:25] == 2).all()
    assert labels.sum() == 36 * 1 + 25 * 2


def test_value_map_and_ignore() -> None:
    raw = np.array([[0, 255, 7], [-1, 0, 255]])
    out = to_class_ids(raw, mode="values", value_map={0: 0, 255: 1, 7: IGNORE_LABEL})
    assert out.tolist() == [[0, 1, IGNORE_LABEL], [IGNORE_LABEL, 0, 1]]
    with pytest.raises(InputError, match="not a class id"):
        to_class_ids(np.array([300]), mode="values")


@pytest.mark.parametrize("shifted", [False, True], ids=["same-grid", "reprojected"])
def test_label_raster_nodata_is_ignore_on_every_path(tmp_path: Path, shifted: bool) -> None:
    """A label raster's nodata pixels carry no label, whether or not it needs reprojecting."""
    raster = tmp_path / "scene.tif"
    transform = from_origin(500000, 4200000, 10, 10)
    with rasterio.open(raster, "w", driver="GTiff", width=8, height=6, count=1, dtype="uint8",
                       crs="EPSG:32633", transform=transform) as dst:
        dst.write(np.zeros((1, 6, 8), np.uint8))
    lab = np.zeros((6, 8), np.uint8)
    lab[:, 4:] = 1
    lab[0, :] = 99  # nodata: an unlabelled strip
    label_tf = from_origin(500000 - (10 if shifted else 0), 4200000, 10, 10)
    with rasterio.open(tmp_path / "labels.tif", "w", driver="GTiff", width=8 + shifted, height=6,
                       count=1, dtype="uint8", crs="EPSG:32633", transform=label_tf, nodata=99) as dst:
        dst.write(np.pad(lab, ((0, 0), (int(shifted), 0)))[None])
    with open_image(raster) as src:
        labels = load_label_map(src, tmp_path / "labels.tif", mode="binary")
    assert (labels[0] == IGNORE_LABEL).all()
    np.testing.assert_array_equal(labels[1:], lab[1:])


def _mask_tagging_background_as_nodata(tmp_path: Path, shifted: bool) -> tuple[Path, Path, np.ndarray]:
    """A scene and a 0/255 building mask tagged ``nodata=0``, as SpaceNet's masks are."""
    raster = tmp_path / "scene.tif"
    with rasterio.open(raster, "w", driver="GTiff", width=8, height=6, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(500000, 4200000, 10, 10)) as dst:
        dst.write(np.zeros((3, 6, 8), np.uint8))
    lab = np.zeros((6, 8), np.uint8)
    lab[1:4, 2:6] = 255
    label_tf = from_origin(500000 - (10 if shifted else 0), 4200000, 10, 10)
    with rasterio.open(tmp_path / "mask.tif", "w", driver="GTiff", width=8 + shifted, height=6, count=1,
                       dtype="uint8", crs="EPSG:32633", transform=label_tf, nodata=0) as dst:
        dst.write(np.pad(lab, ((0, 0), (int(shifted), 0)))[None])
    return raster, tmp_path / "mask.tif", lab


@pytest.mark.parametrize("shifted", [False, True], ids=["same-grid", "reprojected"])
def test_label_nodata_none_reads_a_mask_tagging_background_as_nodata(tmp_path: Path, shifted: bool) -> None:
    """``label_nodata="none"`` (``--label-nodata none``): the tag is ignored, 0 is background."""
    raster, mask, lab = _mask_tagging_background_as_nodata(tmp_path, shifted)
    with open_image(raster) as src:
        tagged = load_label_map(src, mask, mode="binary")
        untagged = load_label_map(src, mask, mode="binary", label_nodata="none")
        objects = load_label_map(src, mask, mode="boundary", label_nodata="none")
    np.testing.assert_array_equal(tagged, np.where(lab > 0, 1, IGNORE_LABEL))  # the tag: 0 = unlabelled
    np.testing.assert_array_equal(untagged, (lab > 0).astype(np.uint8))
    assert set(np.unique(objects[lab == 0])) == {0} and set(np.unique(objects[lab > 0])) == {1, 2}


def test_eval_label_nodata_none_scores_the_background_too(tmp_path: Path) -> None:
    from engine.fakes import tiny_bundle

    from gigavim.train.evaluate import evaluate

    raster, mask, lab = _mask_tagging_background_as_nodata(tmp_path, shifted=False)
    tagged = evaluate(tiny_bundle(), [(str(raster), str(mask))])["overall"]
    untagged = evaluate(tiny_bundle(), [(str(raster), str(mask))], label_nodata="none")["overall"]
    assert tagged["pixels"] == int((lab > 0).sum()) == 12
    assert untagged["pixels"] == lab.size
    assert [c["support"] for c in untagged["per_class"]] == [36, 12]


def test_annotations_that_miss_the_image_are_an_error(tmp_path: Path) -> None:
    """RFC 7946 GeoJSON (lon/lat, no ``crs`` member) on a UTM raster would burn nothing and
    silently label everything background; say so instead."""
    raster = tmp_path / "scene.tif"
    with rasterio.open(raster, "w", driver="GTiff", width=40, height=30, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(500000, 4200000, 10, 10)) as dst:
        dst.write(np.zeros((3, 30, 40), np.uint8))
    lonlat = [[[15.0, 37.9], [15.001, 37.9], [15.001, 37.899], [15.0, 37.899], [15.0, 37.9]]]
    gj = tmp_path / "fields.geojson"
    gj.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": lonlat}}]}))
    with open_image(raster) as src, pytest.raises(InputError, match=r"fields\.geojson: no annotation"):
        load_label_map(src, gj)


def test_colour_coded_label_images_are_refused_but_grey_rgb_masks_work(tmp_path: Path) -> None:
    """Band 1 of a green-for-class mask is 0 everywhere: refuse rather than label it background."""
    imsave(tmp_path / "img.png", np.zeros((10, 12, 3), np.uint8), check_contrast=False)
    colour = np.zeros((10, 12, 3), np.uint8)
    colour[2:5, 2:5] = (0, 255, 0)
    imsave(tmp_path / "colour.png", colour, check_contrast=False)
    grey = np.repeat((colour[..., 1:2] > 0).astype(np.uint8) * 255, 3, axis=-1)
    imsave(tmp_path / "grey.png", grey, check_contrast=False)
    with open_image(tmp_path / "img.png") as src:
        with pytest.raises(InputError, match=r"colour\.png: label image has differing colour bands"):
            load_label_map(src, tmp_path / "colour.png")
        assert load_label_map(src, tmp_path / "grey.png").sum() == 9


def _float_labels_with_nan(tmp_path: Path, shifted: bool) -> tuple[Path, Path, np.ndarray]:
    """An RGB scene and a float32 label GeoTIFF with NaN pixels and no nodata tag."""
    from gigavim.io.synthetic import write_geotiff

    raster = write_geotiff(tmp_path / "scene.tif", np.full((6, 8, 3), 90, np.uint8), crs="EPSG:32633",
                           transform=from_origin(500000, 4200000, 10, 10))
    lab = np.zeros((6, 8), np.float32)
    lab[:, 4:] = 1
    lab[0, :3] = np.nan  # unlabelled
    lab[4, 6] = np.nan
    label_tf = from_origin(500000 - (10 if shifted else 0), 4200000, 10, 10)
    with rasterio.open(tmp_path / "labels.tif", "w", driver="GTiff", width=8 + shifted, height=6,
                       count=1, dtype="float32", crs="EPSG:32633", transform=label_tf) as dst:
        assert dst.nodata is None
        dst.write(np.pad(lab, ((0, 0), (int(shifted), 0)), constant_values=np.nan)[None])
    return raster, tmp_path / "labels.tif", lab


@pytest.mark.parametrize("mode", ["binary", "values"])
@pytest.mark.parametrize("shifted", [False, True], ids=["same-grid", "reprojected"])
def test_nan_in_an_untagged_float_label_raster_is_ignore_not_background(
        tmp_path: Path, shifted: bool, mode: str) -> None:
    raster, label_path, lab = _float_labels_with_nan(tmp_path, shifted)
    with open_image(raster) as src:
        labels = load_label_map(src, label_path, mode=mode)  # type: ignore[arg-type]
    nan = np.isnan(lab)
    assert (labels[nan] == IGNORE_LABEL).all()
    np.testing.assert_array_equal(labels[~nan], lab[~nan].astype(np.uint8))


def test_eval_leaves_nan_mask_pixels_out_of_the_scores(tmp_path: Path) -> None:
    from engine.fakes import tiny_bundle

    from gigavim.train.evaluate import evaluate

    raster, label_path, lab = _float_labels_with_nan(tmp_path, shifted=False)
    result = evaluate(tiny_bundle(), [(str(raster), str(label_path))])
    overall = result["overall"]
    assert overall["pixels"] == int((~np.isnan(lab)).sum()) == 44
    assert [c["support"] for c in overall["per_class"]] == [21, 23]  # NaN never counts as class 0


def test_class_ids_converted_strip_by_strip_match_a_whole_map_conversion(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    monkeypatch.setattr(importlib.import_module("gigavim.train.working_image"), "STRIP_PIXELS", 64)
    raw = np.random.default_rng(0).integers(-1, 5, (50, 30)).astype(np.int16)  # strips of 2 rows
    ids = to_class_ids(raw, mode="values", value_map={4: IGNORE_LABEL, 3: 1})
    expected = np.where(raw == -1, IGNORE_LABEL, np.where(raw == 4, IGNORE_LABEL,
                                                          np.where(raw == 3, 1, raw)))
    np.testing.assert_array_equal(ids, expected)
    raw[45, 2], raw[40, 5] = 400, 300
    with pytest.raises(InputError, match="label value 300 is not a class id"):  # the first one
        to_class_ids(raw, mode="values")


def test_labels_at_a_level_of_inexact_size_follow_its_own_y_and_x_factors(
        real_data: Path, tmp_path: Path) -> None:
    """boxes.tiff level 2 is 75×62 of 300×250 (x 4.0, y 4.032; OpenSlide's mean 4.016): working
    pixel (r, c) is level-0 ((r+½)·250/62, (c+½)·300/75), as segment's outputs place it, so a
    level-0 label image and level-0 GeoJSON must be put there, not on the mean factor."""
    from gigavim.engine.plan import resolve_resolution

    rows0, cols0 = np.mgrid[0:250, 0:300]
    by_row, by_col = tmp_path / "rows.png", tmp_path / "cols.png"
    imsave(by_row, rows0.astype(np.uint8), check_contrast=False)
    imsave(by_col, (cols0 % 250).astype(np.uint8), check_contrast=False)
    box = [[[0, 0], [298.5, 0], [298.5, 243.5], [0, 243.5], [0, 0]]]  # level-0 pixels
    gj = tmp_path / "box.json"
    gj.write_text(json.dumps([{"type": "Feature", "properties": {},
                               "geometry": {"type": "Polygon", "coordinates": box}}]))
    centre_y = (np.arange(62) + 0.5) * 250 / 62
    centre_x = (np.arange(75) + 0.5) * 300 / 75
    with open_image(real_data / "wsi" / "boxes.tiff") as src:
        res = resolve_resolution(src, level=2)
        got_rows = load_label_map(src, by_row, resolution=res, mode="values")
        got_cols = load_label_map(src, by_col, resolution=res, mode="values")
        burnt = load_label_map(src, gj, resolution=res)
    np.testing.assert_array_equal(got_rows[:, 0], np.floor(centre_y).astype(int))
    np.testing.assert_array_equal(got_cols[0], np.floor(centre_x).astype(int) % 250)
    inside = (centre_y[:, None] < 243.5) & (centre_x[None, :] < 298.5)
    np.testing.assert_array_equal(burnt, inside.astype(np.uint8))


def test_a_level0_label_raster_is_sampled_strip_by_strip_not_read_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole-slide label mask at level 0 is many GB: sampling it onto a coarser working grid
    must read it in bounded windows (here 4000² uint8, 16 MB, read in strips of about 1 MB)."""
    import tracemalloc

    from gigavim.engine.plan import Resolution
    from gigavim.train import labels as labels_mod

    side, ds = 4000, 8.0
    yy, xx = np.mgrid[0:side, 0:side]
    band = ((yy // 100 + xx // 100) % 3).astype(np.uint8)
    band[:50, :50] = 9  # nodata: not covered
    for name, data, nodata in (("image.tif", np.zeros_like(band), None), ("mask.tif", band, 9)):
        with rasterio.open(tmp_path / name, "w", driver="GTiff", width=side, height=side, count=1,
                           dtype="uint8", nodata=nodata, tiled=True, compress="deflate") as dst:
            dst.write(data, 1)
    centres = np.floor((np.arange(500) + 0.5) * ds).astype(int)
    want = band[np.ix_(centres, centres)].copy()
    want[want == 9] = IGNORE_LABEL
    del yy, xx, band
    monkeypatch.setattr(labels_mod, "LABEL_STRIP_PIXELS", 1 << 20)
    with open_image(tmp_path / "image.tif") as src:
        res = Resolution(level=0, downsample=ds, level_downsample=1.0, shape=(500, 500))
        tracemalloc.start()
        got = load_label_map(src, tmp_path / "mask.tif", resolution=res, mode="values")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    np.testing.assert_array_equal(got, want)
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_a_georeferenced_mask_on_the_scenes_own_grid_is_sampled_in_strips_too(
        real_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The usual raster case (SpaceNet road mask on its image's grid, trained at a coarser GSD):
    no reprojection of the whole mask is needed, only its pixels under the working centres."""
    import tracemalloc

    from gigavim.engine.plan import resolve_resolution
    from gigavim.train import labels as labels_mod
    from gigavim.train import working_image

    geo = real_data / "geo"
    with rasterio.open(geo / "sample_road_raster_mask.tif") as m:
        mask = m.read(1)
    monkeypatch.setattr(labels_mod, "LABEL_STRIP_PIXELS", 1 << 16)
    monkeypatch.setattr(working_image, "STRIP_PIXELS", 1 << 14)  # class-id conversion strips
    with open_image(geo / "road_mask_input.tif") as src:
        res = resolve_resolution(src, gsd_m=src.gsd_m * 4)
        tracemalloc.start()
        got = load_label_map(src, geo / "sample_road_raster_mask.tif", resolution=res)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    rows = np.floor((np.arange(res.shape[0]) + 0.5) * res.downsample).astype(int)
    cols = np.floor((np.arange(res.shape[1]) + 0.5) * res.downsample).astype(int)
    np.testing.assert_array_equal(got, (mask[np.ix_(rows, cols)] > 0).astype(np.uint8))
    assert peak < 1.5 * 2**20, f"peak {peak / 2**20:.1f} MiB (the mask alone is 1.6 MiB)"


def test_geojson_is_burnt_at_one_byte_per_working_pixel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Annotations on a whole-slide grid: the burnt raster is as large as the label map, so it
    must not be int32 (4× the labels) when every value is a class id."""
    import tracemalloc

    from gigavim.train import working_image

    with rasterio.open(tmp_path / "image.tif", "w", driver="GTiff", width=3000, height=3000, count=1,
                       dtype="uint8", tiled=True, compress="deflate") as dst:
        dst.write(np.zeros((3000, 3000), np.uint8), 1)
    square = [[[100, 100], [2100, 100], [2100, 1100], [100, 1100], [100, 100]]]
    gj = tmp_path / "a.geojson"
    gj.write_text(json.dumps({"type": "Feature", "properties": {"class": "b"},
                              "geometry": {"type": "Polygon", "coordinates": square}}))
    monkeypatch.setattr(working_image, "STRIP_PIXELS", 1 << 16)  # class-id conversion strips
    with open_image(tmp_path / "image.tif") as src:
        tracemalloc.start()
        labels = load_label_map(src, gj, mode="values", class_names=["a", "b"])
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert labels.dtype == np.uint8 and labels.sum() == 2000 * 1000
    assert peak < 2.5 * labels.nbytes, f"peak {peak / 2**20:.1f} MiB for {labels.nbytes / 2**20:.1f} MiB"


def test_a_label_raster_on_another_grid_is_warped_window_by_window(
        real_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A land-cover map far larger than the scene must not be read whole to reproject it: the
    world mask (2880×1200, 3.3 MiB) onto world.rgb's 512×256 grid reads strips of it."""
    import tracemalloc

    from gigavim.train import labels as labels_mod
    from gigavim.train import working_image

    geo = real_data / "geo"
    with open_image(geo / "world.rgb.tif") as src:
        whole = load_label_map(src, geo / "world.byte.tif", mode="values")
        monkeypatch.setattr(labels_mod, "LABEL_STRIP_PIXELS", 1 << 14)
        monkeypatch.setattr(working_image, "STRIP_PIXELS", 1 << 14)
        tracemalloc.start()
        strips = load_label_map(src, geo / "world.byte.tif", mode="values")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    np.testing.assert_array_equal(strips, whole)
    assert peak < 1.5 * 2**20, f"peak {peak / 2**20:.1f} MiB"
