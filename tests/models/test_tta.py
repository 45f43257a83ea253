"""Test-time augmentation (gigavim.models.tta): exact means of the views' probabilities."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from gigavim.errors import ModelError, UsageError
from gigavim.models.bundle import ModelBundle, ModelMeta, load_bundle_file
from gigavim.models.tta import TTANet, resolve_views, with_tta

Op = Callable[[torch.Tensor], torch.Tensor]


def _rot(k: int) -> Op:
    return lambda t: torch.rot90(t, k, dims=(-2, -1))


def _flip(*dims: int) -> Op:
    return lambda t: torch.flip(t, dims)


# (view, its inverse), written independently of the module's own table
FLIPS: list[tuple[Op, Op]] = [(lambda t: t, lambda t: t), (_flip(-1), _flip(-1)), (_flip(-2), _flip(-2)),
                              (_rot(2), _rot(2))]
DIHEDRAL = [*FLIPS, (_rot(1), _rot(-1)), (_rot(-1), _rot(1)),
            (lambda t: t.transpose(-2, -1), lambda t: t.transpose(-2, -1)),
            (lambda t: _rot(2)(t.transpose(-2, -1)), lambda t: _rot(2)(t).transpose(-2, -1))]
VIEW_SETS = {2: FLIPS[:2], 4: FLIPS, 8: DIHEDRAL}


def _conv(out: int = 3, kernel: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, kernel, padding=kernel // 2), nn.ReLU(),
                        nn.Conv2d(8, out, kernel, padding=kernel // 2))
    return net.eval()


@torch.no_grad()
def test_tta_of_a_network_that_ignores_orientation_is_its_plain_output() -> None:
    net = _conv(kernel=1)  # pointwise: every flip and rotation commutes with it
    x = torch.randn(2, 3, 32, 32)
    plain = torch.softmax(net(x), dim=1)
    for views in (2, 4, 8):
        torch.testing.assert_close(torch.softmax(TTANet(net, views)(x), dim=1), plain)


@pytest.mark.parametrize("views", [2, 4, 8])
@pytest.mark.parametrize("shape", [(32, 32), (24, 40)])
@torch.no_grad()
def test_tta_is_the_mean_of_the_views_probabilities(views: int, shape: tuple[int, int]) -> None:
    net = _conv(kernel=3)
    x = torch.randn(2, 3, *shape)
    want = torch.stack([back(torch.softmax(net(view(x)), dim=1)) for view, back in VIEW_SETS[views]]).mean(0)
    got = torch.softmax(TTANet(net, views)(x), dim=1)
    torch.testing.assert_close(got, want)
    assert (got - torch.softmax(net(x), dim=1)).abs().max() > 1e-3  # the views do differ


@torch.no_grad()
def test_a_single_logit_head_averages_sigmoids() -> None:
    net = _conv(out=1)
    x = torch.randn(1, 3, 16, 16)
    want = torch.stack([back(torch.sigmoid(net(view(x)))) for view, back in DIHEDRAL]).mean(0)
    got = torch.sigmoid(TTANet(net, 8)(x))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


@torch.no_grad()
def test_certain_probabilities_stay_finite_logits() -> None:
    class Certain(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x[:, :1] * 0 + 1e4, x[:, :1] * 0 - 1e4], dim=1)

    out = TTANet(Certain(), 4)(torch.zeros(1, 3, 8, 8))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(torch.softmax(out, 1)[:, 0], torch.ones(1, 8, 8))


def _meta(tta: int = 1) -> ModelMeta:
    return ModelMeta(name="m", classes=["a", "b", "c"], colors=[(0, 0, 0)] * 3, arch={}, tta=tta)


def test_views_come_from_the_call_then_the_model_and_image_context_cannot_use_them() -> None:
    assert resolve_views(_meta(4), None) == 4
    assert resolve_views(_meta(4), 1) == 1
    assert resolve_views(_meta(1), True) == 8
    assert resolve_views(_meta(4), None, context="image") == 1  # the model's default gives way
    with pytest.raises(UsageError, match="--tta takes 1"):
        resolve_views(_meta(), 3)
    with pytest.raises(UsageError, match="--context image"):
        resolve_views(_meta(), 8, context="image")


def test_with_tta_wraps_once_and_unwraps_for_one_view() -> None:
    bundle = ModelBundle(_conv(), _meta())
    assert with_tta(bundle) is bundle
    wrapped = with_tta(bundle, 8)
    assert isinstance(wrapped.net, TTANet) and wrapped.meta.tta == 8 and bundle.meta.tta == 1
    again = with_tta(wrapped, 4)
    assert isinstance(again.net, TTANet) and again.net.net is bundle.net and again.net.views == 4
    assert with_tta(wrapped, 1).net is bundle.net


def test_the_model_default_is_stored_and_checked(tmp_path: Path) -> None:
    from gigavim.models.factory import build_segmenter

    arch = {"backbone": {"embed_dim": 16, "depth": 1, "patch_size": 8, "stride": 8, "img_size": 32,
                         "cls_token": "none", "pos_embed_mode": "sincos"},
            "head": {"kind": "light"}, "num_classes": 3}
    meta = _meta(4)
    meta.arch = arch
    path = ModelBundle(build_segmenter(**arch).eval(), meta).save(tmp_path / "m.pt")
    loaded = load_bundle_file(path)
    assert loaded.meta.tta == 4 and isinstance(with_tta(loaded).net, TTANet)
    payload = torch.load(path, weights_only=True)
    payload["meta"]["tta"] = 3
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ModelError, match="'tta' must be 1, 2, 4 or 8"):
        load_bundle_file(tmp_path / "bad.pt")
