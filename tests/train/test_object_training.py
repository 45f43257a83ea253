"""Training for objects: boundary label mode, per-image µm/px, stronger augmentation, a learning
rate that anneals by the clock, and thresholds tuned on training images."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from skimage.io import imsave

from gigavim.errors import UsageError
from gigavim.instances.tune import TuningImage, tune_method, tune_settings
from gigavim.models.catalog import load_model
from gigavim.train.augment import AugmentConfig, augment_batch, blur, jpeg_round_trip
from gigavim.train.config import TrainConfig
from gigavim.train.loop import lr_factor, train

ARCH = {"backbone": {"embed_dim": 16, "depth": 1, "patch_size": 4, "stride": 4, "img_size": 32,
                     "cls_token": "none", "pos_embed_mode": "sincos"}, "head": {"kind": "light"}}


def _touching_pair(folder: Path, name: str, scale: int) -> tuple[str, str]:
    """Two touching 10×10-µm nuclei at ``scale`` px/µm (1 → 1 µm/px, 2 → 0.5 µm/px)."""
    n = 48 * scale
    ids = np.zeros((n, n), np.uint16)
    ids[10 * scale:20 * scale, 8 * scale:18 * scale] = 1
    ids[10 * scale:20 * scale, 18 * scale:28 * scale] = 2
    rgb = np.full((n, n, 3), 220, np.uint8)
    rgb[ids > 0] = (90, 50, 140)
    imsave(folder / f"{name}.png", rgb, check_contrast=False)
    imsave(folder / f"{name}_label.png", ids, check_contrast=False)
    return str(folder / f"{name}.png"), str(folder / f"{name}_label.png")


def test_a_boundary_model_trains_on_mixed_magnifications_and_declares_its_objects(tmp_path: Path) -> None:
    lo, hi = _touching_pair(tmp_path, "lo", 1), _touching_pair(tmp_path, "hi", 2)
    cfg = TrainConfig(pairs=[(*lo, 1.0), (*hi, 0.5)], out=str(tmp_path / "m.pt"), name="nuc",
                      classes=["background", "nucleus", "nucleus-boundary"], label_mode="boundary",
                      boundary_um=1.0, mpp=1.0, arch=ARCH, patch=32, batch_size=2, steps=2,
                      warmup_steps=1, tile=32, overlap=0, log_every=1)
    bundle = train(cfg)
    meta = load_model(tmp_path / "m.pt").meta
    assert meta.instances["method"] == "three-class-watershed"
    assert (meta.instances["interior"], meta.instances["boundary"], meta.instances["object_class"]) == (
        1, 2, "nucleus")
    assert meta.instances["boundary_um"] == 1.0 and bundle.meta.mpp == pytest.approx(1.0)
    assert [im["shape"] for im in meta.training["images"]] == [[48, 48], [48, 48]]  # both at 1 µm/px


def test_boundary_mode_needs_three_classes_and_a_positive_width() -> None:
    with pytest.raises(UsageError, match="three classes"):
        TrainConfig(pairs=[("a", "b")], out="x.pt", classes=["background", "nucleus"], label_mode="boundary")
    with pytest.raises(UsageError, match="boundary width"):
        TrainConfig(pairs=[("a", "b")], out="x.pt", classes=["b", "i", "e"], label_mode="boundary",
                    boundary_um=0)


def test_blur_and_jpeg_are_seeded_and_leave_labels_alone() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    labels = rng.integers(0, 3, (3, 32, 32)).astype(np.uint8)
    cfg = AugmentConfig(flips=False, rotate90=False, brightness=0, contrast=0, saturation=0, stain=0.3,
                        blur_p=1.0, blur_sigma=1.5, jpeg_p=1.0, jpeg_quality=(30, 40))
    a_img, a_lab = augment_batch(images, labels, cfg, np.random.default_rng(5))
    b_img, _ = augment_batch(images, labels, cfg, np.random.default_rng(5))
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, labels)
    assert a_img.min() >= 0 and a_img.max() <= 255 and a_img.std() < images.std()  # smoothed


def test_blur_and_jpeg_keep_a_flat_image_and_soften_an_edge() -> None:
    flat = np.full((16, 16, 3), 100.0, np.float32)
    np.testing.assert_allclose(blur(flat, 1.0), flat, atol=1e-3)
    np.testing.assert_allclose(jpeg_round_trip(flat, 50), flat, atol=2.0)
    edge = np.zeros((16, 16, 3), np.float32)
    edge[:, 8:] = 255
    soft = blur(edge, 1.0)
    assert 0 < soft[0, 7, 0] < 128 < soft[0, 8, 0] < 255
    texture = np.random.default_rng(0).uniform(0, 255, (16, 16, 3)).astype(np.float32)
    assert np.abs(jpeg_round_trip(texture, 30) - texture).mean() > 5  # lossy at low quality


def test_a_time_capped_run_anneals_by_the_clock() -> None:
    cfg = TrainConfig(pairs=[("a", "b")], out="x.pt", steps=1000, warmup_steps=10, min_lr_ratio=0.0)
    assert lr_factor(20, cfg) == pytest.approx(1.0, abs=1e-3)  # by steps: barely started
    assert lr_factor(20, cfg, time_fraction=0.5) == pytest.approx(0.5)  # half the time used
    assert lr_factor(20, cfg, time_fraction=1.0) == pytest.approx(0.0)
    assert lr_factor(990, cfg, time_fraction=0.1) < 0.01  # the steps may still run out first


def test_time_capped_training_stops_and_records_it(tmp_path: Path) -> None:
    pair = _touching_pair(tmp_path, "p", 1)
    cfg = TrainConfig(pairs=[pair], out=str(tmp_path / "m.pt"), classes=["background", "nucleus"],
                      image_mpp=1.0, arch=ARCH, patch=32, batch_size=1, steps=100000, tile=32, overlap=0,
                      time_limit_s=3.0, log_every=1)
    t = time.perf_counter()
    bundle = train(cfg)
    assert time.perf_counter() - t < 60
    assert bundle.meta.training["steps"] < 100000  # stopped by the clock (loading counts too)


def _blobs(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Truth ids of two touching discs, and noisy probabilities whose boundary is weak."""
    yy, xx = np.mgrid[:n, :n]
    ids = np.zeros((n, n), np.int32)
    ids[(yy - 32) ** 2 + (xx - 22) ** 2 < 100] = 1
    ids[((yy - 32) ** 2 + (xx - 40) ** 2 < 100) & (ids == 0)] = 2
    from gigavim.train.instance_labels import interior_boundary_classes

    cls = interior_boundary_classes(ids, 1)
    probs = np.zeros((3, n, n), np.float32)
    probs[0][cls == 0] = 0.9
    probs[1][cls == 1] = 0.6  # interiors are only a little more likely than boundaries
    probs[2][cls == 1] = 0.3
    probs[2][cls == 2] = 0.6
    probs[1][cls == 2] = 0.3
    probs[1][cls == 0] = probs[2][cls == 0] = 0.05
    probs[0][cls > 0] = 1 - probs[1][cls > 0] - probs[2][cls > 0]
    return probs, ids


def test_tuning_picks_thresholds_that_separate_the_training_objects() -> None:
    probs, ids = _blobs()
    settings = {"method": "three-class-watershed", "interior": 1, "boundary": 2,
                "foreground_threshold": 0.5, "marker_threshold": 0.5, "min_marker_px": 4, "min_area_um2": 0}
    best, tried = tune_settings([TuningImage(probs, ids, 1.0)], settings)
    assert best["marker_threshold"] == 0.2  # interior − boundary is 0.3 here: 0.4 finds no marker
    keys = ("foreground_threshold", "marker_threshold", "min_marker_px")
    chosen = next(t for t in tried if all(t[k] == best[k] for k in keys))
    assert chosen["object_f1"] == 1.0 and best["method"] == "three-class-watershed"
    assert all(t["object_f1"] == 0.0 for t in tried if t["marker_threshold"] > 0.3)


def test_tuning_keeps_the_method_that_scores_best_on_the_training_images() -> None:
    """Markers from interior − boundary find nothing when every interior is as likely as its
    boundary; the boundary-damped distance still finds one marker per disc, so it is chosen."""
    probs, ids = _blobs()
    probs[2][probs[1] == 0.6] = 0.6  # interior − boundary is now 0 everywhere
    settings = {"method": "three-class-watershed", "interior": 1, "boundary": 2, "min_area_um2": 0}
    best, tried = tune_method([TuningImage(probs, ids, 1.0)], settings)
    assert best["method"] == "boundary-distance-watershed" and "marker_height_px" in best
    assert {t["method"] for t in tried} == {"three-class-watershed", "boundary-distance-watershed"}
    assert max(t["object_f1"] for t in tried if t["method"] == "three-class-watershed") == 0.0
    assert max(t["object_f1"] for t in tried if t["method"] == "boundary-distance-watershed") == 1.0
