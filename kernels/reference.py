"""Reference implementations: the exact recurrences, written for clarity, used as test oracles.

These follow ``selective_scan_ref`` / ``causal_conv1d_ref`` of mamba_ssm (see
shared/reference/vim-official.md §4) with two additions gigavim needs for streaming: an initial
state in and the final state out, and ``reverse=True`` to scan from the last token to the first
without flipping copies. Computation is float64 for float64 inputs, float32 otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def prepare_delta(delta: torch.Tensor, delta_bias: torch.Tensor | None, delta_softplus: bool,
                  dtype: torch.dtype) -> torch.Tensor:
    """delta (+ bias) (→ softplus), in ``dtype``; softplus uses threshold 20 like the CUDA kernel."""
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    return delta


def gate_output(y: torch.Tensor, u: torch.Tensor, D: torch.Tensor | None, z: torch.Tensor | None
                ) -> torch.Tensor:
    """y + D·u, then · silu(z): the skip connection and gate shared by every scan path."""
    if D is not None:
        y = y + u * D.to(y.dtype)[:, None]
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y


def selective_scan_ref(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    initial_state: torch.Tensor | None = None,
    return_last_state: bool = False,
    reverse: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Selective scan by a plain loop over tokens.

    Shapes: u, delta, z (batch, dim, L); A (dim, d_state); B, C (batch, d_state, L);
    D, delta_bias (dim,); initial_state (batch, dim, d_state).

    h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t B_t u_t,  y_t = C_t · h_t,  out = (y + D u) · silu(z).
    With ``reverse`` the recurrence runs from t = L-1 down to 0 (the backward Vim branch read
    in place). Returns ``out`` in u's dtype, and the final state (float32/64) if asked.
    """
    dtype_in = u.dtype
    cd = _compute_dtype(u)
    u_c = u.to(cd)
    delta_c = prepare_delta(delta, delta_bias, delta_softplus, cd)
    A_c, B_c, C_c = A.to(cd), B.to(cd), C.to(cd)
    batch, dim, length = u.shape
    h = (
        initial_state.to(cd).clone()
        if initial_state is not None
        else u_c.new_zeros(batch, dim, A.shape[1])
    )
    ys = [None] * length
    steps = range(length - 1, -1, -1) if reverse else range(length)
    for t in steps:
        dA = torch.exp(delta_c[:, :, t, None] * A_c)  # (b, d, n)
        dBu = (delta_c[:, :, t] * u_c[:, :, t])[:, :, None] * B_c[:, None, :, t]
        h = dA * h + dBu
        ys[t] = torch.einsum("bdn,bn->bd", h, C_c[:, :, t])
    y = torch.stack(ys, dim=-1) if length else u_c.new_zeros(batch, dim, 0)
    out = gate_output(y, u_c, D, z).to(dtype_in)
    return (out, h) if return_last_state else out


def causal_conv1d_ref(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = "silu",
    initial_state: torch.Tensor | None = None,
    return_final_state: bool = False,
    reverse: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Depthwise causal conv1d: out[c, t] = bias[c] + Σ_k w[c, k] · x[c, t + k - (W-1)].

    x (batch, dim, L); weight (dim, W) or (dim, 1, W) as stored by ``nn.Conv1d``;
    initial_state (batch, dim, W-1) holds the W-1 inputs that precede the sequence (in
    processing order). ``reverse`` makes it anti-causal (the official Vim backward branch: flip,
    conv, flip). The final state is the last W-1 inputs in processing order.
    """
    w = weight.reshape(weight.shape[0], -1)
    width = w.shape[1]
    xs = x.flip(-1) if reverse else x
    if initial_state is None:
        pad = xs.new_zeros(xs.shape[0], xs.shape[1], width - 1)
    else:
        pad = initial_state.to(xs.dtype)
    xpad = torch.cat([pad, xs], dim=-1)
    out = F.conv1d(xpad, w[:, None, :].to(xs.dtype), bias.to(xs.dtype) if bias is not None else None,
                   groups=xs.shape[1])
    if activation in ("silu", "swish"):
        out = F.silu(out)
    elif activation is not None:
        raise ValueError(f"unsupported activation {activation!r}")
    final = xpad[..., xpad.shape[-1] - (width - 1):]
    if reverse:
        out = out.flip(-1)
    return (out, final) if return_final_state else out


def conv_final_state(x: torch.Tensor, initial_state: torch.Tensor | None, width: int,
                     reverse: bool) -> torch.Tensor:
    """The last W-1 inputs in processing order (what the next piece needs), from small slices."""
    batch, dim, _ = x.shape
    xs = x[..., : width - 1].flip(-1) if reverse else x[..., max(0, x.shape[-1] - (width - 1)):]
    pad = (initial_state.to(x.dtype) if initial_state is not None
           else x.new_zeros(batch, dim, width - 1))
    return torch.cat([pad, xs], dim=-1)[..., -(width - 1):] if width > 1 else x.new_zeros(batch, dim, 0)
