"""Autograd for the Triton kernels.

* Scans: :class:`TritonSelectiveScan` / :class:`TritonBidirectionalScan` — Triton forward
  (scan_fwd.py) and Triton backward (scan_bwd.py). Only the inputs are saved; the backward
  recomputes the states chunk by chunk. The gate's gradient needs the pre-gate output, which the
  backward kernel recomputes alongside (both directions' share one z).
* Conv1d (and anything else without its own backward kernel): :func:`with_recompute_backward` —
  the Triton forward, gradients by re-running the PyTorch reference under autograd.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

# This module is imported only when the Triton backend is chosen; importing the kernels here
# makes a missing or broken triton fail at that point, where dispatch turns it into a UsageError.
from gigavim.kernels import scan_bwd, scan_fwd
from gigavim.kernels.scan_fwd import _Direction

__all__ = ["TritonBidirectionalScan", "TritonSelectiveScan", "with_recompute_backward"]


class _RecomputeBackward(torch.autograd.Function):
    """Outputs of ``fast(*tensors)``; gradients from ``slow(*tensors)`` recomputed in backward."""

    @staticmethod
    def forward(ctx, fast: Callable, slow: Callable, *tensors):
        ctx.slow = slow
        ctx.is_none = [t is None for t in tensors]
        ctx.save_for_backward(*[t for t in tensors if t is not None])
        return tuple(fast(*tensors))

    @staticmethod
    def backward(ctx, *grads):
        saved = iter(ctx.saved_tensors)
        needs = ctx.needs_input_grad[2:]
        inputs = []
        for none, need in zip(ctx.is_none, needs, strict=True):
            if none:
                inputs.append(None)
            else:
                t = next(saved).detach()
                inputs.append(t.requires_grad_(True) if need else t)
        with torch.enable_grad():
            outs = ctx.slow(*inputs)
        pairs = [(o, g) for o, g in zip(outs, grads, strict=True) if g is not None and o.requires_grad]
        wanted = [t for t in inputs if t is not None and t.requires_grad]
        got = iter(torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs],
                                       allow_unused=True) if pairs and wanted else [None] * len(wanted))
        result = [next(got) if t is not None and t.requires_grad else None for t in inputs]
        return (None, None, *result)


def with_recompute_backward(fast: Callable[..., Sequence[torch.Tensor]],
                            slow: Callable[..., Sequence[torch.Tensor]],
                            *tensors: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """``fast(*tensors)`` (a tuple of tensors), differentiable through ``slow`` (same maths).

    Without autograd (inference, ``torch.no_grad``) this is just ``fast``: nothing is saved.
    """
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return _RecomputeBackward.apply(fast, slow, *tensors)
    return tuple(fast(*tensors))


def _silu_grad(z: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(z)
    return s * (1 + z * (1 - s))


def _cast(grad: torch.Tensor | None, like: torch.Tensor | None) -> torch.Tensor | None:
    return None if grad is None or like is None else grad.to(like.dtype)


class TritonSelectiveScan(torch.autograd.Function):
    """Triton forward (scan_fwd.py) and Triton backward (scan_bwd.py) of one direction."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus: bool,
                reverse: bool, chunk_len):
        out, last = scan_fwd.selective_scan_triton(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                          initial_state, True, reverse, chunk_len=chunk_len)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, initial_state)
        ctx.delta_softplus, ctx.reverse = delta_softplus, reverse
        return out, last

    @staticmethod
    def backward(ctx, dout, dlast):
        u, delta, A, B, C, D, z, delta_bias, init = ctx.saved_tensors
        dout = dout if dout is not None else torch.zeros_like(u)
        dy = dout.float() * F.silu(z.float()) if z is not None else dout.float()
        g = scan_bwd.scan_direction_bwd(_Direction(u, delta, A, B, C, D, delta_bias, init), dy, dlast,
                               ctx.reverse, ctx.delta_softplus, want_y=z is not None)
        dz = dout.float() * g["y"] * _silu_grad(z.float()) if z is not None else None
        return (_cast(g["du"], u), _cast(g["ddelta"], delta), _cast(g["dA"], A), _cast(g["dB"], B),
                _cast(g["dC"], C), _cast(g["dD"], D), _cast(dz, z), _cast(g["ddelta_bias"], delta_bias),
                _cast(g["dinitial_state"], init), None, None, None)


class TritonBidirectionalScan(torch.autograd.Function):
    """Triton fused bidirectional forward; Triton backward of each direction, gate grad shared."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, u_b, delta_b, A_b, B_b, C_b, D_b, z, delta_bias,
                delta_bias_b, initial_state, initial_state_b, delta_softplus: bool, chunk_len):
        out, (last_f, last_b) = scan_fwd.bidirectional_scan_triton(
            u, delta, A, B, C, D, u_b, delta_b, A_b, B_b, C_b, D_b, z, delta_bias, delta_bias_b,
            delta_softplus, initial_state, initial_state_b, True, chunk_len=chunk_len)
        ctx.save_for_backward(u, delta, A, B, C, D, u_b, delta_b, A_b, B_b, C_b, D_b, z, delta_bias,
                              delta_bias_b, initial_state, initial_state_b)
        ctx.delta_softplus = delta_softplus
        return out, last_f, last_b

    @staticmethod
    def backward(ctx, dout, dlast_f, dlast_b):
        (u, delta, A, B, C, D, u_b, delta_b, A_b, B_b, C_b, D_b, z, bias, bias_b, init,
         init_b) = ctx.saved_tensors
        dout = dout if dout is not None else torch.zeros_like(u)
        dy = dout.float() * 0.5
        if z is not None:
            dy = dy * F.silu(z.float())
        want_y = z is not None
        gf = scan_bwd.scan_direction_bwd(_Direction(u, delta, A, B, C, D, bias, init), dy, dlast_f, False,
                                ctx.delta_softplus, want_y)
        gb = scan_bwd.scan_direction_bwd(_Direction(u_b, delta_b, A_b, B_b, C_b, D_b, bias_b, init_b), dy,
                                dlast_b, True, ctx.delta_softplus, want_y)
        dz = dout.float() * 0.5 * (gf["y"] + gb["y"]) * _silu_grad(z.float()) if want_y else None
        grads = []
        sides = ((gf, (u, delta, A, B, C, D)), (gb, (u_b, delta_b, A_b, B_b, C_b, D_b)))
        for g, (uu, dd, aa, bb, cc, DD) in sides:
            grads += [_cast(g["du"], uu), _cast(g["ddelta"], dd), _cast(g["dA"], aa), _cast(g["dB"], bb),
                      _cast(g["dC"], cc), _cast(g["dD"], DD)]
        return (*grads, _cast(dz, z), _cast(gf["ddelta_bias"], bias), _cast(gb["ddelta_bias"], bias_b),
                _cast(gf["dinitial_state"], init), _cast(gb["dinitial_state"], init_b), None, None)
