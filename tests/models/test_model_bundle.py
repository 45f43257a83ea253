"""A segmenter saved as a bundle and loaded back computes the same thing."""

from __future__ import annotations

import json

import pytest
import torch

from gigavim.models import build_segmenter
from gigavim.models.bundle import ModelBundle, ModelMeta, load_bundle_file


@pytest.mark.parametrize("head", [{"kind": "light", "hidden": 16}, {"kind": "fpn", "channels": 16}])
def test_bundle_round_trip_gives_identical_outputs(tmp_path, head):
    arch = {"backbone": {"name": "vim_tiny_patch16_224", "embed_dim": 32, "depth": 4,
                         "pos_embed_mode": "learned+sincos", "cls_token": "none"},
            "head": head, "num_classes": 3}
    json.dumps(arch)  # bundles store arch as JSON-like metadata
    torch.manual_seed(0)
    net = build_segmenter(**arch).eval()
    meta = ModelMeta(name="test", classes=["bg", "a", "b"], colors=[(0, 0, 0), (255, 0, 0), (0, 255, 0)],
                     arch=arch)
    path = ModelBundle(net, meta).save(tmp_path / "m.pt")
    loaded = load_bundle_file(path)
    x = torch.randn(1, 3, 45, 70)
    with torch.no_grad():
        assert torch.equal(loaded.net(x), net(x))
    assert loaded.meta.arch == arch
