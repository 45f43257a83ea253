"""VisionMamba behaviour beyond parity: any input size, dense features, training support, init."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gigavim.models import VisionMamba


@pytest.fixture
def model(small_kwargs):
    torch.manual_seed(0)
    return VisionMamba(**small_kwargs).eval()


def test_gradients_reach_every_parameter(small_kwargs):
    torch.manual_seed(0)
    model = VisionMamba(**small_kwargs).train()
    model(torch.randn(2, 3, 32, 40)).square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_gradient_checkpointing_gives_the_same_gradients(small_kwargs):
    torch.manual_seed(0)
    model = VisionMamba(**small_kwargs)
    x = torch.randn(1, 3, 24, 32)
    model(x).sum().backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[n], msg=n)


@pytest.mark.parametrize("hw", [(37, 53), (8, 64), (5, 3), (64, 20)])
def test_any_input_size_pads_to_the_stride_grid(model, hw):
    """Odd sizes run and equal the same image zero-padded at the bottom/right by hand."""
    x = torch.randn(2, 3, *hw)
    gh, gw = model.grid(*hw)
    assert (gh, gw) == tuple(max(0, math.ceil((s - 8) / 8)) + 1 for s in hw)
    with torch.no_grad():
        feats = model.forward_features(x)
        padded = model.forward_features(F.pad(x, (0, gw * 8 - hw[1], 0, gh * 8 - hw[0])))
    assert feats.shape == (2, gh * gw + 1, 32)
    torch.testing.assert_close(feats, padded)


def test_overlapping_patches_grid(small_kwargs):
    """stride < patch ("+" models): grid = (H - patch)//stride + 1 on the grid, e.g. 27 at 224/16/8."""
    model = VisionMamba(**{**small_kwargs, "patch_size": 16, "stride": 8, "img_size": 224})
    assert model.base_grid == (27, 27) and model.pos_embed.shape == (1, 730, 32)
    assert model.grid(37, 100) == (4, 12)


def test_intermediates_are_residual_stream_maps(model):
    x = torch.randn(2, 3, 37, 53)
    gh, gw = model.grid(37, 53)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x, indices=[0, -1], norm=True)
        feats = model.forward_features(x)
        early = model.forward_intermediates(x, indices=[0], stop_early=True, intermediates_only=True)
        nlc = model.forward_intermediates(x, indices=1, output_fmt="NLC", intermediates_only=True)
    assert [m.shape for m in maps] == [(2, 32, gh, gw)] * 2
    torch.testing.assert_close(final, feats)
    m = gh * gw
    patches = torch.cat([feats[:, :m // 2], feats[:, m // 2 + 1:]], dim=1)  # class token removed
    torch.testing.assert_close(maps[1], patches.transpose(1, 2).reshape(2, 32, gh, gw))
    assert nlc[0].shape == (2, m, 32)
    torch.testing.assert_close(model.norm_f(nlc[0]), patches)
    # Unnormalised tap 0 = embedded tokens + the first mixer's output; normalised equals norm_f of it.
    torch.testing.assert_close(maps[0], model.norm_f(early[0].permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
    with pytest.raises(ValueError, match="out of range"):
        model.forward_intermediates(x, indices=[5])


def test_drop_path_is_active_only_in_training(small_kwargs):
    torch.manual_seed(0)
    model = VisionMamba(**{**small_kwargs, "drop_path_rate": 0.5})
    x = torch.randn(8, 3, 16, 16)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), model(x))
        model.train()
        outs = [model(x) for _ in range(3)]
    assert not torch.equal(outs[0], outs[1]) or not torch.equal(outs[1], outs[2])
    assert [blk.drop_path.p for blk in model.layers] == [0.0, 0.5]


def test_official_initialisation(small_kwargs):
    """vim-official.md §4.1, including the asymmetric backward dt_proj."""
    torch.manual_seed(0)
    model = VisionMamba(**{**small_kwargs, "depth": 4})
    mixer = model.layers[0].mixer
    torch.testing.assert_close(-torch.exp(mixer.A_log), -torch.arange(1.0, 17.0).expand(64, 16))
    assert torch.equal(mixer.A_b_log, mixer.A_log) and (mixer.D == 1).all() and (mixer.D_b == 1).all()
    dt = F.softplus(mixer.dt_proj.bias)
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 0.1 * 1.001 and dt.std() > 0
    assert (mixer.dt_proj_b.bias == 0).all()
    bound = mixer.dt_rank ** -0.5
    assert mixer.dt_proj.weight.abs().max() <= bound
    # out_proj: kaiming-uniform(a=√5) bound 1/√fan_in, then / √depth.
    assert mixer.out_proj.weight.abs().max() <= 1 / math.sqrt(64) / 2 + 1e-6
    assert (model.patch_embed.proj.bias == 0).all() and (model.head.bias == 0).all()
    assert model.pos_embed.std().item() == pytest.approx(0.02, rel=0.2)


def test_sincos_width_not_divisible_by_4_is_refused_when_building():
    """Refused as a ModelError at build time, not as a ValueError in the first forward pass."""
    from gigavim.errors import ModelError
    from gigavim.models.factory import build_segmenter

    backbone = {"embed_dim": 30, "depth": 1, "patch_size": 4, "stride": 4, "pos_embed_mode": "sincos",
                "cls_token": "none"}
    with pytest.raises(ModelError, match="divisible by 4"):
        build_segmenter(backbone=backbone, num_classes=2)
