"""Selective-scan and causal-conv kernels: one dispatch point for every caller.

CUDA tensors use the Triton kernels, CPU tensors the PyTorch path. ``GIGAVIM_SCAN_BACKEND``
(``torch`` or ``triton``) forces one; with ``TRITON_INTERPRET=1`` set before triton is
imported, ``triton`` runs on CPU tensors through Triton's interpreter (slow; for tests).
"""

from __future__ import annotations

import os

import torch

from gigavim.kernels.reference import causal_conv1d_ref, selective_scan_ref

__all__ = [
    "bidirectional_scan",
    "causal_conv1d",
    "causal_conv1d_ref",
    "scan_backend",
    "selective_scan",
    "selective_scan_ref",
]


def scan_backend(t: torch.Tensor) -> str:
    """Which backend runs for tensor ``t``: ``"triton"`` or ``"torch"``."""
    forced = os.environ.get("GIGAVIM_SCAN_BACKEND", "").strip().lower()
    if forced in ("torch", "triton"):
        return forced
    if forced:
        raise ValueError(f"GIGAVIM_SCAN_BACKEND must be 'torch' or 'triton', not {forced!r}")
    return "triton" if t.is_cuda else "torch"


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   initial_state=None, return_last_state=False, reverse=False):
    """Selective scan (mamba_ssm signature, plus ``initial_state`` and ``reverse``).

    See :func:`gigavim.kernels.reference.selective_scan_ref` for shapes and semantics.
    """
    return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                              initial_state, return_last_state, reverse)


def bidirectional_scan(u, delta, A, B, C, D, u_b, delta_b, A_b, B_b, C_b, D_b, z=None,
                       delta_bias=None, delta_bias_b=None, delta_softplus=True,
                       initial_state=None, initial_state_b=None, return_last_state=False):
    """Vim's two scans in one call: ((scan_f + D u) + (scan_b + D_b u_b)) / 2 · silu(z).

    The ``_b`` inputs are in the original token order; their scan runs from the last token to
    the first. Returns y, or (y, (last_state_f, last_state_b)) — the backward branch's "last"
    state is the one after token 0.
    """
    y_f, s_f = selective_scan(u, delta, A, B, C, D, None, delta_bias, delta_softplus,
                              initial_state, True, False)
    y_b, s_b = selective_scan(u_b, delta_b, A_b, B_b, C_b, D_b, None, delta_bias_b,
                              delta_softplus, initial_state_b, True, True)
    y = (y_f + y_b) * 0.5
    if z is not None:
        y = y * torch.nn.functional.silu(z.to(y.dtype))
    return (y, (s_f, s_b)) if return_last_state else y


def causal_conv1d(x, weight, bias=None, activation="silu", initial_state=None,
                  return_final_state=False, reverse=False):
    """Depthwise causal (or, with ``reverse``, anti-causal) conv1d with optional carried state."""
    return causal_conv1d_ref(x, weight, bias, activation, initial_state, return_final_state, reverse)
