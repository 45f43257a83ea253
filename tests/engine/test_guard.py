"""Guard rails on the working grid: absurd resolutions fail up front with one line and bounded
memory; a huge grid is iterated, never listed; a huge image without overviews is not read whole
for its mask."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from gigavim.data import sample_slide
from gigavim.engine import guard, segment
from gigavim.engine.plan import TileGrid
from gigavim.errors import UsageError
from gigavim.io import masks

from .fakes import ArraySource, blobs, tiny_bundle


def _refused(tmp_path: Path, source, **kwargs) -> tuple[str, int]:
    """The one-line message and the Python memory peak of a refused run; nothing left behind.
    The run is made once untraced first: the modules it imports (70+ MB of code objects the
    first time, depending on what ran before) are not the memory of the refusal."""
    with pytest.raises(UsageError):
        segment(source, [tmp_path / "out.tif"], **kwargs)
    tracemalloc.start()
    try:
        with pytest.raises(UsageError) as err:
            segment(source, [tmp_path / "out.tif"], **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(err.value) and list(tmp_path.iterdir()) == []
    return str(err.value), peak


def test_gsd_typo_on_a_300_m_scene_is_one_line_in_bounded_memory(real_data: Path, tmp_path: Path) -> None:
    message, peak = _refused(tmp_path, real_data / "geo" / "RGB.byte.tif", gsd=0.3)
    assert message.endswith("RGB.byte.tif: --gsd 0.3 would upsample the image 1,000× (791 × 718 px → "
                            "791,105 × 718,095 px); at most 4× is allowed: check the resolution (or "
                            "--level N for the image's own pixels), or pass --force-resolution")
    assert peak < 50e6  # the model and the file header, not the grid of 250 million tiles


@pytest.mark.parametrize(("mpp", "factor"), [(1e-6, "499,000×"), (0.005, "100×")])
def test_absurd_mpp_on_a_slide_is_one_line(tmp_path: Path, mpp: float, factor: str) -> None:
    message, peak = _refused(tmp_path, sample_slide(), mpp=mpp)
    assert f"--mpp {mpp:g} would upsample the image {factor}" in message and "--force-resolution" in message
    assert peak < 50e6


def test_a_model_far_finer_than_the_image_is_refused_naming_it(real_data: Path, tmp_path: Path) -> None:
    """boxes.tiff at 352.8 µm/px and the 4 µm/px tissue model: 88× upsampling by default."""
    message, _ = _refused(tmp_path, real_data / "wsi" / "boxes.tiff", model="tissue")
    assert "boxes.tiff: model 'tissue' at 4 µm/px would upsample the image 88× (300 × 250 px → " in message


def test_up_to_4x_runs_and_force_resolution_lifts_the_limit(tmp_path: Path) -> None:
    image = np.zeros((16, 16, 3), np.uint8)
    model = tiny_bundle(tile=32, overlap=8)
    four = segment(ArraySource([image], mpp=1.0), [tmp_path / "a.zarr"], model=model, mpp=0.25)
    assert four.shape == (64, 64)
    with pytest.raises(UsageError, match="upsample the image 5×"):
        segment(ArraySource([image], mpp=1.0), [tmp_path / "b.zarr"], model=model, mpp=0.2)
    forced = segment(ArraySource([image], mpp=1.0), [tmp_path / "b.zarr"], model=model, mpp=0.2,
                     force_resolution=True)
    assert forced.shape == (80, 80)


def test_grids_beyond_the_disk_or_memory_budget_name_the_numbers(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    src = ArraySource([np.zeros((256, 256, 3), np.uint8)], mpp=1.0)
    monkeypatch.setattr(guard, "_free_bytes", lambda _folder: 10_000)
    with pytest.raises(UsageError, match=r"the working grid 256 × 256 px at the image's own pixels needs "
                                         r"about 65.5 KB on disk but .* has 10.0 KB free; .*--force"):
        segment(src, [tmp_path / "a.zarr"], model=tiny_bundle(tile=32, overlap=8))
    monkeypatch.setattr(guard, "_free_bytes", lambda _folder: None)
    monkeypatch.setattr(guard, "_available_memory", lambda: 1000)
    with pytest.raises(UsageError, match=r"has 121 tiles, whose bookkeeping needs about 48.4 KB of the "
                                         r"1.0 KB of memory available"):
        segment(src, [tmp_path / "a.zarr"], model=tiny_bundle(tile=32, overlap=8))


def test_a_huge_grid_is_counted_and_iterated_not_listed() -> None:
    tracemalloc.start()
    try:
        grid = TileGrid((10_000_000, 10_000_000), 64, 16)  # 4.3e10 tiles
        first = next(iter(grid.iter_tiles()))
        count = grid.tile_count
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert first == (0, 0) and count == 208_333 ** 2
    assert peak < 60e6  # two tuples of origins (208 M ints would be gigabytes listed as tiles)


class _CountingSource(ArraySource):
    """A declared-huge single-level slide (no overviews) whose pixels are computed, not stored."""

    def __init__(self, side: int) -> None:
        super().__init__([np.zeros((1, 1, 3), np.uint8)], kind="slide", mpp=0.5)
        from gigavim.io.base import Level

        self.levels = [Level(side, side, 1.0)]
        self.pixels_read = 0

    def read(self, level, window):
        self.pixels_read += window.height * window.width
        yy, xx = np.ogrid[window.y:window.y + window.height, window.x:window.x + window.width]
        return blobs(yy, xx, period=3000, radius=900).astype(np.uint8)


def test_a_huge_image_without_overviews_is_not_read_whole_for_its_mask(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """20,000² px (400 MP) and a 33 MP budget: the mask reads one row in 20 (within the budget),
    and still finds the tissue discs (a 3000 px grid of 900 px discs)."""
    monkeypatch.setattr(masks, "MASK_READ_BUDGET", 1 << 25)
    src = _CountingSource(20_000)
    mask = masks.foreground_mask(src)
    assert src.pixels_read <= (1 << 25) and src.pixels_read == 1000 * 20_000
    assert mask.mask.shape == (1000, 1000) and mask.downsample == 20
    cells = mask.mask[:900, :900].reshape(6, 150, 6, 150)[:, 65:85, :, 65:85]  # disc centres
    assert cells.all() and 0.2 < mask.fraction < 0.5
