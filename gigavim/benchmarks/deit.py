"""DeiT for the Vim-vs-DeiT benchmark: timm's when it imports, else the same network built here.

timm needs torchvision, and torchvision wheels are built against one torch each: on a host pinned
to a CPU-only torch without a matching torchvision (this project's CI machine), ``import timm``
fails. The replica is timm's ``VisionTransformer`` as DeiT-Ti/-S configure it — conv patch
embedding, class token, learned position embedding, pre-norm blocks (LayerNorm eps 1e-6, qkv
with bias, ``F.scaled_dot_product_attention``, 4× GELU MLP), final LayerNorm — with the same
parameter count (5.52 M for Ti, 21.67 M for S without the classifier; timm lists 5.72 M and
22.05 M with its 1000-class head), so time and memory are comparable.
Benchmark rows say which one ran.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONFIGS = {"deit_tiny_patch16_224": (192, 3), "deit_small_patch16_224": (384, 6)}  # width, heads


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.proj(attn.transpose(1, 2).reshape(b, n, c))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class DeiT(nn.Module):
    """timm's DeiT (``VisionTransformer``, class token, no distillation token) without a head."""

    def __init__(self, dim: int, heads: int, img_size: int, depth: int = 12, patch: int = 16) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, (img_size // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*(_Block(dim, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.norm(self.blocks(x))


def create_deit(name: str, img_size: int) -> tuple[nn.Module, str]:
    """(network, "timm" or "replica") for a timm DeiT name at ``img_size``² inputs."""
    try:
        import timm

        return timm.create_model(name, pretrained=False, num_classes=0, img_size=img_size), "timm"
    except Exception:  # ImportError, or torchvision built for another torch (RuntimeError at import)
        dim, heads = CONFIGS[name]
        return DeiT(dim, heads, img_size), "replica"
