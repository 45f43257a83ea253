"""Training reads the working grid through the engine's TileReader, window by window.

So the pixels a model is trained and scored on are the very pixels ``segment`` feeds it (they
cannot drift apart again), labels line up with them as the engine's output grid does with the
input, and no whole level is ever loaded, whether the grid is a level or lies between levels.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from skimage.io import imread, imsave

from gigavim import open_image
from gigavim.io.base import Window
from gigavim.io.openslide_source import OpenSlideSource
from gigavim.io.synthetic import write_synthetic_slide
from gigavim.models.bundle import ModelBundle, ModelMeta
from gigavim.train import TrainConfig, train
from gigavim.train.dataset import PatchSampler, TrainImage, load_train_image
from gigavim.train.loop import band_statistics
from gigavim.train.metrics import IGNORE_LABEL
from gigavim.train.working_image import WorkingImage

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
    monkeypatch.setattr(importlib.import_module("gigavim.train.working_image"), "STRIP_PIXELS", STRIP)
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
        assert isinstance(im.image, WorkingImage) and im.shape == (HEIGHT, WIDTH)
        # Loading reads nothing: a slide has no nodata for the engine (nor alpha to scan).
        assert recorded["read"] == [] and recorded["read_valid"] == []
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


BETWEEN_LEVELS_MPP = 3.0  # 6 level-0 px per working px: level 1 (4×) resampled by 1.5


class _RecordingNet(torch.nn.Module):
    """Stores every input it is given and predicts class 0 (the model inputs are raw pixels)."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[np.ndarray] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.extend(x.permute(0, 2, 3, 1).numpy().copy())
        return torch.zeros((x.shape[0], 2, *x.shape[2:]))


def test_training_pixels_are_exactly_what_segment_feeds_the_model(
        slide: tuple[Path, Path], tmp_path: Path) -> None:
    """Between pyramid levels too: the same level, box mean, anti-aliasing and sub-pixel sampling."""
    from gigavim import segment
    from gigavim.engine.plan import TileGrid

    net = _RecordingNet()
    meta = ModelMeta(name="recorder", classes=["a", "b"], colors=[(0, 0, 0), (255, 0, 0)], arch={},
                     input_scale=1.0, mean=[0.0] * 3, std=[1.0] * 3, mpp=BETWEEN_LEVELS_MPP,
                     tile=48, overlap=8, trained=True)
    segment(slide[0], [tmp_path / "seg.zarr"], model=ModelBundle(net, meta), batch_size=1, workers=1)
    im = load_train_image(*slide, mpp=BETWEEN_LEVELS_MPP)
    try:
        res = im.image.resolution
        assert (res.level, res.read_factor) == (1, 1.5) and im.shape == res.shape == (107, 128)
        assert im.pixel_size["mpp"] == pytest.approx(BETWEEN_LEVELS_MPP)
        grid = TileGrid(res.shape, 48, 8)
        training = {t: im.image[w.y:w.y + w.height, w.x:w.x + w.width]
                    for t in grid.tiles() for w in [grid.tile_window(*t)]}
        assert len(net.inputs) >= 4  # the tissue tiles segment ran
        for fed in net.inputs:
            assert any(np.array_equal(fed, pixels) for pixels in training.values())
        # A held-out crop reads the same global windows (no re-gridding at the cut).
        right = im.crop(0, 107, 100, 128)
        np.testing.assert_array_equal(right.image[10:40, 5:25], im.image[10:40, 105:125])
    finally:
        im.close()


def test_labels_sit_at_the_working_pixel_centres(slide: tuple[Path, Path], tmp_path: Path) -> None:
    """Working pixel (r, c) covers level-0 [6r, 6r+6): its label is the one under its centre,
    whether the labels come as a level-0 image or as level-0 polygons (QuPath's convention)."""
    level0 = np.asarray(imread(slide[1]))
    im = load_train_image(*slide, mpp=BETWEEN_LEVELS_MPP, mode="values")
    im.close()
    centres = [np.floor((np.arange(n) + 0.5) * 6).astype(int) for n in (107, 128)]
    np.testing.assert_array_equal(im.labels, level0[np.ix_(*centres)])

    box = np.zeros((HEIGHT, WIDTH), np.uint8)
    box[100:181, 200:331] = 1  # edges never on a centre (6r + 3), so both routes must agree
    imsave(tmp_path / "box.png", box, check_contrast=False)
    ring = [[200, 100], [331, 100], [331, 181], [200, 181], [200, 100]]  # (x, y) level-0 pixels
    polygon = {"type": "Polygon", "coordinates": [ring]}
    (tmp_path / "box.geojson").write_text(json.dumps({"type": "Feature", "properties": {},
                                                      "geometry": polygon}))
    from_image = load_train_image(slide[0], tmp_path / "box.png", mpp=BETWEEN_LEVELS_MPP)
    from_polygons = load_train_image(slide[0], tmp_path / "box.geojson", mpp=BETWEEN_LEVELS_MPP)
    from_image.close()
    from_polygons.close()
    np.testing.assert_array_equal(from_image.labels, box[np.ix_(*centres)])
    np.testing.assert_array_equal(from_polygons.labels, from_image.labels)


def test_raster_nodata_between_levels_is_ignore_where_the_engine_sees_no_data(
        real_data: Path, tmp_path: Path) -> None:
    """RGB.byte.tif (300 m, nodata collar) at 2.5× its GSD: labels reprojected to the working grid, and
    ignore exactly where TileReader reads no data."""
    from gigavim.engine.plan import resolve_resolution
    from gigavim.engine.reader import TileReader

    scene = real_data / "geo" / "RGB.byte.tif"
    with rasterio.open(scene) as src:
        lab = np.zeros((src.height, src.width), np.uint8)
        lab[:, 400:] = 1
        lab[300:, :] = 2
        profile = dict(driver="GTiff", width=src.width, height=src.height, count=1, dtype="uint8",
                       crs=src.crs, transform=src.transform)
    with open_image(scene) as src:
        gsd_m = src.gsd_m * 2.5
    with rasterio.open(tmp_path / "lab.tif", "w", **profile) as dst:
        dst.write(lab[None])
    im = load_train_image(scene, tmp_path / "lab.tif", gsd_m=gsd_m, mode="values")
    try:
        with open_image(scene) as src:
            res = resolve_resolution(src, gsd_m=gsd_m)
            pixels, valid = TileReader(src, res).read(Window(0, 0, *res.shape))
        assert res.read_factor == pytest.approx(2.5) and 0.2 < (~valid).mean() < 0.5
        np.testing.assert_array_equal(im.image[0:res.shape[0], 0:res.shape[1]], pixels)
        np.testing.assert_array_equal(im.labels == IGNORE_LABEL, ~valid)
        rows, cols = [np.floor((np.arange(n) + 0.5) * 2.5).astype(int) for n in res.shape]
        np.testing.assert_array_equal(im.labels[valid], lab[np.ix_(rows, cols)][valid])
    finally:
        im.close()


def test_eval_scores_the_engine_resampled_pixels(slide: tuple[Path, Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``gigavim eval`` predicts on the working grid of the model's µm/px, read by TileReader."""
    from engine.fakes import tiny_bundle

    evaluate_module = importlib.import_module("gigavim.train.evaluate")
    seen: list[WorkingImage] = []

    def predict(bundle: ModelBundle, image: WorkingImage, **_: object) -> np.ndarray:
        seen.append(image)
        return np.zeros((bundle.num_classes, *image.shape[:2]), np.float32)

    monkeypatch.setattr(evaluate_module, "predict_probabilities", predict)
    result = evaluate_module.evaluate(tiny_bundle(mpp=BETWEEN_LEVELS_MPP), [tuple(map(str, slide))])
    (image,) = seen
    assert isinstance(image, WorkingImage) and image.resolution.read_factor == 1.5
    assert result["overall"]["pixels"] == image.shape[0] * image.shape[1]  # labels on its grid


def test_training_between_levels_never_reads_a_whole_level(
        slide: tuple[Path, Path], recorded: dict[str, list[Window]], tmp_path: Path) -> None:
    cfg = TrainConfig(pairs=[tuple(map(str, slide))], out=str(tmp_path / "m.pt"), arch=TINY_ARCH,
                      patch=32, batch_size=2, steps=2, tile=64, overlap=16, val_fraction=0.25,
                      mpp=1.25)  # 2.5 level-0 px per working px: a box mean by 2, then 1.25
    bundle = train(cfg)
    assert bundle.meta.mpp == pytest.approx(1.25)
    assert bundle.meta.training["images"][0]["shape"] == [256, 230]  # the training part of 256×307
    reads = recorded["read"] + recorded["read_valid"]
    assert reads and max(map(_area, reads)) < HEIGHT * WIDTH / 2
