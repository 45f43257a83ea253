"""``segment(..., tta=N)``: test-time augmentation through the engine's tiles, exactly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from gigavim.engine import segment
from gigavim.errors import UsageError

from .fakes import ArraySource, tiny_bundle
from .test_segment import _texture


def _probs(path: Path) -> np.ndarray:
    return zarr.open_group(str(path), mode="r")["probabilities/0"][:].astype(np.float64) / 255


@torch.no_grad()
def test_tiled_tta_equals_the_mean_of_the_views_on_the_whole_image(tmp_path: Path) -> None:
    """Blended tiles with 8 views reproduce the 8 views' mean probabilities computed on the
    whole (non-square) image at once: TTA is a function of each tile, so tiling stays exact."""
    bundle = tiny_bundle()
    image = _texture()
    src = ArraySource([image], kind="image", mpp=None)
    results = {}
    for name, tile, overlap in (("whole", 512, 0), ("tiled", 96, 24)):
        results[name] = segment(src, [tmp_path / f"{name}.zarr"], model=bundle, level=0, tile=tile,
                                overlap=overlap, probabilities=True, tta=8)
    assert results["tiled"].tta == 8
    x = bundle.normalize(image[None].astype(np.float32))
    views = []
    for k in range(4):
        for flip in (False, True):
            v = torch.rot90(x, k, dims=(-2, -1))
            v = torch.flip(v, (-1,)) if flip else v
            p = torch.softmax(bundle.net(v), dim=1)
            p = torch.flip(p, (-1,)) if flip else p
            views.append(torch.rot90(p, -k, dims=(-2, -1)))
    want = torch.stack(views).mean(0)[0].numpy()
    whole, tiled = _probs(tmp_path / "whole.zarr"), _probs(tmp_path / "tiled.zarr")
    assert np.abs(whole - want).max() <= 1 / 255
    assert np.abs(tiled - whole).max() <= 3 / 255  # edge pixels weigh < 1 % against the neighbour
    plain = torch.softmax(bundle.net(x), dim=1)[0].numpy()
    assert np.abs(whole - plain).max() > 0.05  # the views do change the answer


def test_the_model_default_applies_unless_the_call_says_otherwise(tmp_path: Path) -> None:
    bundle = tiny_bundle()
    bundle = dataclasses.replace(bundle, meta=dataclasses.replace(bundle.meta, tta=4))
    src = ArraySource([_texture(64, 64)], kind="image", mpp=None)
    assert segment(src, [tmp_path / "a.zarr"], model=bundle, level=0).tta == 4
    assert segment(src, [tmp_path / "b.zarr"], model=bundle, level=0, tta=1).tta == 1
    assert segment(src, [tmp_path / "c.zarr"], model=bundle, level=0, tta=True).tta == 8


@pytest.mark.parametrize(("tta", "context", "match"), [(3, "tile", "--tta takes 1"),
                                                       (8, "image", "--context image")])
def test_impossible_tta_is_refused_before_any_output(tmp_path: Path, tta: int, context: str,
                                                     match: str) -> None:
    src = ArraySource([_texture(64, 64)], kind="image", mpp=None)
    with pytest.raises(UsageError, match=match):
        segment(src, [tmp_path / "a.zarr"], model=tiny_bundle(), level=0, tta=tta, context=context)
    assert not (tmp_path / "a.zarr").exists()
