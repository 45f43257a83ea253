"""Segmentation heads: token-grid feature maps → per-pixel class logits at the input size.

Both heads take the list of (B, D, h, w) maps from ``VisionMamba.forward_intermediates`` (all at
the patch stride) and the input's (H, W). :class:`LightHead` is a linear probe (1×1 conv then
bilinear upsampling); :class:`FPNHead` first builds a 4-level pyramid (×4, ×2, ×1, ×½, as the
official Vim segmentation backbone does) and fuses it UperNet style. GroupNorm is used instead
of BatchNorm because gigapixel training often runs with one large tile per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn


def upsample_to_image(logits: torch.Tensor, grid_hw: tuple[int, int], image_hw: Sequence[int],
                      stride: int, patch: int) -> torch.Tensor:
    """Resize a map over the token grid (any multiple of it) to the image's pixels, aligned.

    Token (i, j) looks at pixels [i·stride, i·stride + patch), so its centre lies ``(patch −
    stride)/2`` pixels further than a plain ×stride upsampling puts it; that shift is applied by
    replicate-padding before cropping away the bottom/right padding the patch embedding added.
    """
    height, width = int(image_hw[0]), int(image_hw[1])
    size = (grid_hw[0] * stride, grid_hw[1] * stride)
    out = logits if tuple(logits.shape[-2:]) == size else F.interpolate(
        logits, size=size, mode="bilinear", align_corners=False)  # scale 1 is the identity
    shift = (patch - stride) // 2
    if shift:
        out = F.pad(out, (shift, shift, shift, shift), mode="replicate")
    return out[..., :height, :width]


def inference_layout(x: torch.Tensor, training: bool) -> torch.memory_format:
    """Channels-last for CPU inference: oneDNN's convolutions, GroupNorm and bilinear resizing run
    on NHWC maps without reordering each one to a blocked layout and back (1.3× on the nuclei-he
    head); the values are the same up to float rounding. Training and GPUs keep NCHW."""
    return torch.channels_last if x.device.type == "cpu" and not training else torch.contiguous_format


@cache
def bf16_native() -> bool:
    """Whether this CPU has bfloat16 dot-product instructions (AVX512-BF16 or AMX): only there are
    bf16 convolutions faster than float32 ones (elsewhere oneDNN emulates them, slower)."""
    return any(getattr(torch.cpu, probe, lambda: False)()
               for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def norm_groups(channels: int) -> int:
    """GroupNorm groups: up to 32, at least 4 channels each (tiny maps stay non-degenerate)."""
    return next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0 and (channels // g >= 4 or g == 1))


def conv_norm_act(cin: int, cout: int, kernel: int = 1, norm: bool = True) -> nn.Sequential:
    """Conv → GroupNorm → ReLU: the unit every FPN/UperNet stage is made of.

    ``norm=False`` (conv with bias) is for globally pooled 1×1 maps, where a per-sample norm
    would erase the signal.
    """
    conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=not norm)
    if not norm:
        return nn.Sequential(conv, nn.ReLU(inplace=True))
    return nn.Sequential(conv, nn.GroupNorm(norm_groups(cout), cout), nn.ReLU(inplace=True))


class LightHead(nn.Module):
    """Concatenated tapped maps → (optional hidden 1×1 layer) → 1×1 classifier → upsample."""

    def __init__(self, embed_dim: int, num_classes: int, stride: int, patch_size: int, num_inputs: int = 1,
                 hidden: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        self.stride, self.patch_size = stride, patch_size
        cin = embed_dim * num_inputs
        self.hidden = conv_norm_act(cin, hidden) if hidden else nn.Identity()
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(hidden or cin, num_classes, 1)

    def forward(self, features: Sequence[torch.Tensor], image_hw: Sequence[int]) -> torch.Tensor:
        x = features[0] if len(features) == 1 else torch.cat(list(features), dim=1)
        grid_hw = (x.shape[-2], x.shape[-1])
        logits = self.classifier(self.dropout(self.hidden(x.to(self.classifier.weight.dtype))))
        return upsample_to_image(logits, grid_hw, image_hw, self.stride, self.patch_size)


class PyramidPooling(nn.Module):
    """PSP module on the coarsest level: global context at several pooled scales."""

    def __init__(self, cin: int, channels: int, pool_scales: Sequence[int]) -> None:
        super().__init__()
        self.pool_scales = tuple(pool_scales)
        self.stages = nn.ModuleList(conv_norm_act(cin, channels, norm=False) for _ in self.pool_scales)
        self.bottleneck = conv_norm_act(cin + channels * len(self.pool_scales), channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        outs = [x] + [
            F.interpolate(stage(F.adaptive_avg_pool2d(x, s)), size=size, mode="bilinear", align_corners=False)
            for s, stage in zip(self.pool_scales, self.stages, strict=True)
        ]
        return self.bottleneck(torch.cat(outs, dim=1))


class FPNHead(nn.Module):
    """Four tapped maps → ×4/×2/×1/×½ pyramid → UperNet (PPM + FPN + fuse) → logits at input size.

    ``cpu_bf16``: CPU inference runs the head under bf16 autocast on CPUs with native bf16
    (AVX512-BF16 or AMX; elsewhere it is ignored): ~1.3× on top of channels-last, logits within
    ~0.03 of float32's (labels measured in docs/models.md). Off by default; training never uses it.
    """

    def __init__(self, embed_dim: int, num_classes: int, stride: int, patch_size: int, channels: int = 128,
                 pool_scales: Sequence[int] = (1, 2, 3, 6), dropout: float = 0.1, cpu_bf16: bool = False,
                 ) -> None:
        super().__init__()
        self.stride, self.patch_size = stride, patch_size
        self.cpu_bf16 = cpu_bf16
        d = embed_dim
        self.rescale = nn.ModuleList([
            nn.Sequential(nn.ConvTranspose2d(d, d, 2, 2), nn.GroupNorm(norm_groups(d), d), nn.GELU(),
                          nn.ConvTranspose2d(d, d, 2, 2)),
            nn.ConvTranspose2d(d, d, 2, 2),
            nn.Identity(),
            nn.MaxPool2d(2, ceil_mode=True),
        ])
        self.ppm = PyramidPooling(d, channels, pool_scales)
        self.lateral = nn.ModuleList(conv_norm_act(d, channels) for _ in range(3))
        self.smooth = nn.ModuleList(conv_norm_act(channels, channels, 3) for _ in range(3))
        self.fuse = conv_norm_act(4 * channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: Sequence[torch.Tensor], image_hw: Sequence[int]) -> torch.Tensor:
        if len(features) == 1:
            features = list(features) * 4
        if len(features) != 4:
            raise ValueError(f"FPNHead needs 1 or 4 feature maps, got {len(features)}")
        grid_hw = (features[0].shape[-2], features[0].shape[-1])
        dtype = self.classifier.weight.dtype
        layout = inference_layout(features[0], self.training)
        bf16 = self.cpu_bf16 and layout == torch.channels_last and dtype == torch.float32 and bf16_native()
        # CPU inference takes the batch one image at a time: the full-resolution maps (4 ×
        # channels per pixel) are most of a forward's memory, and a batch of four 384² tiles held
        # them all at once (~0.6 GB per network lane); per image the CPU convolutions are as
        # fast. A GPU keeps the batch (its throughput needs it).
        batch = features[0].shape[0]
        whole = self.training or batch == 1 or features[0].device.type != "cpu"
        singles = [list(features)] if whole else [[f[i:i + 1] for f in features] for i in range(batch)]
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            parts = [self._logits([f.to(dtype, memory_format=layout) for f in one]).to(dtype)
                     for one in singles]
        logits = parts[0] if len(parts) == 1 else torch.cat(parts)
        logits = upsample_to_image(logits, grid_hw, image_hw, self.stride, self.patch_size)
        return logits.contiguous()

    def _logits(self, features: list[torch.Tensor]) -> torch.Tensor:
        levels = [m(f) for m, f in zip(self.rescale, features, strict=True)]
        maps = [lat(x) for lat, x in zip(self.lateral, levels[:3], strict=True)] + [self.ppm(levels[3])]
        for i in (2, 1, 0):  # top-down pathway
            maps[i] = maps[i] + F.interpolate(maps[i + 1], size=maps[i].shape[-2:], mode="bilinear",
                                              align_corners=False)
        outs = [smooth(m) for smooth, m in zip(self.smooth, maps[:3], strict=True)] + [maps[3]]
        size = outs[0].shape[-2:]
        outs = [outs[0]] + [F.interpolate(o, size=size, mode="bilinear", align_corners=False)
                            for o in outs[1:]]
        return self.classifier(self.dropout(self.fuse(torch.cat(outs, dim=1))))


HEADS: dict[str, type[nn.Module]] = {"light": LightHead, "fpn": FPNHead}
