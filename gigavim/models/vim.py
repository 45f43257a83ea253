"""Vision Mamba (Vim) backbone: patch tokens → pre-norm bidirectional Mamba blocks → RMSNorm.

Numerically this is the released hustvl/Vim model (middle class token, learned absolute position
table, bimamba v2 with /2, fp32 residual stream) and its ``state_dict`` has the official keys, so
official checkpoints load strictly. On top of that it accepts any input size (padding to the
stride grid, re-gridded or sincos positions), exposes dense per-layer features for segmentation
heads, and supports drop path and per-block gradient checkpointing for training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from gigavim.models.chunked_block import CHUNK_TOKENS, chunked_kernels, forward_chunked
from gigavim.models.layers import DropPath, PatchEmbed, RMSNorm, compute_dtype
from gigavim.models.mixer import BiMambaMixer
from gigavim.models.pos_embed import (
    ClsLayout,
    cls_index,
    insert_cls,
    remove_cls,
    resample_pos_embed,
    sincos_2d,
)

PosEmbedMode = Literal["learned", "sincos", "learned+sincos", "none"]
POS_EMBED_MODES = ("learned", "sincos", "learned+sincos", "none")
CLS_LAYOUTS = ("middle", "first", "none")


class VimBlock(nn.Module):
    """r ← r + DropPath(Mixer(RMSNorm(r))): the official fused Add→Norm→Mixer block, re-associated.

    CPU inference on sequences longer than ``chunk_tokens`` runs chunk by chunk with carried
    states (:mod:`gigavim.models.chunked_block`): same result, a fraction of the memory.
    """

    def __init__(self, dim: int, drop_path: float = 0.0, norm_eps: float = 1e-5, **mixer_kwargs) -> None:
        super().__init__()
        self.mixer = BiMambaMixer(dim, **mixer_kwargs)
        self.norm = RMSNorm(dim, eps=norm_eps)
        self.drop_path = DropPath(drop_path)
        self.chunk_tokens: int | None = CHUNK_TOKENS

    def forward(self, residual: torch.Tensor) -> torch.Tensor:
        fused = chunked_kernels(self, residual)
        if fused is not None:
            return forward_chunked(self, residual, fused)
        hidden = self.mixer(self.norm(residual, out_dtype=self.mixer.in_proj.weight.dtype))
        return residual + self.drop_path(hidden).to(residual.dtype)


def set_inference_chunk(net: nn.Module, tokens: int | None) -> None:
    """Chunk length of chunked CPU inference for every Vim block in ``net`` (None or 0: never)."""
    for module in net.modules():
        if isinstance(module, VimBlock):
            module.chunk_tokens = tokens


def _to_2tuple(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class VisionMamba(nn.Module):
    """The Vim backbone (with an optional linear classifier ``head``; ``num_classes=0`` drops it).

    ``img_size`` only fixes the grid of the learned position table (14×14 for 224/16); inputs of
    any size ≥ 1 pixel work. ``cls_token`` places the class token ("middle": index M//2 as
    released, "first", or "none"). ``pos_embed_mode``: "learned" (table resampled to the input's
    grid), "sincos" (fixed 2-D sin/cos of the absolute token position, any grid, with an offset),
    "learned+sincos" (both added) or "none".
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        patch_size: int = 16,
        stride: int = 16,
        depth: int = 24,
        embed_dim: int = 192,
        d_state: int = 16,
        expand: int = 2,
        d_conv: int = 4,
        dt_rank: int | None = None,
        in_chans: int = 3,
        num_classes: int = 1000,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-5,
        residual_in_fp32: bool = True,
        cls_token: ClsLayout = "middle",
        pos_embed_mode: PosEmbedMode = "learned",
        official_quirk: bool = False,
        divide_out: bool = True,
        sincos_temperature: float = 10000.0,
    ) -> None:
        super().__init__()
        if pos_embed_mode not in POS_EMBED_MODES:
            raise ValueError(f"pos_embed_mode must be one of {POS_EMBED_MODES}, not {pos_embed_mode!r}")
        if cls_token not in CLS_LAYOUTS:
            raise ValueError(f"cls_token must be one of {CLS_LAYOUTS}, not {cls_token!r}")
        if "sincos" in pos_embed_mode and embed_dim % 4:
            raise ValueError(f"sincos position encoding needs embed_dim divisible by 4, got {embed_dim}")
        self.embed_dim = self.num_features = embed_dim
        self.depth = depth
        self.patch_size, self.stride = patch_size, stride
        self.num_classes = num_classes
        self.cls_layout: ClsLayout = cls_token
        self.pos_embed_mode = pos_embed_mode
        self.official_quirk = official_quirk
        self.residual_in_fp32 = residual_in_fp32
        self.sincos_temperature = sincos_temperature
        self.grad_checkpointing = False
        self.img_size = _to_2tuple(img_size)

        # Parameters are listed before child modules in state_dict(): cls_token, pos_embed first.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if cls_token != "none" else None
        self.patch_embed = PatchEmbed(patch_size, stride, in_chans, embed_dim)
        self.base_grid = self.patch_embed.grid(*self.img_size)
        n_pos = self.base_grid[0] * self.base_grid[1] + int(cls_token != "none")
        self.pos_embed = (nn.Parameter(torch.zeros(1, n_pos, embed_dim))
                          if "learned" in pos_embed_mode else None)
        self.pos_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # = linspace(0, rate, depth)
        self.layers = nn.ModuleList(
            VimBlock(embed_dim, drop_path=rates[i], norm_eps=norm_eps, d_state=d_state, d_conv=d_conv,
                     expand=expand, dt_rank=dt_rank, divide_out=divide_out)
            for i in range(depth)
        )
        self.norm_f = RMSNorm(embed_dim, eps=norm_eps)
        self.init_weights()

    # ------------------------------------------------------------------ initialisation
    @torch.no_grad()
    def init_weights(self) -> None:
        """Official from-scratch init (vim-official.md §4.1); the mixers' SSM init is in the mixer."""
        if self.norm_f.weight.is_meta:  # a shape-only build (bundle checks): no values to set, and
            return  # a meta in-place divide imports sympy for its shape check (1.5 s of every load)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        w = self.patch_embed.proj.weight  # lecun normal (truncated, timm's variance_scaling_)
        fan_in = w.shape[1] * w.shape[2] * w.shape[3]
        nn.init.trunc_normal_(w, std=math.sqrt(1.0 / fan_in) / 0.87962566103423978)
        nn.init.zeros_(self.patch_embed.proj.bias)
        if isinstance(self.head, nn.Linear):
            nn.init.trunc_normal_(self.head.weight, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear) and module.bias is not None:
                if not getattr(module.bias, "_no_reinit", False):
                    nn.init.zeros_(module.bias)
        for layer in self.layers:  # GPT-2 style: shrink each residual branch's output projection
            out = layer.mixer.out_proj.weight
            nn.init.kaiming_uniform_(out, a=math.sqrt(5))
            out /= math.sqrt(self.depth)

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    def set_inference_chunk(self, tokens: int | None) -> None:
        """Chunk length of the blocks' chunked CPU inference (None or 0: never chunk)."""
        set_inference_chunk(self, tokens)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass: activation memory of one block, not depth."""
        self.grad_checkpointing = enable

    # ------------------------------------------------------------------ tokens
    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Token grid (h, w) for an input of ``height × width`` pixels."""
        return self.patch_embed.grid(height, width)

    def position_embedding(self, grid_hw: tuple[int, int], offset_yx: tuple[float, float] = (0.0, 0.0),
                           dtype: torch.dtype = torch.float32, device: torch.device | None = None,
                           ) -> torch.Tensor | None:
        """(1, L, D) positions for a grid, class-token slot included (zeros there for sincos)."""
        pos = None
        if self.pos_embed is not None:
            pos = resample_pos_embed(self.pos_embed, self.base_grid, grid_hw, self.cls_layout,
                                     self.official_quirk)
        if "sincos" in self.pos_embed_mode:
            enc = sincos_2d(grid_hw, self.embed_dim, offset_yx, self.sincos_temperature, dtype, device)[None]
            zero = enc.new_zeros(1, 1, self.embed_dim)
            enc = insert_cls(enc, zero, self.cls_layout)
            pos = enc if pos is None else pos + enc
        return pos

    def embed(self, x: torch.Tensor, pos_offset: tuple[float, float] = (0.0, 0.0)
              ) -> tuple[torch.Tensor, tuple[int, int]]:
        """Images (B, C, H, W) → (B, L, D) tokens with class token and positions, and the grid.

        ``pos_offset`` is the (row, col) of this input's first token in a larger token grid;
        only the sincos encoding uses it (a learned table has no meaning outside its grid).
        """
        tokens, grid_hw = self.patch_embed(x)
        tokens = insert_cls(tokens, self.cls_token, self.cls_layout)
        pos = self.position_embedding(grid_hw, pos_offset, tokens.dtype, tokens.device)
        if pos is not None:
            tokens = tokens + pos.to(tokens.dtype)
        return self.pos_drop(tokens), grid_hw

    def _residual(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens.to(compute_dtype(tokens.dtype)) if self.residual_in_fp32 else tokens

    def _run_block(self, block: VimBlock, residual: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, residual, use_reentrant=False)
        return block(residual)

    def _out_dtype(self) -> torch.dtype:
        return self.patch_embed.proj.weight.dtype

    # ------------------------------------------------------------------ forward
    def forward_features(self, x: torch.Tensor, pos_offset: tuple[float, float] = (0.0, 0.0)
                         ) -> torch.Tensor:
        """(B, C, H, W) → the final normalised token sequence (B, L, D), class token in place."""
        tokens, _ = self.embed(x, pos_offset)
        residual = self._residual(tokens)
        for block in self.layers:
            residual = self._run_block(block, residual)
        return self.norm_f(residual, out_dtype=self._out_dtype())

    def pooled(self, features: torch.Tensor) -> torch.Tensor:
        """(B, L, D) → (B, D): the class token's final state, or the token mean without one."""
        if self.cls_layout == "none":
            return features.mean(dim=1)
        return features[:, cls_index(features.shape[1] - 1, self.cls_layout)]

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → classifier logits (B, num_classes) (or pooled features without a head)."""
        return self.forward_head(self.forward_features(x))

    def resolve_indices(self, indices: int | Sequence[int] | None) -> list[int]:
        """None → every block; n → the last n blocks; a list → those blocks (negatives count back)."""
        if indices is None:
            return list(range(self.depth))
        if isinstance(indices, int):
            if not 0 < indices <= self.depth:
                raise ValueError(f"cannot take the last {indices} of {self.depth} blocks")
            return list(range(self.depth - indices, self.depth))
        indices = [int(i) for i in indices]
        if not indices or any(not -self.depth <= i < self.depth for i in indices):
            raise ValueError(f"block indices {indices} out of range for depth {self.depth}")
        return sorted({i % self.depth for i in indices})

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: Literal["NCHW", "NLC"] = "NCHW",
        intermediates_only: bool = False,
        pos_offset: tuple[float, float] = (0.0, 0.0),
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Dense features of chosen blocks for segmentation heads.

        Intermediate k is the **residual stream after block k** (the sum of the embedded tokens
        and the first k+1 mixer outputs, i.e. what block k+1 normalises), passed through
        ``norm_f`` when ``norm=True``; the class token is removed and the tokens are laid out as
        a (B, D, h, w) map at the patch stride ("NCHW") or kept as (B, h·w, D) ("NLC"). The
        official segmentation code's ``use_residual_as_feature`` taps are the same tensors
        (without norm). Returns ``(final normalised tokens, intermediates)``, or only the list
        with ``intermediates_only`` (then ``stop_early`` skips the blocks after the last tap).
        """
        taps = self.resolve_indices(indices)
        tokens, grid_hw = self.embed(x, pos_offset)
        residual = self._residual(tokens)
        last = taps[-1] if (stop_early and intermediates_only) else self.depth - 1
        out: list[torch.Tensor] = []
        for i, block in enumerate(self.layers[:last + 1]):
            residual = self._run_block(block, residual)
            if i in taps:
                out.append(self._dense(residual, grid_hw, norm, output_fmt))
        if intermediates_only:
            return out
        return self.norm_f(residual, out_dtype=self._out_dtype()), out

    def _dense(self, residual: torch.Tensor, grid_hw: tuple[int, int], norm: bool,
               output_fmt: str) -> torch.Tensor:
        feat = self.norm_f(residual, out_dtype=self._out_dtype()) if norm else residual
        feat = remove_cls(feat, grid_hw[0] * grid_hw[1], self.cls_layout)
        if output_fmt == "NLC":
            return feat
        return feat.transpose(1, 2).reshape(feat.shape[0], feat.shape[2], grid_hw[0], grid_hw[1])
