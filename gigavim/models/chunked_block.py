"""Inference of one Vim block over its token sequence in chunks, states carried (CPU, no grad).

The unchunked fused CPU block holds, per block, the normalised input, in_proj's x/z halves
(2·d_inner per token), a conv output and the scan output at once: ≈ 10 full-size (L × d_model)
tensors, more activation memory than DeiT's attention + MLP at 1024²–2048². Here, as Mamba's
recurrent inference does, the block runs in chunks of ``chunk`` tokens:

1. chunks last → first: RMSNorm, in_proj's x half, the anti-causal conv (carrying the next
   chunk's first ``d_conv − 1`` inputs), x_proj and the backward scan (carrying its state),
   keeping only the backward output (d_inner per token, one tensor per chunk);
2. chunks first → last: RMSNorm, in_proj (x and z), the causal conv (carrying the previous
   chunk's last inputs), x_proj and the forward scan fused with the combine, /2 and the z gate
   into that chunk's stored backward output, then out_proj and the residual add into the output.

Alive at once: the residual in and out and the backward output (≈ 4 × L × d_model), plus one
chunk's temporaries. Every per-token operation is the unchunked path's, in the same order (the
direction sum is commutative), so the result equals it up to matmul blocking; the cost is
in_proj's x half computed twice (≈ 10 % more multiply-adds for Vim-Ti).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

import torch

from gigavim import kernels
from gigavim.kernels.reference import conv_final_state
from gigavim.models.layers import channels_first_linear, compute_dtype, token_major_linear

if TYPE_CHECKING:
    from gigavim.models.vim import VimBlock

CHUNK_TOKENS = 1024
"""Default chunk: temporaries of ~8 MB for Vim-Ti, few enough Python round trips per block."""


def chunked_kernels(block: VimBlock, residual: torch.Tensor) -> ModuleType | None:
    """The fused CPU kernels when ``block`` should run chunked on ``residual``, else None.

    Chunked only where it saves memory and changes nothing else: longer sequences than one
    chunk, the fused (no-grad CPU) path, and no active drop path.
    """
    chunk = block.chunk_tokens
    if not chunk or residual.shape[1] <= chunk or (block.training and block.drop_path.p > 0):
        return None
    if kernels.scan_backend(residual) != "torch":
        return None
    return kernels.fused_cpu(residual, block.mixer.A_log)


def chunk_bounds(length: int, chunk: int) -> list[tuple[int, int]]:
    """(start, end) of each chunk of at most ``chunk`` tokens, in order."""
    return [(t0, min(t0 + chunk, length)) for t0 in range(0, length, chunk)]


def forward_chunked(block: VimBlock, residual: torch.Tensor, fused: ModuleType) -> torch.Tensor:
    """``block(residual)`` computed chunk by chunk (see the module doc); (B, L, D) → (B, L, D)."""
    mixer = block.mixer
    wd = mixer.in_proj.weight.dtype
    cd = compute_dtype(wd)
    e, r, n, width = mixer.d_inner, mixer.dt_rank, mixer.d_state, mixer.d_conv
    w_in = mixer.in_proj.weight.to(cd)
    bounds = chunk_bounds(residual.shape[1], block.chunk_tokens)

    def hidden(t0: int, t1: int) -> torch.Tensor:  # (B, D, chunk) normalised input, channel-first
        return block.norm(residual[:, t0:t1], out_dtype=wd).to(cd).transpose(1, 2)

    def scan(u, x_proj, dt_proj, a_log, d, out, h0, **kw) -> torch.Tensor:
        xd = token_major_linear(u, x_proj.weight.to(cd))  # (B, chunk, R + 2N)
        return fused.scan_pass(u, -torch.exp(a_log.to(cd)), (xd, r, r + n), out,
                               dt_w=dt_proj.weight.to(cd), delta_bias=dt_proj.bias.to(cd),
                               softplus=True, D=d.to(cd), h0=h0, **kw)

    backward: list[torch.Tensor | None] = [None] * len(bounds)
    conv_state = h = None
    for i in reversed(range(len(bounds))):  # pass 1: the backward direction, last chunk first
        x = channels_first_linear(w_in[:e], hidden(*bounds[i]))  # (B, E, chunk)
        u = fused.conv_silu(x, mixer.conv1d_b.weight, mixer.conv1d_b.bias, initial_state=conv_state,
                            reverse=True)
        conv_state = conv_final_state(x, conv_state, width, reverse=True)
        # x is no longer needed: the chunk's backward output goes into its memory
        h = scan(u, mixer.x_proj_b, mixer.dt_proj_b, mixer.A_b_log, mixer.D_b, x, h, reverse=True)
        backward[i] = x
        del u

    out = torch.empty_like(residual)
    w_out = mixer.out_proj.weight.to(cd)
    scale = 0.5 if mixer.divide_out else 1.0
    conv_state = h = None
    for i, (t0, t1) in enumerate(bounds):  # pass 2: the forward direction, combine, gate, out_proj
        xz = channels_first_linear(w_in, hidden(t0, t1))  # (B, 2E, chunk)
        u = fused.conv_silu(xz, mixer.conv1d.weight, mixer.conv1d.bias, dim=e, initial_state=conv_state)
        conv_state = conv_final_state(xz[:, :e], conv_state, width, reverse=False)
        y = backward[i]
        backward[i] = None  # freed as soon as used
        h = scan(u, mixer.x_proj, mixer.dt_proj, mixer.A_log, mixer.D, y, h, z=(xz, e), combine=True,
                 scale=scale)
        mixed = token_major_linear(y, w_out).to(wd)
        out[:, t0:t1] = residual[:, t0:t1] + block.drop_path(mixed).to(residual.dtype)
        del xz, u, y, mixed
    return out
