"""Segmenters: per-pixel logits at the input size, alignment, factory and pretrained backbones."""

from __future__ import annotations

import argparse

import pytest
import torch

from gigavim.errors import ModelError
from gigavim.models import build_segmenter, create_model
from gigavim.models.heads import upsample_to_image
from gigavim.models.pos_embed import convert_pos_table

BACKBONE = dict(embed_dim=32, depth=4, patch_size=8, stride=8, img_size=32)


@pytest.mark.parametrize("kind", ["light", "fpn"])
@pytest.mark.parametrize("stride", [8, 4])
def test_segmenter_outputs_logits_at_input_size(kind, stride):
    torch.manual_seed(0)
    net = build_segmenter({**BACKBONE, "stride": stride}, num_classes=3, head={"kind": kind}).eval()
    for hw in [(37, 53), (8, 8), (21, 9)]:
        with torch.no_grad():
            out = net(torch.randn(2, 3, *hw))
        assert out.shape == (2, 3, *hw)
        assert torch.isfinite(out).all()


def test_fpn_segmenter_trains_every_parameter():
    torch.manual_seed(0)
    net = build_segmenter(BACKBONE, num_classes=3, head={"kind": "fpn", "channels": 16}).train()
    assert net.indices == [0, 1, 2, 3]
    target = torch.randint(0, 3, (2, 29, 35))
    torch.nn.functional.cross_entropy(net(torch.randn(2, 3, 29, 35)), target).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_fpn_inference_gives_each_image_of_a_batch_its_own_logits():
    """Inference runs the FPN head image by image (memory); a batch still equals its images."""
    torch.manual_seed(0)
    net = build_segmenter(BACKBONE, num_classes=3, head={"kind": "fpn", "channels": 16}).eval()
    x = torch.randn(3, 3, 40, 48)
    with torch.no_grad():
        batch = net(x)
        alone = torch.cat([net(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, alone, rtol=1e-5, atol=1e-5)
    assert not torch.equal(batch[0], batch[1])


def test_fpn_channels_last_inference_matches_the_training_layout():
    """CPU inference runs the FPN head on channels-last maps (faster oneDNN convolutions); its
    logits must be the NCHW (training) path's up to float rounding, returned contiguous."""
    torch.manual_seed(0)
    net = build_segmenter({**BACKBONE, "stride": 4}, num_classes=3,
                          head={"kind": "fpn", "channels": 16, "dropout": 0.0})
    x = torch.randn(2, 3, 40, 36)
    with torch.no_grad():
        nchw = net.train()(x)  # training keeps NCHW (GroupNorm has no running statistics)
        fast = net.eval()(x)
    assert fast.is_contiguous()
    torch.testing.assert_close(fast, nchw, atol=1e-4, rtol=1e-4)


def test_fpn_cpu_bf16_inference_stays_float32_and_close():
    """``cpu_bf16`` runs the head's convolutions in bf16 autocast (only on CPUs with native bf16):
    float32 logits, close to the float32 head's; training never uses it."""
    from gigavim.models.heads import bf16_native

    torch.manual_seed(0)
    head = {"kind": "fpn", "channels": 16, "dropout": 0.0}
    net = build_segmenter({**BACKBONE, "stride": 4}, num_classes=3, head=head).eval()
    fast = build_segmenter({**BACKBONE, "stride": 4}, num_classes=3, head={**head, "cpu_bf16": True})
    fast.load_state_dict(net.state_dict())
    x = torch.randn(2, 3, 40, 36)
    with torch.no_grad():
        ref, got = net(x), fast.eval()(x)
        assert torch.equal(fast.train()(x), net.train()(x))  # training: float32 always
    assert got.dtype == torch.float32 and got.is_contiguous()
    if bf16_native():
        assert not torch.equal(got, ref)
        torch.testing.assert_close(got, ref, atol=0.1, rtol=0.05)
    else:
        assert torch.equal(got, ref)


def test_upsampling_at_the_token_grid_size_is_the_identity():
    logits = torch.randn(2, 3, 16, 12)
    assert torch.equal(upsample_to_image(logits, (4, 3), (16, 12), 4, 4), logits)


def test_upsampling_aligns_token_centres_with_pixels():
    """Token i covers pixels [i·stride, i·stride + patch): its value lands at the patch centre."""
    ramp = torch.arange(10.0)[None, None, None, :].expand(1, 1, 3, 10)  # value = token column
    for patch, stride in [(16, 16), (16, 8), (8, 4)]:
        out = upsample_to_image(ramp, (3, 10), (20, 9 * stride + patch), stride, patch)
        cols = torch.arange(2 * stride, 7 * stride)  # interior: no edge clamping
        centre = (cols - (patch - 1) / 2) / stride
        torch.testing.assert_close(out[0, 0, 0, cols], centre, atol=1e-5, rtol=0)


def test_factory_errors_are_model_errors():
    with pytest.raises(ModelError, match="unknown head kind"):
        build_segmenter(BACKBONE, num_classes=2, head={"kind": "mlp"})
    with pytest.raises(ModelError, match="invalid backbone"):
        build_segmenter({**BACKBONE, "pos_embed_mode": "rope"}, num_classes=2)
    with pytest.raises(ModelError, match="invalid head"):
        build_segmenter(BACKBONE, num_classes=2, head={"kind": "fpn", "colour": 1})
    with pytest.raises(ModelError, match="unknown model architecture keys: neck"):
        build_segmenter(backbone=BACKBONE, num_classes=2, neck={})
    with pytest.raises(ModelError, match="needs a 'backbone'"):
        build_segmenter(head={"kind": "light"}, num_classes=2)


def test_backbone_from_official_checkpoint_file(tmp_path):
    """Training-time init: official weights into a 4-band, no-cls, other-grid backbone."""
    torch.manual_seed(0)
    official = create_model("vim_tiny_patch16_224", img_size=32, patch_size=8, stride=8, depth=2,
                            embed_dim=32, num_classes=7)
    path = tmp_path / "vim_official.pth"
    torch.save({"model": official.state_dict(), "model_ema": official.state_dict(), "epoch": 1,
                "args": argparse.Namespace(model="vim_tiny_patch16_224", input_size=32)}, path)
    arch = {**BACKBONE, "depth": 2, "img_size": 48, "in_chans": 4, "cls_token": "none"}
    net = build_segmenter(arch, num_classes=2, pretrained_backbone=path)
    bb = net.backbone
    torch.testing.assert_close(bb.layers[1].mixer.A_b_log, official.layers[1].mixer.A_b_log)
    torch.testing.assert_close(bb.norm_f.weight, official.norm_f.weight)
    w = official.patch_embed.proj.weight
    torch.testing.assert_close(bb.patch_embed.proj.weight, torch.cat([w, w[:, :1]], dim=1) * 0.75)
    expected = convert_pos_table(official.pos_embed, (4, 4), "middle", (6, 6), "none")
    torch.testing.assert_close(bb.pos_embed, expected)
    with pytest.raises(ModelError, match=r"vim_official\.pth: patch embedding"):
        build_segmenter({**arch, "embed_dim": 64}, num_classes=2, pretrained_backbone=path)
