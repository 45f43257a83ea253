"""The PyTorch selective scan: chunked, memory-bounded, with a recomputing backward.

:class:`ScanCore` (the scan without skip and gate, wrapped by :func:`selective_scan_chunked`)
keeps only its inputs and the state at every chunk start; its backward walks the chunks in
reverse, recomputes each chunk's states from its saved start and runs the adjoint recurrence
(the mamba_ssm design). ``reverse=True`` indexes from the last token to the first: no flipped
copies. Every exponent Δ·A is ≤ 0, so nothing can overflow.

Two implementations of the core, same maths:

* CPU tensors: compiled numba loops (:mod:`gigavim.kernels.cpu_scan`), one pass per
  (batch, channel) row with the state in registers — the fast path.
* otherwise (CUDA tensors on the ``torch`` backend, or numba missing): eager PyTorch blocks of
  ``block_len`` tokens, sized so one (tokens, batch, dim, d_state) block tensor stays a few MB.
  exp(Δ·A) and Δ·u·B of a block are a few large vectorised ops; the only per-token op left is an
  in-place ``addcmul_`` on a (batch, dim, d_state) slice; outputs C·h are one matmul per block.
"""

from __future__ import annotations

import torch
from gigavim.kernels.reference import _compute_dtype, gate_output, prepare_delta

__all__ = ["ScanCore", "default_block_len", "selective_scan_chunked"]

# Elements of one (block_len, batch, dim, d_state) tensor: ~4 MB in fp32 keeps the few block
# buffers near the caches while each vectorised op stays large enough to amortise its overhead.
_BLOCK_ELEMENTS = 1 << 20


def default_block_len(batch: int, dim: int, d_state: int) -> int:
    """Tokens per block so that a block tensor holds about ``_BLOCK_ELEMENTS`` elements."""
    return max(16, _BLOCK_ELEMENTS // max(1, batch * dim * d_state))


def _blocks(length: int, block_len: int, reverse: bool) -> list[tuple[int, int]]:
    """(start, stop) token ranges in processing order; reverse starts from the sequence end."""
    spans = [(s, min(s + block_len, length)) for s in range(0, length, block_len)]
    return spans[::-1] if reverse else spans


class _Workspace:
    """Block-sized buffers reused across blocks: large fresh allocations cost page faults."""

    def __init__(self, like: torch.Tensor, block_len: int, d_state: int, n_buffers: int):
        batch, dim, _ = like.shape
        self.bufs = [like.new_empty(block_len, batch, dim, d_state) for _ in range(n_buffers)]

    def take(self, i: int, T: int) -> torch.Tensor:
        return self.bufs[i][:T]


def _time_major(x: torch.Tensor, s: int, e: int) -> torch.Tensor:
    """x[:, :, s:e] as a contiguous (T, batch, channels) block: broadcasts then read memory in order."""
    return x[:, :, s:e].permute(2, 0, 1).contiguous()


def _decay_and_input(u, dl, A, B, s: int, e: int, ws: _Workspace) -> tuple[torch.Tensor, torch.Tensor]:
    """Time-major block tensors a = exp(Δ A) and Δ u B, each (T, batch, dim, d_state), in ``ws``."""
    dl_t = _time_major(dl, s, e)  # (T, b, d)
    a = torch.mul(dl_t[..., None], A, out=ws.take(0, e - s)).exp_()
    bu = torch.mul((dl_t * _time_major(u, s, e))[..., None], _time_major(B, s, e)[:, :, None, :],
                   out=ws.take(1, e - s))
    return a, bu


def _readout(states: torch.Tensor, C_t: torch.Tensor) -> torch.Tensor:
    """y[b, d, t] = Σ_n states[t, b, d, n] · C_t[t, b, n], one batched matmul."""
    return torch.matmul(states, C_t[..., None])[..., 0].permute(1, 2, 0)


def _recur(a: torch.Tensor, bu: torch.Tensor, h0: torch.Tensor, reverse: bool) -> torch.Tensor:
    """h_t = a_t h_prev + bu_t over the block, in place in ``bu``; returns the states (T, b, d, n)."""
    steps = range(a.shape[0] - 1, -1, -1) if reverse else range(a.shape[0])
    prev = h0
    for t in steps:
        prev = bu[t].addcmul_(a[t], prev)
    return bu


def _core_forward(u, dl, A, B, C, h0, reverse, block_len):
    """Scan without skip/gate: y (b, d, L), the state at each block start, and the final state."""
    batch, dim, length = u.shape
    spans = _blocks(length, block_len, reverse)
    ws = _Workspace(u, min(block_len, length), A.shape[1], 2)
    y = u.new_empty(batch, dim, length)
    starts = u.new_empty(len(spans), batch, dim, A.shape[1])
    h = h0
    for k, (s, e) in enumerate(spans):
        starts[k] = h
        a, bu = _decay_and_input(u, dl, A, B, s, e, ws)
        states = _recur(a, bu, h, reverse)
        y[:, :, s:e] = _readout(states, _time_major(C, s, e))
        h = (states[0] if reverse else states[-1]).clone()
    return y, starts, h


def _core_backward(u, dl, A, B, C, starts, dy, dh_last, reverse, block_len):
    """Gradients of the core scan by recomputation per block and the adjoint recurrence.

    With g_t = dL/dh_t: g_t = C_t dy_t + a_next g_next, the carried gradient into the previous
    block is a_first g_first; g ⊙ h_prev ⊙ a is the gradient of the exponent Δ A.
    """
    spans = _blocks(u.shape[2], block_len, reverse)
    ws = _Workspace(u, min(block_len, u.shape[2]), A.shape[1], 4)
    du, ddl = torch.zeros_like(u), torch.zeros_like(dl)
    dB, dC = torch.zeros_like(B), torch.zeros_like(C)
    dA = torch.zeros_like(A)
    lam = dh_last
    for k in range(len(spans) - 1, -1, -1):
        s, e = spans[k]
        T = e - s
        h0 = starts[k]
        a, bu = _decay_and_input(u, dl, A, B, s, e, ws)
        states = _recur(a, bu, h0, reverse)
        dy_t = _time_major(dy, s, e)  # (T, b, d)
        B_t = _time_major(B, s, e)  # (T, b, n)
        C_t = _time_major(C, s, e)
        g = torch.mul(dy_t[..., None], C_t[:, :, None, :], out=ws.take(2, T))  # (T, b, d, n)
        order = range(T - 1, -1, -1) if reverse else range(T)
        first, last = order[0], order[-1]
        if lam is not None:
            g[last] += lam
        for j in range(T - 2, -1, -1):
            g[order[j]].addcmul_(a[order[j + 1]], g[order[j + 1]])
        lam = a[first] * g[first]
        dexp = torch.mul(g, a, out=ws.take(3, T))  # · h_prev below: the gradient of the exponent Δ·A
        if reverse:
            dexp[:-1] *= states[1:]
        else:
            dexp[1:] *= states[:-1]
        dexp[first] *= h0
        dl_t = _time_major(dl, s, e)
        u_t = _time_major(u, s, e)
        gB = torch.matmul(g, B_t[..., None])[..., 0]
        dA += torch.einsum("tbdn,tbd->dn", dexp, dl_t)
        ddl[:, :, s:e] = (torch.einsum("tbdn,dn->tbd", dexp, A) + gB * u_t).permute(1, 2, 0)
        du[:, :, s:e] = (gB * dl_t).permute(1, 2, 0)
        dB[:, :, s:e] = torch.matmul((dl_t * u_t)[:, :, None, :], g)[:, :, 0].permute(1, 2, 0)
        dC[:, :, s:e] = torch.matmul(dy_t[:, :, None, :], states)[:, :, 0].permute(1, 2, 0)
    return du, ddl, dA, dB, dC, lam


def _compiled_cpu():
    """The numba loops of :mod:`gigavim.kernels.cpu_scan`, or None when numba is unavailable."""
    global _CPU_SCAN
    if _CPU_SCAN is None:
        try:
            from gigavim.kernels import cpu_scan
        except ImportError:  # numba missing or broken: the eager blocks below still work
            cpu_scan = False
        _CPU_SCAN = cpu_scan
    return _CPU_SCAN or None


_CPU_SCAN = None
# Tests and benchmarks set this to run the eager PyTorch blocks on CPU too.
_FORCE_EAGER = False
# ... and this to run inference through the unfused (autograd) path, to compare the two.
_FORCE_UNFUSED = False


def fused_cpu(*tensors: torch.Tensor | None):
    """:mod:`gigavim.kernels.cpu_fused` when these tensors take the fused inference path, else None.

    That path (no autograd graph) serves CPU tensors when numba is there and no gradient is
    wanted: inference under ``no_grad``/``inference_mode``, or inputs that require none."""
    t0 = tensors[0]
    if t0.device.type != "cpu" or _FORCE_EAGER or _FORCE_UNFUSED or _compiled_cpu() is None:
        return None
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return None
    from gigavim.kernels import cpu_fused

    return cpu_fused


def scan_inputs_bc(B: torch.Tensor, C: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, int, int]:
    """B and C (batch, n, L) as the fused kernel reads them: one (batch, L, 2n) tensor, O(L·n)."""
    n = B.shape[1]
    return torch.cat([B, C], 1).to(dtype).transpose(1, 2).contiguous(), 0, n


class ScanCore(torch.autograd.Function):
    """Core scan y_t = C_t · h_t (no skip, no gate) with the chunked recomputing backward.

    Inputs are already in the compute dtype: u, dl (prepared Δ) (b, d, L); A (d, n);
    B, C (b, n, L); h0 (b, d, n). Returns (y, final state).
    """

    @staticmethod
    def forward(ctx, u, dl, A, B, C, h0, reverse: bool, block_len: int):
        compiled = _compiled_cpu() if u.device.type == "cpu" and not _FORCE_EAGER else None
        if compiled is not None:
            y, starts, h_last = compiled.core_forward_cpu(u, dl, A, B, C, h0, reverse)
        else:
            y, starts, h_last = _core_forward(u, dl, A, B, C, h0, reverse, block_len)
        ctx.save_for_backward(u, dl, A, B, C, starts)
        ctx.reverse, ctx.block_len, ctx.compiled = reverse, block_len, compiled
        return y, h_last

    @staticmethod
    def backward(ctx, dy, dh_last):
        u, dl, A, B, C, starts = ctx.saved_tensors
        if dy is None:
            dy = torch.zeros_like(u)
        if ctx.compiled is not None:
            grads = ctx.compiled.core_backward_cpu(u, dl, A, B, C, starts, dy.to(u.dtype), dh_last,
                                                   ctx.reverse)
        else:
            grads = _core_backward(u, dl, A, B, C, starts, dy.to(u.dtype), dh_last, ctx.reverse,
                                   ctx.block_len)
        du, ddl, dA, dB, dC, dh0 = grads
        return du, ddl, dA, dB, dC, dh0, None, None


def selective_scan_chunked(
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
    *,
    block_len: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Same signature and semantics as :func:`~gigavim.kernels.reference.selective_scan_ref`.

    Differentiable (custom chunked backward) in every input, the initial state included.
    ``block_len`` (tokens per block) only trades speed for memory; the result does not depend on it.
    """
    dtype_in = u.dtype
    cd = _compute_dtype(u)
    batch, dim, length = u.shape
    d_state = A.shape[1]
    fused = fused_cpu(u, delta, A, B, C, D, z, delta_bias, initial_state) if length else None
    if fused is not None:  # inference: softplus, skip and gate inside the compiled loop
        out = u.new_empty(batch, dim, length, dtype=cd)
        h_last = fused.scan_pass(
            u.to(cd), A.to(cd), scan_inputs_bc(B, C, cd), out, delta=delta.to(cd),
            delta_bias=delta_bias.to(cd) if delta_bias is not None else None, softplus=delta_softplus,
            D=D.to(cd) if D is not None else None, z=(z.to(cd), 0) if z is not None else None,
            h0=initial_state.to(cd) if initial_state is not None else None, reverse=reverse)
        out = out.to(dtype_in)
        return (out, h_last) if return_last_state else out
    u_c = u.to(cd)
    dl = prepare_delta(delta, delta_bias, delta_softplus, cd)
    h0 = initial_state.to(cd) if initial_state is not None else u_c.new_zeros(batch, dim, d_state)
    if length == 0:
        y, h_last = u_c.new_zeros(batch, dim, 0), h0
    else:
        bl = block_len or default_block_len(batch, dim, d_state)
        y, h_last = ScanCore.apply(u_c, dl, A.to(cd), B.to(cd), C.to(cd), h0, reverse, bl)
    out = gate_output(y, u_c, D, z).to(dtype_in)
    return (out, h_last) if return_last_state else out
