"""Training at a level's own resolution reads windows, never the whole level, with the same patches."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from skimage.io import imsave

from gigavim import open_image
from gigavim.io.base import Window
from gigavim.io.openslide_source import OpenSlideSource
from gigavim.io.synthetic import write_synthetic_slide
from gigavim.train import TrainConfig, train
from gigavim.train.dataset import PatchSampler, TrainImage, load_train_image
from gigavim.train.level_image import LevelImage
from gigavim.train.loop import band_statistics
from gigavim.train.metrics import IGNORE_LABEL

HEIGHT, WIDTH = 640, 768
STRIP = 96 * WIDTH  # statistics/validity strips of 96 rows in these tests
TINY_ARCH = {"backbone": {"embed_dim": 16, "depth": 1, "patch_size": 4, "stride": 4, "img_size": 32,
                          "cls_token": "none", "pos_embed_mode": "sincos"}, "head": {"kind": "light"}}


@pytest.fixture
def slide(tmp_path: Path) -> tuple[Path, Path]:
    """A lossless synthetic two-level slide and a level-0 label image (a few labelled blocks)."""
    path = write_synthetic_slide(tmp_path / "slide.svs", HEIGHT, WIDTH, levels=2, compression="zlib",
                                 seed=4)
    labels = np.zeros((HEIGHT, WIDTH), np.uint8)
    labels[100:180, 200:330] = 1
    labels[400:430, 600:700] = 1
    labels[:20] = IGNORE_LABEL
    imsave(tmp_path / "labels.png", labels, check_contrast=False)
    return path, tmp_path / "labels.png"


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Window]]:
    """Every window asked of any OpenSlide source (pixels and validity), from now on."""
    calls: dict[str, list[Window]] = {"read": [], "read_valid": []}
    for name in calls:
        real = getattr(OpenSlideSource, name)

        def record(self: OpenSlideSource, level: int, window: Window, _real=real, _name=name) -> np.ndarray:
            calls[_name].append(window)
            return _real(self, level, window)

        monkeypatch.setattr(OpenSlideSource, name, record)
    monkeypatch.setattr(importlib.import_module("gigavim.train.level_image"), "STRIP_PIXELS", STRIP)
    return calls


def _in_memory(slide: tuple[Path, Path]) -> TrainImage:
    """The same training image with its level read whole: the behaviour before windowed reads."""
    with open_image(slide[0]) as src:
        pixels = src.read(0, Window(0, 0, HEIGHT, WIDTH))
    lazy = load_train_image(*slide)
    lazy.close()
    return TrainImage(pixels, lazy.labels.copy(), slide[0], slide[1], lazy.kind, lazy.pixel_size)


def _area(w: Window) -> int:
    return w.height * w.width


def test_sampling_reads_patch_windows_and_draws_the_same_patches(
        slide: tuple[Path, Path], recorded: dict[str, list[Window]]) -> None:
    reference = _in_memory(slide)
    recorded["read"].clear()
    recorded["read_valid"].clear()
    im = load_train_image(*slide)  # no --mpp: level 0 as it is
    try:
        assert isinstance(im.image, LevelImage) and im.shape == (HEIGHT, WIDTH)
        assert recorded["read"] == []  # loading reads no pixels
        assert max(map(_area, recorded["read_valid"])) <= STRIP  # validity strip by strip
        np.testing.assert_array_equal(im.labels, reference.labels)
        for sampling in ("balanced", "foreground", "random"):
            lazy = PatchSampler([im], 48, 2, sampling, seed=11).batch(6)  # type: ignore[arg-type]
            whole = PatchSampler([reference], 48, 2, sampling, seed=11).batch(6)  # type: ignore[arg-type]
            np.testing.assert_array_equal(lazy[0], whole[0])
            np.testing.assert_array_equal(lazy[1], whole[1])
        assert recorded["read"] and max(map(_area, recorded["read"])) <= 48 * 48
    finally:
        im.close()


def test_band_statistics_strip_by_strip_equal_the_whole_level_ones(
        slide: tuple[Path, Path], recorded: dict[str, list[Window]]) -> None:
    reference = _in_memory(slide)
    im = load_train_image(*slide)
    try:
        recorded["read"].clear()
        mean, std = band_statistics([im], 1 / 255)
        assert len(recorded["read"]) > 1 and max(map(_area, recorded["read"])) <= STRIP
    finally:
        im.close()
    vals = reference.image[reference.labels != IGNORE_LABEL].astype(np.float64) / 255
    np.testing.assert_allclose(mean, vals.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(std, vals.std(axis=0), rtol=1e-8)


def test_training_without_a_resolution_never_reads_a_whole_level(
        slide: tuple[Path, Path], recorded: dict[str, list[Window]], tmp_path: Path) -> None:
    cfg = TrainConfig(pairs=[tuple(map(str, slide))], out=str(tmp_path / "m.pt"), arch=TINY_ARCH,
                      patch=32, batch_size=2, steps=2, tile=128, overlap=16, val_fraction=0.25)
    bundle = train(cfg)
    assert bundle.meta.training["steps"] == 2
    assert bundle.meta.training["validation"]["scores"]["pixels"] > 0  # validated on the held-out strip
    reads = recorded["read"] + recorded["read_valid"]
    assert reads and max(map(_area, reads)) <= max(STRIP, 128 * 128) < HEIGHT * WIDTH
