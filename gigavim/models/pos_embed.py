"""Position encodings for any token grid: re-gridded learned tables and on-the-fly 2-D sincos.

A learned table trained at 14×14 can be resampled to another grid, but stretching it to the
thousands of tokens per side of a whole slide blurs it into nothing. The sincos encoding is a
fixed function of the absolute token position, so a tile's tokens can be given the positions
they have in the whole image (``offset``), which is what streaming a slide needs.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

ClsLayout = Literal["middle", "first", "none"]


def cls_index(num_patches: int, layout: ClsLayout) -> int | None:
    """Where the class token sits in a sequence of ``num_patches`` patch tokens (None: no token)."""
    return {"middle": num_patches // 2, "first": 0, "none": None}[layout]


def insert_cls(tokens: torch.Tensor, cls: torch.Tensor | None, layout: ClsLayout) -> torch.Tensor:
    """(B, M, D) patch tokens → (B, M+1, D) with ``cls`` (B|1, 1|, D) at :func:`cls_index`."""
    idx = cls_index(tokens.shape[1], layout)
    if idx is None or cls is None:
        return tokens
    cls = cls.reshape(-1, 1, tokens.shape[-1]).to(tokens.dtype).expand(tokens.shape[0], 1, -1)
    return torch.cat([tokens[:, :idx], cls, tokens[:, idx:]], dim=1)


def remove_cls(tokens: torch.Tensor, num_patches: int, layout: ClsLayout) -> torch.Tensor:
    """Inverse of :func:`insert_cls`: the (B, M, D) patch tokens, in row-major grid order."""
    idx = cls_index(num_patches, layout)
    if idx is None or tokens.shape[1] == num_patches:
        return tokens
    return torch.cat([tokens[:, :idx], tokens[:, idx + 1:]], dim=1)


def resample_grid(grid: torch.Tensor, old_hw: tuple[int, int], new_hw: tuple[int, int]) -> torch.Tensor:
    """(1, h0·w0, D) row-major grid embeddings → (1, h·w, D), bicubic, align_corners=False."""
    if tuple(old_hw) == tuple(new_hw):
        return grid
    dim = grid.shape[-1]
    img = grid.reshape(1, old_hw[0], old_hw[1], dim).permute(0, 3, 1, 2)
    dtype = img.dtype
    img = F.interpolate(img.float() if dtype in (torch.float16, torch.bfloat16) else img,
                        size=tuple(new_hw), mode="bicubic", align_corners=False)
    return img.to(dtype).permute(0, 2, 3, 1).reshape(1, new_hw[0] * new_hw[1], dim)


def resample_pos_embed(pos: torch.Tensor, old_hw: tuple[int, int], new_hw: tuple[int, int],
                       layout: ClsLayout = "middle", official_quirk: bool = False) -> torch.Tensor:
    """Re-grid a learned (1, M0 [+1], D) table to (1, M [+1], D); identity when the grid is unchanged.

    The class embedding is taken out from where it sits (``M0//2`` for middle-cls checkpoints),
    the remaining h0×w0 grid is resampled, and the class embedding is put back at ``M//2``.
    ``official_quirk=True`` instead reproduces hustvl/Vim's ``interpolate_pos_embed``, which
    assumes the class embedding at index 0: entry 0 is kept in front and entries 1.. are read as
    the grid — for a middle-cls table that shifts every position after the class token by one.
    """
    return convert_pos_table(pos, old_hw, layout, new_hw, layout, official_quirk)


def convert_pos_table(pos: torch.Tensor, old_hw: tuple[int, int], old_layout: ClsLayout,
                      new_hw: tuple[int, int], new_layout: ClsLayout, official_quirk: bool = False,
                      ) -> torch.Tensor:
    """:func:`resample_pos_embed` that may also change the class-token layout.

    A class slot that the old table lacks gets a zero embedding; one the new layout lacks is
    dropped. With ``official_quirk`` and no class token wanted, entry 0 of the quirk-resampled
    table is dropped, as the official segmentation backbone does (``pos_embed[:, 1:]``).
    """
    old_m = old_hw[0] * old_hw[1]
    old_cls = old_layout != "none"
    if pos.shape[1] != old_m + int(old_cls):
        raise ValueError(f"position table has {pos.shape[1]} entries, expected {old_m + int(old_cls)} "
                         f"for a {old_hw[0]}×{old_hw[1]} grid{' plus a class token' if old_cls else ''}")
    if tuple(old_hw) == tuple(new_hw) and old_layout == new_layout:
        return pos
    if official_quirk and old_cls:
        out = pos if tuple(old_hw) == tuple(new_hw) else torch.cat(
            [pos[:, :1], resample_grid(pos[:, 1:], old_hw, new_hw)], dim=1)
        return out[:, 1:] if new_layout == "none" else out
    idx = cls_index(old_m, old_layout)
    cls = pos[:, idx:idx + 1] if idx is not None else pos.new_zeros(1, 1, pos.shape[-1])
    grid = resample_grid(remove_cls(pos, old_m, old_layout), old_hw, new_hw)
    return insert_cls(grid, cls, new_layout)


def sincos_2d(grid_hw: tuple[int, int], dim: int, offset_yx: tuple[float, float] = (0.0, 0.0),
              temperature: float = 10000.0, dtype: torch.dtype = torch.float32,
              device: torch.device | str | None = None) -> torch.Tensor:
    """Fixed 2-D sin/cos encoding (h·w, dim) of token rows/cols ``offset + arange``, row-major.

    The first half of the channels encodes the row (y), the second the column (x), each as
    [sin, cos] over dim/4 geometric frequencies (MAE-style). Computed in float64 so positions in
    the hundred-thousands (whole slides at fine strides) keep their precision.
    """
    if dim % 4:
        raise ValueError(f"sincos position encoding needs embed_dim divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float64, device=device) / quarter)
    ys = torch.arange(grid_hw[0], dtype=torch.float64, device=device) + float(offset_yx[0])
    xs = torch.arange(grid_hw[1], dtype=torch.float64, device=device) + float(offset_yx[1])
    ang_y = ys[:, None] * omega[None]  # (h, q)
    ang_x = xs[:, None] * omega[None]  # (w, q)
    emb_y = torch.cat([ang_y.sin(), ang_y.cos()], dim=1)[:, None, :].expand(-1, grid_hw[1], -1)
    emb_x = torch.cat([ang_x.sin(), ang_x.cos()], dim=1)[None, :, :].expand(grid_hw[0], -1, -1)
    return torch.cat([emb_y, emb_x], dim=-1).reshape(-1, dim).to(dtype)
