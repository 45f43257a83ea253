"""Direct tile decoding of Aperio / generic tiled TIFF levels: OpenSlide's exact pixels, or OpenSlide."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from gigavim.io import Window, open_image
from gigavim.io.synthetic import write_synthetic_slide


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiles")
    return {
        vendor: write_synthetic_slide(folder / f"{vendor}.tif", 1500, 1300, tile=256, levels=3,
                                      vendor=vendor, seed=3)
        for vendor in ("aperio", "generic")
    }


def _windows(level, rng, count=10):
    """Random windows of a level, some hanging over its edges, plus one the size of a tile."""
    out = [Window(0, 0, 256, 256), Window(-40, level.width - 100, 300, 260)]
    for _ in range(count):
        h, w = int(rng.integers(1, 700)), int(rng.integers(1, 700))
        out.append(Window(int(rng.integers(-50, level.height)), int(rng.integers(-50, level.width)), h, w))
    return out


def _crop(whole, win, fill=255):
    """A window of a whole level, padded with white outside it."""
    h, w = whole.shape[:2]
    out = np.full((win.height, win.width, 3), fill, np.uint8)
    y0, x0 = max(win.y, 0), max(win.x, 0)
    y1, x1 = min(win.y + win.height, h), min(win.x + win.width, w)
    if y1 > y0 and x1 > x0:
        out[y0 - win.y:y1 - win.y, x0 - win.x:x1 - win.x] = whole[y0:y1, x0:x1]
    return out


@pytest.mark.parametrize("vendor", ["aperio", "generic"])
def test_direct_reads_are_openslides_pixels(slides, vendor):
    """Whole levels equal OpenSlide's; windows are exact crops of them. (OpenSlide's own windows
    match too except at a level with a non-integer downsample, where it samples sub-pixel.)"""
    with open_image(slides[vendor]) as src:
        assert src._direct is not None
        rng = np.random.default_rng(0)
        for level, lv in enumerate(src.levels):
            whole = src._read_openslide_rgb(level, Window(0, 0, lv.height, lv.width))
            np.testing.assert_array_equal(src.read(level, Window(0, 0, lv.height, lv.width)), whole)
            for win in _windows(lv, rng):
                np.testing.assert_array_equal(src.read(level, win), _crop(whole, win))
                if float(lv.downsample).is_integer():
                    np.testing.assert_array_equal(src.read(level, win), src._read_openslide_rgb(level, win))
            assert src._direct._checked[level] is not None, f"level {level} was not read directly"


def test_real_aperio_slide_reads_directly_and_identically(real_data):
    with open_image(real_data / "wsi/CMU-1-Small-Region.svs") as src:
        rng = np.random.default_rng(1)
        for win in _windows(src.levels[0], rng):
            np.testing.assert_array_equal(src.read(0, win), src._read_openslide_rgb(0, win))
        assert src._direct._checked[0] is not None


def test_a_tile_never_written_is_left_to_openslide(slides, monkeypatch):
    """A byte count of 0 is a tile OpenSlide shows as transparent (white here): not decoded."""
    with open_image(slides["aperio"]) as src:
        win = Window(0, 0, 512, 512)
        expected = src._read_openslide_rgb(0, win)
        tiff = src._direct._level(0)
        tiff.counts = tiff.counts.copy()
        tiff.counts[1] = 0
        calls = []
        monkeypatch.setattr(src, "_read_rgba", lambda level, w: calls.append(w) or np.dstack(
            [expected, np.full(expected.shape[:2], 255, np.uint8)]))
        np.testing.assert_array_equal(src.read(0, win), expected)
        assert calls == [win]
        assert src._direct.read(0, Window(256, 0, 256, 256)) is not None  # its neighbours still are


def test_a_level_that_decodes_differently_stays_on_openslide(slides, monkeypatch):
    with open_image(slides["aperio"]) as src:
        black = lambda level, w: np.zeros((w.height, w.width, 3), np.uint8)  # noqa: E731
        monkeypatch.setattr(src._direct, "_reference", black)
        assert src._direct.read(0, Window(0, 0, 64, 64)) is None
        np.testing.assert_array_equal(src.read(0, Window(0, 0, 64, 64)),
                                      src._read_openslide_rgb(0, Window(0, 0, 64, 64)))


def test_corrupt_tiles_fall_back_to_openslides_error(real_data):
    with open_image(real_data / "bad_input/unreadable.svs") as src:
        assert src._direct.read(0, Window(0, 0, 16, 16)) is None


def test_environment_switch_and_other_vendors_use_openslide(slides, real_data, monkeypatch):
    with open_image(real_data / "wsi/boxes_0.dcm") as dicom:
        assert dicom._direct is None
    monkeypatch.setenv("GIGAVIM_OPENSLIDE_ONLY", "1")
    with open_image(slides["aperio"]) as src:
        assert src._direct is None


def test_direct_reads_survive_pickling(slides):
    with open_image(slides["generic"]) as src:
        win = Window(100, 200, 300, 400)
        copy = pickle.loads(pickle.dumps(src))
        assert copy._direct is not None
        np.testing.assert_array_equal(copy.read(0, win), src.read(0, win))
        copy.close()


def test_reader_threads_at_once_read_the_same_pixels(slides):
    """The engine's reader threads share one source: concurrent first reads (the level's check,
    the file's opening) and reads give what one thread reads."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(5)
    with open_image(slides["aperio"]) as src:
        wins = _windows(src.levels[0], rng, count=24)
        expected = [src._read_openslide_rgb(0, w) for w in wins]
    with open_image(slides["aperio"]) as src, ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda w: src.read(0, w), wins))
        assert src._direct._checked[0] is not None
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
