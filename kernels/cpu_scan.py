"""Compiled CPU loops (numba) for the core scan and its backward: one pass, no block tensors.

Eager PyTorch has to materialise exp(Δ·A) and Δ·u·B for every (token, channel, state) and read
them back, several memory passes per state element; here each (batch, channel) row is one thread's
loop over tokens with the d_state-wide state in registers: one exp (a vectorisable polynomial in
float32, libm's in float64) and three multiply-adds per state element, nothing written but y (and,
every ``chunk`` tokens, the state the backward restarts from). The backward walks the chunks in
reverse, recomputes each chunk's states from its saved start, and runs the adjoint recurrence. dB
and dC sum over channels, so each thread accumulates them in its own slice of a partial buffer
that is summed afterwards (deterministic for a fixed thread count, no atomics).

Same maths as :func:`gigavim.kernels.chunked._core_forward` (the eager PyTorch fallback, used on
non-CPU tensors or without numba). The exp is :func:`gigavim.kernels.cpu_math.fast_exp`: no
table lookup, so NaN/inf/positive exponents (NaN weights, out-of-range rasters) give NaN/inf/
the right value, never an out-of-bounds read.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from gigavim.kernels.cpu_math import FASTMATH as _FASTMATH
from gigavim.kernels.cpu_math import fast_exp
from gigavim.kernels.launch import launch_slot
from numba import njit, prange

__all__ = ["core_backward_cpu", "core_forward_cpu"]


# Tokens between saved states: the backward keeps (batch, dim, L / CHUNK, d_state) start states
# and recomputes at most CHUNK states per row at a time.
CHUNK = 128


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _forward(u, dl, A, Bt, Ct, h0, y, starts, h_last, chunk, reverse):  # pragma: no cover - compiled
    batch, dim, length = u.shape
    n = A.shape[1]
    for row in prange(batch * dim):
        b = row // dim
        d = row % dim
        h = h0[b, d].copy()
        for j in range(length):
            t = length - 1 - j if reverse else j
            if j % chunk == 0:
                starts[b, d, j // chunk] = h
            dlt = dl[b, d, t]
            dut = dlt * u[b, d, t]
            acc = 0.0
            for k in range(n):
                hk = fast_exp(dlt * A[d, k]) * h[k] + dut * Bt[b, t, k]
                h[k] = hk
                acc += hk * Ct[b, t, k]
            y[b, d, t] = acc
        h_last[b, d] = h


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _backward(u, dl, A, Bt, Ct, starts, dy, lam0, chunk, reverse,
              du, ddl, dA_rows, dBt_part, dCt_part, dh0):  # pragma: no cover - compiled
    batch, dim, length = u.shape
    n = A.shape[1]
    n_chunks = starts.shape[2]
    for row in prange(batch * dim):
        b = row // dim
        d = row % dim
        tid = numba.get_thread_id()
        g = lam0[b, d].copy()  # dL/dh after the last processed token, from later pieces
        hs = np.empty((chunk + 1, n), dtype=u.dtype)
        for c in range(n_chunks - 1, -1, -1):
            j0 = c * chunk
            steps = min(chunk, length - j0)
            hs[0] = starts[b, d, c]
            for i in range(steps):  # recompute this chunk's states
                j = j0 + i
                t = length - 1 - j if reverse else j
                dlt = dl[b, d, t]
                dut = dlt * u[b, d, t]
                for k in range(n):
                    hs[i + 1, k] = fast_exp(dlt * A[d, k]) * hs[i, k] + dut * Bt[b, t, k]
            for i in range(steps - 1, -1, -1):  # adjoint, last token first
                j = j0 + i
                t = length - 1 - j if reverse else j
                dlt = dl[b, d, t]
                ut = u[b, d, t]
                dyt = dy[b, d, t]
                gB = 0.0
                dexp_A = 0.0
                for k in range(n):
                    gk = g[k] + Ct[b, t, k] * dyt  # dL/dh_t
                    dCt_part[tid, b, t, k] += dyt * hs[i + 1, k]
                    dBt_part[tid, b, t, k] += gk * dlt * ut
                    gB += gk * Bt[b, t, k]
                    a = fast_exp(dlt * A[d, k])
                    dexp = gk * hs[i, k] * a  # gradient of the exponent Δ·A
                    dA_rows[b, d, k] += dexp * dlt
                    dexp_A += dexp * A[d, k]
                    g[k] = a * gk  # carried to the previous token
                du[b, d, t] = gB * dlt
                ddl[b, d, t] = dexp_A + gB * ut
        dh0[b, d] = g


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def core_forward_cpu(u, dl, A, B, C, h0, reverse: bool):
    """y (b, d, L), chunk start states (b, d, n_chunks, n) and the final state; see module doc."""
    batch, dim, length = u.shape
    n = A.shape[1]
    y = torch.empty(batch, dim, length, dtype=u.dtype)
    starts = torch.empty(batch, dim, -(-length // CHUNK), n, dtype=u.dtype)
    h_last = torch.empty(batch, dim, n, dtype=u.dtype)
    args = (_np(u), _np(dl), _np(A), _np(B.transpose(1, 2)), _np(C.transpose(1, 2)), _np(h0))
    with launch_slot():
        _forward(*args, y.numpy(), starts.numpy(), h_last.numpy(), CHUNK, reverse)
    return y, starts, h_last


def core_backward_cpu(u, dl, A, B, C, starts, dy, dh_last, reverse: bool):
    """(du, dΔ, dA, dB, dC, dh0) of the core scan, recomputing states chunk by chunk."""
    batch, dim, length = u.shape
    n = A.shape[1]
    threads = numba.get_num_threads()
    du, ddl = torch.empty_like(u), torch.empty_like(dl)
    dA_rows = torch.zeros(batch, dim, n, dtype=u.dtype)
    dBt = torch.zeros(threads, batch, length, n, dtype=u.dtype)
    dCt = torch.zeros(threads, batch, length, n, dtype=u.dtype)
    dh0 = torch.empty(batch, dim, n, dtype=u.dtype)
    lam = dh_last if dh_last is not None else torch.zeros(batch, dim, n, dtype=u.dtype)
    args = (_np(u), _np(dl), _np(A), _np(B.transpose(1, 2)), _np(C.transpose(1, 2)), _np(starts),
            _np(dy), _np(lam.to(u.dtype)))
    with launch_slot():
        _backward(*args, CHUNK, reverse, du.numpy(), ddl.numpy(), dA_rows.numpy(), dBt.numpy(), dCt.numpy(),
                  dh0.numpy())
    dB = dBt.sum(0).transpose(1, 2)
    dC = dCt.sum(0).transpose(1, 2)
    return du, ddl, dA_rows.sum(0), dB, dC, dh0
