"""Backbone + head as one module: (B, bands, H, W) → (B, K, H, W) logits at the input size."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gigavim.models.vim import VisionMamba


class VimSegmenter(nn.Module):
    """Runs ``backbone.forward_intermediates`` on the chosen blocks and hands the maps to ``head``.

    ``norm_features`` passes each tapped residual stream through the backbone's final RMSNorm
    (the raw residual stream grows with depth; normalised maps train heads more easily).
    Only the blocks up to the last tap run. Any H, W ≥ 1 pixel works (see ``PatchEmbed``).
    """

    def __init__(self, backbone: VisionMamba, head: nn.Module, indices: Sequence[int] | int = 1,
                 norm_features: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.indices = backbone.resolve_indices(indices if isinstance(indices, int) else list(indices))
        self.norm_features = norm_features

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.backbone.set_grad_checkpointing(enable)

    def forward(self, x: torch.Tensor, pos_offset: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
        feats = self.backbone.forward_intermediates(
            x, self.indices, norm=self.norm_features, stop_early=True, intermediates_only=True,
            pos_offset=pos_offset)
        return self.head(feats, x.shape[-2:])
