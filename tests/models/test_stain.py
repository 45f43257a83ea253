"""Macenko stain normalisation (gigavim.models.stain) on images made from known stains."""

from __future__ import annotations

import numpy as np
import pytest

from gigavim.errors import InputError
from gigavim.models.stain import IO, macenko_stain, od_matrix, reference, restain

H_STAIN = np.array([0.65, 0.70, 0.29])
E_STAIN = np.array([0.07, 0.99, 0.11])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def stained(stains: np.ndarray, seed: int = 0, n: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(64, 64, 3) RGB made of random haematoxylin/eosin concentrations, and those concentrations."""
    rng = np.random.default_rng(seed)
    conc = np.stack([rng.gamma(2.0, 0.35, n), rng.gamma(3.0, 0.2, n)])
    od = stains @ conc
    return (IO * np.exp(-od)).T.reshape(64, 64, 3).clip(0, 255), conc


def test_macenko_finds_the_stains_an_image_was_made_of() -> None:
    truth = np.stack([_unit(H_STAIN), _unit(E_STAIN)], axis=1)
    rgb, _ = stained(truth)
    stains, max_c = macenko_stain(rgb)
    cosines = (stains * truth).sum(axis=0)
    assert cosines.min() > 0.99  # haematoxylin first, eosin second, within ~8°
    assert np.all(max_c > 0)


def test_restaining_maps_one_lab_onto_another() -> None:
    """The same tissue (concentrations) stained by two labs: lab A re-stained to lab B's
    reference looks like lab B's image, far closer than before."""
    lab_a = np.stack([_unit(H_STAIN + np.array([0.1, -0.1, 0.1])),
                      _unit(E_STAIN + np.array([0.15, 0.0, 0.1]))], axis=1)
    lab_b = np.stack([_unit(H_STAIN), _unit(E_STAIN)], axis=1)
    image_a, _ = stained(lab_a, seed=1)
    image_b, _ = stained(lab_b, seed=1)
    ref = reference([macenko_stain(image_b)])
    out = restain(image_a, od_matrix(ref, *macenko_stain(image_a)))
    before, after = np.abs(image_a - image_b).mean(), np.abs(out - image_b).mean()
    assert after < before / 3 and after < 5
    assert out.dtype == np.float32 and out.shape == image_a.shape


def test_an_images_own_stain_as_reference_changes_almost_nothing() -> None:
    image, _ = stained(np.stack([_unit(H_STAIN), _unit(E_STAIN)], axis=1), seed=2)
    own = macenko_stain(image)
    # under 2 grey levels: only the OD outside the two stains' plane (the +1 of the OD formula) is lost
    assert np.abs(restain(image, od_matrix(reference([own]), *own)) - image).max() < 2.0


def test_glass_is_one_clear_error() -> None:
    with pytest.raises(InputError, match=r"glass\.tif: too little stained tissue"):
        macenko_stain(np.full((64, 64, 3), 240, np.uint8), "glass.tif")


def test_restaining_block_sums_restains_their_means() -> None:
    """The engine hands box-downsampled slide tiles over as sums of k² bytes: a stain-normalised
    model must see exactly what the float32 means would give it."""
    import torch

    from gigavim.io.box import mean_of_sums
    from gigavim.models.bundle import ModelMeta
    from gigavim.models.stain import StainNormalisedBundle

    meta = ModelMeta(name="he", classes=["a", "b"], colors=[(0, 0, 0), (1, 1, 1)], arch={})
    bundle = StainNormalisedBundle(torch.nn.Identity(), meta, matrix=np.diag([1.1, 0.9, 1.0]))
    sums = np.random.default_rng(0).integers(0, 1021, (1, 50, 60, 3)).astype(np.uint16)
    np.testing.assert_array_equal(bundle.normalize_array(sums, channels_last=True, sum_count=4),
                                  bundle.normalize_array(mean_of_sums(sums, 4), channels_last=True))
