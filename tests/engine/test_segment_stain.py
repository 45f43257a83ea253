"""``segment(..., stain_norm=...)``: the image re-stained like the model's training data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import zarr

from gigavim.engine import segment
from gigavim.engine.plan import TileGrid
from gigavim.errors import UsageError
from gigavim.models.stain import macenko_stain, od_matrix, restain

from .fakes import ArraySource, tiny_bundle

REFERENCE = {"method": "macenko", "stains": [[0.65, 0.07], [0.70, 0.99], [0.29, 0.11]],
             "max_concentrations": [1.9, 1.0]}


def _he_image(h: int = 160, w: int = 200) -> np.ndarray:
    """Blue-purple discs on pink, with texture: an H&E-like tile whose stain is bluer than REFERENCE."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    nuclei = ((yy % 40 - 20) ** 2 + (xx % 40 - 20) ** 2) < 100
    img = np.where(nuclei[..., None], [80, 60, 160], [220, 130, 190]).astype(float)
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


def _probs(path: Path) -> np.ndarray:
    return zarr.open_group(str(path), mode="r")["probabilities/0"][:].astype(int)


def test_tiles_see_the_image_restained_by_one_per_image_map(tmp_path: Path) -> None:
    """The run equals a plain run on the image re-stained by hand with the estimate it reports."""
    bundle = tiny_bundle()
    bundle = dataclasses.replace(bundle, meta=dataclasses.replace(bundle.meta, stain=REFERENCE))
    image = _he_image()
    kw = dict(level=0, tile=64, overlap=16, probabilities=True)
    result = segment(ArraySource([image], mpp=None), [tmp_path / "norm.zarr"], model=bundle, **kw)
    assert result.stain_norm
    grid = TileGrid(image.shape[:2], 64, 16)  # 12 tiles ≤ 16: the estimate samples every tile
    pixels = np.concatenate([image[w.y:w.y + w.height, w.x:w.x + w.width].reshape(-1, 3)
                             for w in (grid.tile_window(*t) for t in grid.tiles())])
    matrix = od_matrix(REFERENCE, *macenko_stain(pixels))
    by_hand = ArraySource([restain(image, matrix)], mpp=None)
    segment(by_hand, [tmp_path / "hand.zarr"], model=tiny_bundle(), **kw)
    plain = segment(ArraySource([image], mpp=None), [tmp_path / "plain.zarr"], model=bundle,
                    stain_norm=False, **kw)
    assert not plain.stain_norm
    norm, hand = _probs(tmp_path / "norm.zarr"), _probs(tmp_path / "hand.zarr")
    assert np.abs(norm - hand).mean() < 0.5 and np.abs(norm - hand).max() <= 8
    assert np.abs(norm - _probs(tmp_path / "plain.zarr")).mean() > 2  # re-staining changed them


def test_stain_norm_needs_a_reference_and_glass_runs_as_it_is(tmp_path: Path) -> None:
    src = ArraySource([_he_image(64, 64)], mpp=None)
    with pytest.raises(UsageError, match="no reference stain"):
        segment(src, [tmp_path / "a.zarr"], model=tiny_bundle(), level=0, stain_norm=True)
    bundle = tiny_bundle()
    bundle = dataclasses.replace(bundle, meta=dataclasses.replace(bundle.meta, stain=REFERENCE))
    glass = ArraySource([np.full((64, 64, 3), 235, np.uint8)], kind="image", mpp=None)
    with pytest.warns(UserWarning, match="stain normalisation skipped"):
        result = segment(glass, [tmp_path / "b.zarr"], model=bundle, level=0)
    assert not result.stain_norm
