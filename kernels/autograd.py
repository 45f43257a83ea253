"""Autograd for the Triton kernels: Triton forward, backward by recomputation through the
chunked PyTorch path.

The backward is NOT a Triton kernel yet. It re-runs the forward with
:func:`~gigavim.kernels.chunked.selective_scan_chunked` (whose own backward recomputes each block
from its saved start state and runs the adjoint recurrence in reverse) and takes the vector-
Jacobian product. Results are exact; on a GPU it is much slower than the forward, since the
chunked path issues one small op per token. Only the inputs are kept between forward and
backward, never the (L, dim, d_state) states.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["with_recompute_backward"]


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
