"""open_image picks the reader by content (not by extension) and fails with one clear line."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from gigavim.errors import InputError, UsageError
from gigavim.io import detect_kind, open_image, probe_read
from gigavim.io.synthetic import write_geotiff, write_synthetic_slide

KINDS = {
    "wsi/CMU-1-Small-Region.svs": "slide",
    "wsi/small.svs": "slide",
    "wsi/boxes.tiff": "slide",  # generic tiled pyramid without georeference
    "wsi/boxes_0.dcm": "slide",
    "geo/cogeo.tif": "raster",  # OpenSlide calls it generic-tiff too: georeference decides
    "geo/world.byte.tif": "raster",
    "geo/goes.tif": "raster",
    "geo/RGB.byte.tif": "raster",
    "geo/float_nan.tif": "raster",
    "nuclei_miccai2015/image02.png": "image",
    "nuclei_miccai2015/image02_label.png": "image",
}


@pytest.mark.parametrize(("name", "kind"), KINDS.items())
def test_real_files_go_to_the_right_reader(real_data, name, kind):
    assert detect_kind(real_data / name) == kind
    with open_image(real_data / name) as src:
        assert src.kind == kind


def test_extension_does_not_decide(real_data, tmp_path):
    shutil.copy(real_data / "geo/RGB.byte.tif", tmp_path / "scene.svs")
    shutil.copy(real_data / "wsi/small.svs", tmp_path / "slide.png")
    assert detect_kind(tmp_path / "scene.svs") == "raster"
    assert detect_kind(tmp_path / "slide.png") == "slide"


def test_georeferenced_pyramid_is_a_raster_and_plain_pyramid_a_slide(tmp_path):
    write_geotiff(tmp_path / "geo.tif", np.zeros((600, 600, 3), np.uint8), overviews=(2, 4))
    write_synthetic_slide(tmp_path / "plain.tif", 600, 600, vendor="generic", levels=2)
    assert detect_kind(tmp_path / "geo.tif") == "raster"
    assert detect_kind(tmp_path / "plain.tif") == "slide"


def test_kind_overrides_detection(real_data):
    with open_image(real_data / "wsi/boxes.tiff", kind="raster") as src:
        assert src.kind == "raster" and src.level_count == 4
    with pytest.raises(UsageError, match="unknown image kind"):
        open_image(real_data / "wsi/boxes.tiff", kind="movie")  # type: ignore[arg-type]


def test_missing_directory_empty(tmp_path):
    with pytest.raises(InputError, match=r"nope\.svs: no such file"):
        open_image(tmp_path / "nope.svs")
    with pytest.raises(InputError, match="is a directory"):
        open_image(tmp_path)
    (tmp_path / "empty.svs").touch()
    with pytest.raises(InputError, match=r"empty\.svs: file is empty"):
        open_image(tmp_path / "empty.svs")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("broken.svs", "not a slide OpenSlide can read"),
        ("unopenable.tiff", "Unsupported TIFF compression"),
        ("small_dicom.dcm", "OpenSlide cannot open"),
        ("unreadable.svs", "Bogus marker length"),
        ("corrupt.tif", "cannot read raster pixels"),
    ],
)
def test_bad_inputs_fail_on_open_or_probe(real_data, name, message):
    path = real_data / "bad_input" / name
    with pytest.raises(InputError) as err:
        with open_image(path) as src:
            probe_read(src)
    assert str(path) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("keep", [0.05, 0.5, 0.98])
def test_truncated_slide_fails_on_open_or_probe(real_data, tmp_path, keep):
    """Cut anywhere (even only the trailing label/macro images): one clear error, not a read."""
    data = (real_data / "wsi/CMU-1-Small-Region.svs").read_bytes()
    path = tmp_path / "truncated.svs"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputError, match=r"truncated\.svs: .*(truncated|corrupt)"):
        with open_image(path) as src:
            probe_read(src)
