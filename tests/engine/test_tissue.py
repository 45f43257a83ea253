"""A tissue model instead of Otsu: one forward pass on an overview decides which tiles run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from gigavim.engine import segment
from gigavim.engine.tissue import model_tissue_mask
from gigavim.models.bundle import ModelBundle, ModelMeta

from .fakes import FunctionSource, blobs, tiny_bundle


def _pink_detector(mpp: float | None = 4.0) -> ModelBundle:
    """Class 1 where red exceeds green (stained tissue), class 0 on grey/white glass."""
    net = nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        net.weight.zero_()
        net.weight[1, 0], net.weight[1, 1] = 2.0, -2.0
        net.bias.copy_(torch.tensor([0.0, -1.0]))
    meta = ModelMeta(name="pink", classes=["background", "tissue"], colors=[(0, 0, 0), (255, 0, 255)],
                     arch={"name": "pink"}, mpp=mpp, trained=True)
    return ModelBundle(net.eval(), meta)


def test_model_mask_finds_the_tissue_blobs() -> None:
    src = FunctionSource(2400, 3000, blobs, mpp=0.5)
    m = model_tissue_mask(src, _pink_detector(mpp=4.0))
    assert m.downsample == 8 and m.mask.shape == (300, 375)  # the model's 4 µm/px
    yy, xx = np.mgrid[0:300, 0:375] * 8 + 4
    truth = blobs(yy, xx)[..., 1] < 200
    assert m.mask[truth].all() and (m.mask & truth).sum() / (m.mask | truth).sum() > 0.75
    assert not m.mask[((yy % 300) < 40) & ((xx % 300) < 40)].any()


def test_segment_skips_what_the_tissue_model_calls_glass(tmp_path: Path) -> None:
    src = FunctionSource(900, 1200, lambda yy, xx: np.where(((yy < 300) & (xx < 300))[..., None],
                                                            blobs(yy, xx), 245))
    result = segment(src, [tmp_path / "a.zarr"], model=tiny_bundle(), level=0, tile=128, overlap=32,
                     tissue_model=_pink_detector())
    assert 0 < result.tiles_foreground < result.tiles_total / 3
