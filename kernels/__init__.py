"""Selective-scan and causal-conv kernels: one dispatch point for every caller.

CUDA tensors use the Triton kernels (forward and backward), CPU tensors the PyTorch path (the
chunked scan of :mod:`gigavim.kernels.chunked`, whose core runs as compiled numba loops on CPU;
``F.conv1d`` for the conv). ``GIGAVIM_SCAN_BACKEND`` (``torch``
or ``triton``) forces one; with ``TRITON_INTERPRET=1`` set before triton is imported, ``triton``
runs on CPU tensors through Triton's interpreter (slow; for tests). Triton is imported only when
its backend is chosen, so CPU users never load it.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import torch
import torch.nn.functional as F
from gigavim.kernels.chunked import fused_cpu, scan_inputs_bc, selective_scan_chunked
from gigavim.kernels.reference import (
    _compute_dtype,
    causal_conv1d_ref,
    conv_final_state,
    selective_scan_ref,
)

from gigavim.errors import UsageError

__all__ = [
    "bidirectional_scan",
    "causal_conv1d",
    "causal_conv1d_ref",
    "fused_cpu",
    "scan_backend",
    "selective_scan",
    "selective_scan_chunked",
    "selective_scan_ref",
]


def scan_backend(t: torch.Tensor) -> str:
    """Which backend runs for tensor ``t``: ``"triton"`` or ``"torch"``."""
    forced = os.environ.get("GIGAVIM_SCAN_BACKEND", "").strip().lower()
    if forced in ("torch", "triton"):
        return forced
    if forced:
        raise UsageError(f"GIGAVIM_SCAN_BACKEND must be 'torch' or 'triton', not {forced!r}")
    return "triton" if t.is_cuda else "torch"


def _triton_module(name: str) -> ModuleType:
    """Import ``gigavim.kernels.<name>`` (which imports triton) on first use of the Triton backend."""
    try:
        return importlib.import_module(f"gigavim.kernels.{name}")
    except ImportError as err:
        raise UsageError(
            f"the Triton scan backend needs the 'triton' package, which cannot be imported ({err}); "
            "install it (pip install triton) or set GIGAVIM_SCAN_BACKEND=torch"
        ) from err


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   initial_state=None, return_last_state=False, reverse=False):
    """Selective scan (mamba_ssm signature, plus ``initial_state`` and ``reverse``).

    See :func:`gigavim.kernels.reference.selective_scan_ref` for shapes and semantics.
    """
    if scan_backend(u) == "torch" or u.shape[-1] == 0:
        return selective_scan_chunked(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                      initial_state, return_last_state, reverse)
    out, last = _triton_module("autograd").TritonSelectiveScan.apply(
        u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus, reverse, None)
    return (out, last) if return_last_state else out


def _bidirectional_torch(u, delta, A, B, C, D, u_b, delta_b, A_b, B_b, C_b, D_b, z, delta_bias,
                         delta_bias_b, initial_state, initial_state_b, delta_softplus):
    """The PyTorch path: two chunked scans (the backward one indexes from the end, no flips).

    Without autograd on CPU: two fused passes writing one output, the second adding its
    direction, halving and gating in its store (kernels/cpu_fused.py)."""
    fused = fused_cpu(u, delta, A, B, C, D, u_b, delta_b, A_b, B_b, C_b, D_b, z, delta_bias,
                      delta_bias_b, initial_state, initial_state_b) if u.shape[-1] else None
    if fused is not None:
        cd = _compute_dtype(u)

        def c(t):
            return t.to(cd) if t is not None else None

        out = u.new_empty(u.shape, dtype=cd)
        s_f = fused.scan_pass(c(u), c(A), scan_inputs_bc(B, C, cd), out, delta=c(delta),
                              delta_bias=c(delta_bias), softplus=delta_softplus, D=c(D), h0=c(initial_state))
        s_b = fused.scan_pass(c(u_b), c(A_b), scan_inputs_bc(B_b, C_b, cd), out, delta=c(delta_b),
                              delta_bias=c(delta_bias_b), softplus=delta_softplus, D=c(D_b),
                              z=(c(z), 0) if z is not None else None, h0=c(initial_state_b), reverse=True,
                              combine=True, scale=0.5)
        return out.to(u.dtype), s_f, s_b
    y_f, s_f = selective_scan_chunked(u, delta, A, B, C, D, None, delta_bias, delta_softplus,
                                      initial_state, True, False)
    y_b, s_b = selective_scan_chunked(u_b, delta_b, A_b, B_b, C_b, D_b, None, delta_bias_b,
                                      delta_softplus, initial_state_b, True, True)
    y = (y_f + y_b) * 0.5
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y, s_f, s_b


def bidirectional_scan(u, delta, A, B, C, D, u_b, delta_b, A_b, B_b, C_b, D_b, z=None,
                       delta_bias=None, delta_bias_b=None, delta_softplus=True,
                       initial_state=None, initial_state_b=None, return_last_state=False):
    """Vim's two scans in one call: ((scan_f + D u) + (scan_b + D_b u_b)) / 2 · silu(z).

    The ``_b`` inputs are in the original token order; their scan runs from the last token to
    the first. Returns y, or (y, (last_state_f, last_state_b)) — the backward branch's "last"
    state is the one after token 0.
    """
    tensors = (u, delta, A, B, C, D, u_b, delta_b, A_b, B_b, C_b, D_b, z, delta_bias, delta_bias_b,
               initial_state, initial_state_b)
    if scan_backend(u) == "torch" or u.shape[-1] == 0:
        y, s_f, s_b = _bidirectional_torch(*tensors, delta_softplus)
    else:
        y, s_f, s_b = _triton_module("autograd").TritonBidirectionalScan.apply(*tensors, delta_softplus, None)
    return (y, (s_f, s_b)) if return_last_state else y


def causal_conv1d(x, weight, bias=None, activation="silu", initial_state=None,
                  return_final_state=False, reverse=False):
    """Depthwise causal (or, with ``reverse``, anti-causal) conv1d with optional carried state."""
    if scan_backend(x) == "torch":
        fused = fused_cpu(x, weight, bias, initial_state) if activation in (None, "silu", "swish") else None
        if fused is None:
            return causal_conv1d_ref(x, weight, bias, activation, initial_state, return_final_state, reverse)
        cd = _compute_dtype(x)
        out = fused.conv_silu(x.to(cd), weight, bias, initial_state=initial_state, reverse=reverse,
                              silu=activation is not None).to(x.dtype)
        if return_final_state:
            return out, conv_final_state(x, initial_state, weight.shape[-1], reverse)
        return out
    conv = _triton_module("conv1d")

    def fast(*t):
        return conv.causal_conv1d_triton(*t[:3], activation, t[3], True, reverse)

    def slow(*t):
        return causal_conv1d_ref(*t[:3], activation, t[3], True, reverse)

    recompute = _triton_module("autograd").with_recompute_backward
    out, final = recompute(fast, slow, x, weight, bias, initial_state)
    return (out, final) if return_final_state else out
