"""Small building blocks of the Vim backbone: RMSNorm, DropPath and the padding patch embedding.

They are written out here (rather than imported from timm) because the official checkpoints fix
their parameter names and numerics: RMSNorm is weight-only with eps 1e-5 and computes in at least
float32, and the patch embedding is a plain strided Conv2d named ``patch_embed.proj``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64 (for exact parity tests); everything lower computes in float32."""
    return torch.promote_types(dtype, torch.float32)


def channels_first_linear(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(K, C) ``weight`` applied to channel-first ``x`` (B, C, L) → (B, K, L), contiguous.

    An explicit ``bmm``: it reads either layout of each (C, L) matrix in place, so a
    channel-first view of token-major memory costs no copy, and its result is the contiguous
    layout the fused CPU kernels read. ``torch.matmul`` folds the batch into one ``mm`` instead
    and hands back a transposed view, which each kernel call then copied (~15 % of a small
    Vim's CPU forward).
    """
    return torch.bmm(weight.expand(x.shape[0], -1, -1), x)


def token_major_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Channel-first ``x`` (B, C, L) through a (K, C) ``weight`` → token-major (B, L, K), contiguous,
    without first copying ``x`` to token-major order (see :func:`channels_first_linear`)."""
    return torch.bmm(x.transpose(1, 2), weight.t().expand(x.shape[0], -1, -1))


class RMSNorm(nn.Module):
    """y = x · rsqrt(mean(x²) + eps) · w: no bias, no mean subtraction (the released Vim norm).

    Computes in float32 (float64 for float64 input) like the fused Triton kernel, and returns
    ``out_dtype`` (default: the input's dtype).
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
        cd = compute_dtype(x.dtype)
        xc = x.to(cd)
        y = xc * torch.rsqrt(xc.square().mean(-1, keepdim=True) + self.eps) * self.weight.to(cd)
        return y.to(out_dtype or x.dtype)


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def grid_size(size: int, patch: int, stride: int) -> int:
    """Tokens along one axis for ``size`` pixels once padded up to the stride grid (≥ 1)."""
    return max(0, math.ceil((size - patch) / stride)) + 1


class PatchEmbed(nn.Module):
    """Image → row-major token sequence (B, h·w, D) through a Conv2d(kernel=patch, stride=stride).

    Any H, W is accepted: the image is zero-padded at the bottom/right up to the smallest size
    ``patch + k·stride`` that covers it, so every pixel belongs to at least one patch and the
    token grid is ``grid_size(H) × grid_size(W)``. Zero is the normalised mean colour, and sizes
    already on the grid (e.g. 224 for the released models) are not padded at all.
    """

    def __init__(self, patch_size: int = 16, stride: int = 16, in_chans: int = 3, embed_dim: int = 192,
                 ) -> None:
        super().__init__()
        if stride > patch_size:
            raise ValueError(f"stride {stride} larger than patch {patch_size} would skip pixels")
        self.patch_size = patch_size
        self.stride = stride
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Token grid (h, w) for an image of ``height × width`` pixels."""
        return grid_size(height, self.patch_size, self.stride), grid_size(width, self.patch_size, self.stride)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        gh, gw = self.grid(x.shape[-2], x.shape[-1])
        pad_h = (gh - 1) * self.stride + self.patch_size - x.shape[-2]
        pad_w = (gw - 1) * self.stride + self.patch_size - x.shape[-1]
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.proj(x)
        return x.flatten(2).transpose(1, 2), (gh, gw)
