"""GeoTIFF output: a valid COG that keeps the raster's georeference exactly, or the slide's mpp."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from writers_synthetic import COLORS, pattern

from gigavim.io.writers import write_outputs


def test_raster_cog_keeps_crs_transform_and_classes(tmp_path, raster_map, real_data):
    label_map = raster_map()
    out = tmp_path / "scene_labels.tif"
    write_outputs(label_map, [out])

    with rasterio.open(real_data / "geo" / "RGB.byte.tif") as src:
        crs, transform = src.crs, src.transform
    with rasterio.open(out) as dst:
        assert dst.crs == crs
        assert dst.transform == transform  # exact, not approximately
        assert dst.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert dst.profile["tiled"] and dst.block_shapes == [(512, 512)]
        assert dst.compression.name == "deflate"
        assert dst.overviews(1) == [2]
        assert dst.nodata == 255
        np.testing.assert_array_equal(dst.read(1), np.asarray(label_map.labels))
        colormap = dst.colormap(1)
        assert [colormap[i][:3] for i in range(3)] == COLORS
        assert colormap[255][3] == 0  # nodata is transparent
        assert dst.tags(1)["CLASS_1"] == "forest"
        assert "1=forest" in dst.descriptions[0]
        provenance = json.loads(dst.tags()["GIGAVIM_PROVENANCE"])
        assert provenance["model"]["trained"] is True
        assert provenance["classes"] == ["water", "forest", "urban"]


def test_overviews_use_the_mode_not_the_mean(tmp_path, raster_map):
    # Each 2×2 block holds three 2s and one 0: the mode is 2, GDAL's AVERAGE gives 1.
    labels = np.zeros((718, 791), np.uint8)
    labels[:, 1::2] = 2
    labels[::2, :] = 2
    out = tmp_path / "stripes.tif"
    write_outputs(raster_map(labels=labels), [out])
    with rasterio.open(out, overview_level=0) as overview:
        assert overview.height == 359
        assert set(np.unique(overview.read(1))) == {2}


def test_slide_carries_pixel_size_without_crs(tmp_path, slide_map):
    out = tmp_path / "slide_labels.tiff"
    write_outputs(slide_map(), [out])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(out) as dst:
            assert dst.crs is None
            tags = dst.tags()
            np.testing.assert_array_equal(dst.read(1), pattern())
            assert dst.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert dst.overviews(1) == [2]
            assert dst.nodata is None
    assert float(tags["MPP"]) == 2.0
    assert float(tags["TIFFTAG_XRESOLUTION"]) == pytest.approx(5000.0)  # px/cm at 2 µm/px
    assert tags["TIFFTAG_RESOLUTIONUNIT"].startswith("3")
