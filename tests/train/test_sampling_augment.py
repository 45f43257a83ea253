"""Patch sampling (balanced / foreground-aware, padded edges, spatial hold-out) and augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gigavim.train.augment import AugmentConfig, augment_batch, stain_jitter
from gigavim.train.dataset import PatchSampler, TrainImage, crop_padded, split_holdout
from gigavim.train.metrics import IGNORE_LABEL


def _sparse_image() -> TrainImage:
    """200×200 with a single 6×6 object: rare enough that random patches usually miss it."""
    labels = np.zeros((200, 200), np.uint8)
    labels[150:156, 30:36] = 1
    image = np.repeat(labels[..., None] * 200, 3, axis=-1).astype(np.uint8)
    return TrainImage(image, labels, Path("sparse.png"))


def test_balanced_sampling_finds_rare_class() -> None:
    im = _sparse_image()
    balanced = PatchSampler([im], 32, 2, "balanced", seed=1)
    random = PatchSampler([im], 32, 2, "random", seed=1)
    hits_bal = sum(balanced.sample()[1].__eq__(1).any() for _ in range(200))
    hits_rnd = sum(random.sample()[1].__eq__(1).any() for _ in range(200))
    assert hits_bal > 80  # about half the draws centre on the object
    assert hits_rnd < 40  # a 32-px patch covers the object ~3% of the time


def test_patches_keep_image_and_labels_aligned() -> None:
    im = _sparse_image()
    sampler = PatchSampler([im], 16, 2, "foreground", foreground_p=1.0, seed=0)
    for _ in range(20):
        patch, labels = sampler.sample()
        inside = labels != IGNORE_LABEL
        np.testing.assert_array_equal(patch[..., 0][inside] == 200, labels[inside] == 1)


def test_crop_padded_marks_outside() -> None:
    arr = np.arange(16, dtype=np.uint8).reshape(4, 4)
    out = crop_padded(arr, -1, 2, 3, IGNORE_LABEL)
    assert out.tolist() == [[255, 255, 255], [2, 3, 255], [6, 7, 255]]


def test_holdout_is_a_spatial_split() -> None:
    im = _sparse_image()
    train, val = split_holdout([im], 0.25)
    assert train[0].shape == (200, 150) and val[0].shape == (200, 50)


def test_geometric_augmentation_moves_labels_with_pixels() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random((4, 24, 24)) > 0.7).astype(np.uint8)
    images = np.repeat(labels[..., None] * 255, 3, axis=-1).astype(np.uint8)
    cfg = AugmentConfig(brightness=0, contrast=0, saturation=0)
    out_img, out_lab = augment_batch(images, labels, cfg, rng)
    np.testing.assert_array_equal(out_img[..., 1] > 127, out_lab == 1)
    assert not np.array_equal(out_lab, labels)  # something was flipped or rotated


def test_stain_jitter_changes_colour_not_structure() -> None:
    rng = np.random.default_rng(0)
    he = np.zeros((16, 16, 3), np.float32)
    he[:8] = (80, 40, 140)  # haematoxylin-ish
    he[8:] = (230, 140, 190)  # eosin-ish
    out = stain_jitter(he, 0.3, rng)
    assert out.shape == he.shape and 0 <= out.min() and out.max() <= 255
    assert np.abs(out - he).mean() > 1  # colours moved
    assert np.ptp(out[:8], axis=(0, 1)).max() < 1e-3 and np.ptp(out[8:], axis=(0, 1)).max() < 1e-3


def test_colour_jitter_keeps_negative_float_values_and_nan_local() -> None:
    """Float rasters (dB, elevation, indices) may be negative and hold NaN nodata: jitter must
    neither clip them to 0 nor spread one NaN over the whole patch."""
    rng = np.random.default_rng(0)
    images = np.linspace(-30.0, -5.0, 2 * 8 * 8).reshape(2, 8, 8, 1).astype(np.float32)  # SAR dB
    images[0, 3, 4, 0] = np.nan
    labels = np.zeros((2, 8, 8), np.uint8)
    cfg = AugmentConfig(flips=False, rotate90=False, brightness=0.1, contrast=0.1, saturation=0.1)
    out, _ = augment_batch(images, labels, cfg, rng, value_max=1.0)
    assert np.isnan(out[0, 3, 4, 0]) and np.isfinite(out).sum() == out.size - 1
    assert np.nanmax(out) < -2 and np.ptp(out[1]) > 10  # still negative dB with its contrast


def test_colour_jitter_keeps_uint8_in_range() -> None:
    rng = np.random.default_rng(1)
    images = np.full((3, 8, 8, 3), 250, np.uint8)
    images[:, :4] = 5
    out, _ = augment_batch(images, np.zeros((3, 8, 8), np.uint8),
                           AugmentConfig(brightness=0.5, contrast=0.5), rng)
    assert out.min() >= 0 and out.max() <= 255


def test_balanced_sampling_balances_a_class_present_in_only_one_small_image() -> None:
    """Class 2 lies only in a small image: balanced sampling must still centre on it about a
    third of the time (3 classes), not only when that image's pixel share picks it (~1 %)."""
    big = np.zeros((400, 400), np.uint8)
    big[:, 200:] = 1
    small = np.zeros((40, 40), np.uint8)
    small[10:30, 10:30] = 2
    images = [TrainImage(np.repeat(lab[..., None], 3, axis=-1), lab, Path(name))
              for lab, name in ((big, "big.png"), (small, "small.png"))]
    sampler = PatchSampler(images, 8, 3, "balanced", seed=0)
    hits = sum((sampler.sample()[1] == 2).any() for _ in range(300))
    assert 60 < hits < 140


def test_zoom_and_rotation_move_labels_with_pixels_and_mark_invented_context() -> None:
    rng = np.random.default_rng(1)
    labels = np.zeros((2, 64, 64), np.uint8)
    labels[:, 16:40, 20:44] = 1  # one 24 × 24 "roof" per patch
    images = np.repeat(labels[..., None] * 255, 3, axis=-1).astype(np.uint8)
    cfg = AugmentConfig(flips=False, rotate90=False, zoom=0.5, rotate_deg=30, brightness=0, contrast=0,
                        saturation=0)
    out_img, out_lab = augment_batch(images, labels, cfg, rng)
    labelled = out_lab != IGNORE_LABEL
    agree = (out_img[..., 0] > 127) == (out_lab == 1)
    assert agree[labelled].mean() > 0.97  # bilinear pixels vs nearest labels differ only on edges
    assert (~labelled).any()  # corners rotated in from outside the patch are unlabelled
    roof = (out_lab == 1).sum(axis=(1, 2))
    assert np.all(roof > 0) and not np.all(roof == 24 * 24)  # moved with the pixels, resized
