"""Triton depthwise causal conv1d (width ≤ 8, bias, SiLU) with carried state and ``reverse``.

Beside the scan rather than fused into it: the conv is ~3% of the scan's arithmetic and one extra
read/write of a (batch, dim, L) tensor, while fusing it would make every scan program load a
(W-1)-token halo and carry a second kind of state across chunks. Kept apart, each kernel stays
small and is tested on its own against its reference; fusion is the next step once a GPU
profile says the extra pass matters (performance.md §5.4).

Grid = (token blocks, channel blocks, batch); each program computes a [BLOCK_D, BLOCK_L] tile
from W shifted loads. Positions before the sequence (in processing order) come from
``initial_state`` — the W-1 inputs that precede it — so pieces processed one after another with
the carried state equal one pass. ``reverse`` is anti-causal: tap k reads x[t + (W-1-k)], the
Vim backward branch's flip → conv → flip without the flips.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from gigavim.kernels.reference import conv_final_state as _final_state
from gigavim.kernels.triton_common import offset3, silu

__all__ = ["causal_conv1d_triton"]

_BLOCK_D = 32
_BLOCK_L = 64


@triton.jit
def _conv_kernel(x_ptr, w_ptr, bias_ptr, init_ptr, out_ptr,
                 s_xb, s_xd, s_xt, s_ib, s_id, s_it, s_ob, s_od, s_ot,
                 dim, length,
                 WIDTH: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
                 REVERSE: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_INIT: tl.constexpr,
                 SILU: tl.constexpr):
    pid_l = tl.program_id(0)
    pid_d = tl.program_id(1)
    pid_b = tl.program_id(2)
    d_offs = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    t_offs = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    d_mask = d_offs < dim
    t_mask = t_offs < length
    acc = tl.zeros([BLOCK_D, BLOCK_L], dtype=tl.float32)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + d_offs, mask=d_mask, other=0.0)[:, None]
    for k in tl.static_range(WIDTH):
        w = tl.load(w_ptr + d_offs.to(tl.int64) * WIDTH + k, mask=d_mask, other=0.0)
        if REVERSE:
            src = t_offs + (WIDTH - 1 - k)
            outside = src >= length
            pad = length + WIDTH - 2 - src  # index into initial_state for src >= length
        else:
            src = t_offs - (WIDTH - 1 - k)
            outside = src < 0
            pad = src + WIDTH - 1
        m = d_mask[:, None] & (t_mask & (src >= 0) & (src < length))[None, :]
        x = tl.load(x_ptr + offset3(pid_b, s_xb, d_offs[:, None], s_xd, src[None, :], s_xt),
                    mask=m, other=0.0)
        if HAS_INIT:
            mp = d_mask[:, None] & (t_mask & outside)[None, :]
            xp = tl.load(init_ptr + offset3(pid_b, s_ib, d_offs[:, None], s_id, pad[None, :], s_it),
                         mask=mp, other=0.0)
            x = x + xp
        acc += w[:, None] * x.to(tl.float32)
    if SILU:
        acc = silu(acc)
    o = out_ptr + offset3(pid_b, s_ob, d_offs[:, None], s_od, t_offs[None, :], s_ot)
    tl.store(o, acc.to(out_ptr.dtype.element_ty), mask=d_mask[:, None] & t_mask[None, :])


def causal_conv1d_triton(x, weight, bias=None, activation="silu", initial_state=None,
                         return_final_state=False, reverse=False):
    """Triton version of :func:`~gigavim.kernels.reference.causal_conv1d_ref` (same arguments)."""
    if activation not in (None, "silu", "swish"):
        raise ValueError(f"unsupported activation {activation!r}")
    w = weight.reshape(weight.shape[0], -1).float().contiguous()
    width = w.shape[1]
    batch, dim, length = x.shape
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    b = bias.float().contiguous() if bias is not None else w
    init = initial_state if initial_state is not None else x
    if length:
        grid = (triton.cdiv(length, _BLOCK_L), triton.cdiv(dim, _BLOCK_D), batch)
        _conv_kernel[grid](x, w, b, init, out, *x.stride(), *init.stride(), *out.stride(), dim, length,
                           WIDTH=width, BLOCK_D=_BLOCK_D, BLOCK_L=_BLOCK_L, REVERSE=reverse,
                           HAS_BIAS=bias is not None, HAS_INIT=initial_state is not None,
                           SILU=activation is not None, num_warps=4)
    if return_final_state:
        return out, _final_state(x, initial_state, width, reverse)
    return out
