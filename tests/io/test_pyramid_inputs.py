"""OME-Zarr images and SubIFD OME-TIFF pyramids (Bio-Formats/QuPath layout) open as multi-level sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from gigavim.io import Window, open_image
from gigavim.io.zarr_levels_source import OmeTiffPyramidSource, OmeZarrSource


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (300, 420, 3), dtype=np.uint8)


def _subifd_ome_tiff(path: Path, picture: np.ndarray) -> Path:
    """What Bio-Formats' ``bfconvert -pyramid-resolutions 3`` writes: reduced levels as SubIFDs."""
    options = {"tile": (128, 128), "photometric": "rgb", "compression": "zlib"}
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        tif.write(picture, subifds=2, metadata={"axes": "YXS", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25,
                                                "PhysicalSizeXUnit": "µm"}, **options)
        tif.write(picture[::2, ::2], subfiletype=1, **options)
        tif.write(picture[::4, ::4], subfiletype=1, **options)
    return path


def test_a_subifd_ome_tiff_is_one_source_with_every_level(tmp_path: Path, picture: np.ndarray) -> None:
    with open_image(_subifd_ome_tiff(tmp_path / "slide.ome.tif", picture)) as src:
        assert isinstance(src, OmeTiffPyramidSource) and src.kind == "slide" and src.mpp == 0.25
        assert [(lv.height, lv.width) for lv in src.levels] == [(300, 420), (150, 210), (75, 105)]
        assert [lv.downsample for lv in src.levels] == [1.0, 2.0, 4.0]
        np.testing.assert_array_equal(src.read(0, Window(10, 20, 50, 60)), picture[10:60, 20:80])
        np.testing.assert_array_equal(src.read(2, Window(0, 0, 75, 105)), picture[::4, ::4])
        edge = src.read(1, Window(140, 200, 20, 20))  # hangs over the corner: padded with white
        np.testing.assert_array_equal(edge[:10, :10], picture[::2, ::2][140:, 200:])
        assert (edge[10:] == 255).all()


def test_an_ome_zarr_image_is_one_source_with_every_level(tmp_path: Path, picture: np.ndarray) -> None:
    from ome_zarr.writer import write_image

    path = tmp_path / "image.ome.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    write_image(picture.transpose(2, 0, 1), group, axes="cyx", scale_factors=[2, 4])
    multiscale = group.attrs["multiscales"][0]  # in micrometres, 0.5 µm/px, as microscopes write
    for axis in multiscale["axes"][1:]:
        axis["unit"] = "micrometer"
    for dataset in multiscale["datasets"]:
        scale = dataset["coordinateTransformations"][0]["scale"]
        dataset["coordinateTransformations"][0]["scale"] = [scale[0], scale[1] / 2, scale[2] / 2]
    group.attrs["multiscales"] = [multiscale]
    with open_image(path) as src:
        assert isinstance(src, OmeZarrSource) and src.level_count == 3 and src.bands == 3
        assert src.mpp == 0.5 and src.kind == "slide"
        np.testing.assert_array_equal(src.read(0, Window(5, 7, 30, 40)), picture[5:35, 7:47])
        assert src.read(2, Window(0, 0, src.levels[2].height, src.levels[2].width)).shape[2] == 3


def test_a_directory_that_is_not_an_ome_zarr_image_is_still_one_line(tmp_path: Path) -> None:
    from gigavim.errors import InputError

    with pytest.raises(InputError, match="is a directory"):
        open_image(tmp_path)
