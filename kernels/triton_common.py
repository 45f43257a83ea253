"""Small pieces every Triton kernel here shares: 64-bit offsets, softplus, SiLU, launch sizes.

This module imports triton, so only modules loaded when the Triton backend is chosen import it.
"""

from __future__ import annotations

import triton
import triton.language as tl

LOG2E = 1.4426950408889634


@triton.jit
def offset3(i0, stride0, i1, stride1, i2, stride2):
    """Offset of element (i0, i1, i2) in int64.

    Program ids, ``tl.arange`` vectors and loop counters are int32; a (batch, dim, L) tensor
    passes 2^31 elements at batch·dim·L > 2^31 (e.g. 8 × 384 × 1M), where int32 products wrap
    silently (state-spaces/mamba#884, #1015). Casting each index before it meets its stride keeps
    every product and sum in int64.
    """
    return (i0.to(tl.int64) * stride0 + i1.to(tl.int64) * stride1) + i2.to(tl.int64) * stride2


@triton.jit
def channel_state_block(pid_d, dim, d_state, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    """Program pid_d's channels and all states: offsets, masks, and the int64 offsets of its
    [BLOCK_D, BLOCK_N] block in a contiguous (dim, d_state) array such as A or a state."""
    d_offs = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    n_offs = tl.arange(0, BLOCK_N)
    d_mask = d_offs < dim
    n_mask = n_offs < d_state
    m2 = d_mask[:, None] & n_mask[None, :]
    dn = d_offs.to(tl.int64)[:, None] * d_state + n_offs[None, :]
    return d_offs, n_offs, d_mask, n_mask, m2, dn


@triton.jit
def softplus(x):
    """log(1 + e^x), switching to x above 20 like ``F.softplus`` and the CUDA kernel."""
    return tl.where(x <= 20.0, tl.log(1.0 + tl.exp(tl.minimum(x, 20.0))), x)


@triton.jit
def silu(x):
    return x / (1.0 + tl.exp(-x))


def next_pow2(n: int) -> int:
    return triton.next_power_of_2(max(1, int(n)))
