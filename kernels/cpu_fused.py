"""Fused CPU inference kernels (numba): the whole selective scan per direction, and the conv.

Inference (no autograd) is the CPU's common case — every tile the engine segments. The
unfused path wrote softplus(Δ + bias), y, y + D·u, the gate and the two-direction combine as
separate full-size (batch, dim, L) tensors (14 GB at 1M tokens) and read each back. Here:

* :func:`scan_pass` runs one direction for a group of ``GROUP`` channels at once, tokens in
  blocks of ``BLOCK``: each block's Δ (optionally from the low-rank dt projection, R multiply-adds
  per element) + bias → softplus and Δ·u go into block-sized buffers, the recurrence keeps the
  (d_state, GROUP) state with the GROUP channels as the vector lanes (exp of Δ·A, two FMAs and
  the C·h read-out per state element, no horizontal sums; block rows are kept in processing
  order, so the reverse direction walks them forward too), and the block's output is written
  once: y + D·u, or, for the second direction, (out + y + D·u) · scale · silu(z) — the combine and
  the gate fused into the store. Nothing full-size is allocated.
* :func:`conv_silu` is the depthwise causal (or anti-causal) conv + SiLU as a W-tap loop over
  token blocks (no pad/concatenate/flip copies), with the carried state of streaming.

The recurrence runs in the input's float type; float32 uses the vectorisable maths of
:mod:`gigavim.kernels.cpu_math`, float64 libm's (the exactness tests run in float64).
"""

from __future__ import annotations

import numpy as np
import torch
from gigavim.kernels.cpu_math import FASTMATH, LOG2E, fast_exp2, fast_silu, fast_softplus
from gigavim.kernels.launch import launch_slot
from numba import njit, prange

__all__ = ["GROUP", "conv_silu", "scan_pass"]

# Channels per group: the innermost loop (one state row of the group) is 8 AVX-512 vectors long,
# so its setup and LLVM's runtime alias checks are paid once per 128 exps, not per 16 (1.6× over
# GROUP 16 at Vim-Ti shapes; 64 and 256 measured slower). Tokens per block: the four
# (BLOCK, GROUP) buffers, the state and A stay near L1 (BLOCK 8 and 32 measured slower).
GROUP = 128
BLOCK = 16


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _scan_pass(u, delta, dt_w, xd, b_off, c_off, bias, A, D, z, z_off, out, h0, h_last,
               softplus, reverse, combine, scale, gate, lowrank):  # pragma: no cover - compiled
    batch, dim, length = out.shape
    n = A.shape[1]
    rank = dt_w.shape[1]
    groups = (dim + GROUP - 1) // GROUP
    n_blocks = (length + BLOCK - 1) // BLOCK
    dt = out.dtype
    for job in prange(batch * groups):
        b = job // groups
        d0 = (job % groups) * GROUP
        g = min(GROUP, dim - d0)
        # per-group constants, padded with zeros: a padded lane keeps h = 0 and is never stored
        a_g = np.zeros((n, GROUP), dtype=dt)
        w_g = np.zeros((rank, GROUP), dtype=dt)
        bias_g = np.zeros(GROUP, dtype=dt)
        d_g = np.zeros(GROUP, dtype=dt)
        h = np.zeros((n, GROUP), dtype=dt)
        for c in range(g):
            bias_g[c] = bias[d0 + c]
            d_g[c] = D[d0 + c]
            for k in range(n):
                a_g[k, c] = A[d0 + c, k] * LOG2E  # exp(Δ·A) = 2^(Δ·A·log2 e)
                h[k, c] = h0[b, d0 + c, k]
            for r in range(rank):
                w_g[r, c] = dt_w[d0 + c, r]
        ub = np.zeros((BLOCK, GROUP), dtype=dt)
        dl = np.zeros((BLOCK, GROUP), dtype=dt)
        du = np.zeros((BLOCK, GROUP), dtype=dt)
        yb = np.zeros((BLOCK, GROUP), dtype=dt)
        for jb in range(n_blocks):
            blk = n_blocks - 1 - jb if reverse else jb
            # max(·, 0) tells LLVM these are ≥ 0 (the select above hides it): no negative-index
            # wraparound code in the loops below, 1.5× faster
            t0 = max(blk * BLOCK, 0)
            steps = max(min(BLOCK, length - t0), 0)
            # block rows in processing order (row i is token t0 + steps-1-i when reverse), so the
            # recurrence below always walks its rows forward: no index select in the vector loops
            last = steps - 1 if reverse else 0
            sign = -1 if reverse else 1
            for c in range(g):  # rows are contiguous in t: read them along t
                for i in range(steps):
                    ub[last + sign * i, c] = u[b, d0 + c, t0 + i]
            if lowrank:  # Δ = dt_w · xd[:, :rank], R multiply-adds per element
                for i in range(steps):
                    for c in range(GROUP):
                        dl[i, c] = bias_g[c]
                    for r in range(rank):
                        xr = xd[b, t0 + last + sign * i, r]
                        for c in range(GROUP):
                            dl[i, c] += w_g[r, c] * xr
            else:
                for c in range(g):
                    for i in range(steps):
                        dl[last + sign * i, c] = delta[b, d0 + c, t0 + i] + bias_g[c]
            if softplus:  # each flag tested once per block: no branch in the vector loops
                for i in range(steps):
                    for c in range(GROUP):
                        dl[i, c] = fast_softplus(dl[i, c])
            for i in range(steps):
                for c in range(GROUP):
                    du[i, c] = dl[i, c] * ub[i, c]
                    yb[i, c] = 0
            for i in range(steps):
                t = t0 + last + sign * i
                for k in range(n):  # one state row for all GROUP channels: a long vector loop
                    bk = xd[b, t, b_off + k]
                    ck = xd[b, t, c_off + k]
                    for c in range(GROUP):
                        hk = fast_exp2(dl[i, c] * a_g[k, c]) * h[k, c] + du[i, c] * bk
                        h[k, c] = hk
                        yb[i, c] += hk * ck
            for c in range(g):
                dc = d_g[c]
                for i in range(steps):
                    yb[i, c] += dc * ub[i, c]
            for c in range(g):
                for i in range(steps):
                    v = yb[last + sign * i, c]
                    if combine:
                        v += out[b, d0 + c, t0 + i]
                    v *= scale
                    if gate:
                        v *= fast_silu(z[b, z_off + d0 + c, t0 + i])
                    out[b, d0 + c, t0 + i] = v
        for c in range(g):
            for k in range(n):
                h_last[b, d0 + c, k] = h[k, c]


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _conv_silu(x, x_off, w, bias, init, has_init, out, reverse, silu):  # pragma: no cover - compiled
    batch, dim, length = out.shape
    width = w.shape[1]
    for row in prange(batch * dim):
        b = row // dim
        d = row % dim
        acc = np.empty(BLOCK * 4, dtype=out.dtype)
        for t0 in range(0, length, acc.shape[0]):
            te = min(t0 + acc.shape[0], length)
            for i in range(te - t0):
                acc[i] = bias[d]
            for k in range(width):
                s = width - 1 - k  # tap k reads s tokens back (ahead when reverse)
                wk = w[d, k]
                if reverse:  # x[t + s] exists for t < length - s
                    lo, hi = t0, min(te, length - s)
                    for t in range(lo, hi):
                        acc[t - t0] += wk * x[b, x_off + d, t + s]
                    for t in range(max(hi, t0), te):  # past the end: the carried inputs
                        if has_init:
                            acc[t - t0] += wk * init[b, d, length + width - 2 - (t + s)]
                else:  # x[t - s] exists for t >= s
                    lo, hi = max(t0, s), te
                    for t in range(lo, hi):
                        acc[t - t0] += wk * x[b, x_off + d, t - s]
                    for t in range(t0, min(lo, te)):  # before the start: the carried inputs
                        if has_init:
                            acc[t - t0] += wk * init[b, d, t - s + width - 1]
            for i in range(te - t0):
                out[b, d, t0 + i] = fast_silu(acc[i]) if silu else acc[i]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def scan_pass(u: torch.Tensor, A: torch.Tensor, B_C: tuple[torch.Tensor, int, int], out: torch.Tensor, *,
              delta: torch.Tensor | None = None, dt_w: torch.Tensor | None = None,
              delta_bias: torch.Tensor | None = None, softplus: bool = False, D: torch.Tensor | None = None,
              z: tuple[torch.Tensor, int] | None = None, h0: torch.Tensor | None = None,
              reverse: bool = False, combine: bool = False, scale: float = 1.0) -> torch.Tensor:
    """One direction of the scan, fused; writes ``out`` (batch, dim, L) and returns the last state.

    u (batch, dim, L) contiguous; A (dim, n). ``B_C`` = (xd, b_off, c_off): xd (batch, L, K)
    contiguous holds B_t at columns b_off:b_off+n and C_t at c_off:c_off+n. Δ is ``delta``
    (batch, dim, L), or with ``dt_w`` (dim, R) the low-rank dt_w · xd[:, :, :R]. ``z`` =
    (tensor (batch, Cz, L) contiguous, channel offset) gates the output by silu(z); ``combine``
    adds what ``out`` already holds (the other direction) before ``scale`` and the gate.
    All float tensors in one dtype (float32 or float64).
    """
    batch, dim, _ = u.shape
    dtype = u.dtype
    n = A.shape[1]
    xd, b_off, c_off = B_C
    empty3 = torch.zeros(1, 1, 1, dtype=dtype)
    zeros = torch.zeros(dim, dtype=dtype)
    h_last = torch.empty(batch, dim, n, dtype=dtype)
    h0 = h0 if h0 is not None else torch.zeros(batch, dim, n, dtype=dtype)
    lowrank = dt_w is not None
    args = (
        _np(u), _np(delta) if delta is not None else empty3.numpy(),
        _np(dt_w) if lowrank else torch.zeros(dim, 0, dtype=dtype).numpy(), _np(xd), b_off, c_off,
        _np(delta_bias) if delta_bias is not None else zeros.numpy(), _np(A),
        _np(D) if D is not None else zeros.numpy(),
        _np(z[0]) if z is not None else empty3.numpy(), z[1] if z is not None else 0,
        out.numpy(), _np(h0), h_last.numpy(), softplus, reverse, combine, scale, z is not None, lowrank,
    )
    with launch_slot():
        _scan_pass(*args)
    return h_last


def conv_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *, channel_offset: int = 0,
              dim: int | None = None, initial_state: torch.Tensor | None = None, reverse: bool = False,
              silu: bool = True) -> torch.Tensor:
    """Depthwise causal conv (+ SiLU) of channels ``channel_offset : + dim`` of x (batch, C, L).

    Same result as :func:`gigavim.kernels.reference.causal_conv1d_ref` (no final state here).
    """
    batch, _, length = x.shape
    dim = dim if dim is not None else x.shape[1] - channel_offset
    w = weight.reshape(weight.shape[0], -1).to(x.dtype)
    out = torch.empty(batch, dim, length, dtype=x.dtype)
    b = bias.to(x.dtype) if bias is not None else torch.zeros(dim, dtype=x.dtype)
    init = initial_state.to(x.dtype) if initial_state is not None else torch.zeros(1, 1, 1, dtype=x.dtype)
    with launch_slot():
        _conv_silu(_np(x), channel_offset, _np(w), _np(b), _np(init), initial_state is not None, out.numpy(),
                   reverse, silu)
    return out
