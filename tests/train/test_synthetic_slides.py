"""Synthetic tissue-model scenes: labels are right by construction, pseudo-labels skip ink."""

from __future__ import annotations

import numpy as np

from gigavim.train.synthetic_slides import add_pen, glass, make_scene, pseudo_tissue_mask


def _he_texture(rng: np.random.Generator) -> np.ndarray:
    tex = np.empty((32, 32, 3))
    tex[...] = (200, 120, 170)  # eosin pink
    nuclei = rng.random((32, 32)) > 0.8
    tex[nuclei] = (90, 50, 140)  # haematoxylin purple
    return tex.astype(np.uint8)


def test_scenes_have_tissue_only_where_texture_was_pasted() -> None:
    rng = np.random.default_rng(0)
    textures = [_he_texture(rng)]
    for _ in range(5):
        img, lab = make_scene(textures, rng, shape=(64, 64))
        assert img.dtype == np.uint8 and img.shape == (64, 64, 3)
        assert set(np.unique(lab)) <= {0, 1}
        if lab.any():  # tissue pixels are pinker (less green) than glass on average
            assert img[lab == 1, 1].mean() < img[lab == 0, 1].mean()


def test_pen_on_glass_is_not_tissue_for_the_pseudo_labeller() -> None:
    rng = np.random.default_rng(3)
    img = glass((96, 96), rng)
    img[20:60, 20:60] = _he_texture(rng)[np.arange(40) % 32][:, np.arange(40) % 32]
    img[70:80, 5:90] = (35, 140, 75)  # a green marker stroke on glass
    mask = pseudo_tissue_mask(np.clip(img, 0, 255).astype(np.uint8), min_size=16)
    assert mask[25:55, 25:55].mean() > 0.95
    assert mask[70:80, 5:90].mean() < 0.05
    assert mask[:15].mean() == 0  # plain glass


def test_pen_stroke_reports_its_pixels() -> None:
    rng = np.random.default_rng(1)
    img = np.full((64, 64, 3), 240.0)
    before = img.copy()
    mask = add_pen(img, rng)
    changed = np.abs(img - before).sum(axis=-1) > 0
    np.testing.assert_array_equal(changed, mask)
