"""Triton backward of the selective scan: recompute states per chunk, reverse scan for the adjoint.

Nothing of the forward is stored but its inputs. For one direction, with chunks of T tokens
(T small enough that a [T, BLOCK_D, d_state] tile lives in registers):

1. chunk start states h_k: passes 1–2 of the forward (scan_fwd.py) with chunk_len = T;
2. ``_adjoint_chunk_kernel``: each chunk's adjoint summary from a zero adjoint at its end,
   Σ_t (Π_{s≤t} a_s) C_t dy_t (a cumprod over the tile), and ΣΔ;
3. the same sequential walk as forward pass 2, in the opposite direction, gives λ_k, the adjoint
   arriving at each chunk's end, and dL/d(initial_state) after the last chunk;
4. ``_scan_bwd_kernel``: per chunk, the states h_t by a tile ``tl.associative_scan`` from h_k,
   the adjoint g_t = C_t dy_t + a_next g_next by a reverse ``associative_scan`` from λ_k, and
   from them every gradient. ``dexp = g ⊙ (h_t − Δu B)`` equals g ⊙ a_t ⊙ h_{t-1} without a
   division or a shifted tile. dB and dC sum over channels: each channel block adds its share
   with ``tl.atomic_add`` (per-block partial buffers would be dim/16 times the size of B, 12 GB
   at 4M tokens; the summation order, hence the last bits, varies run to run, as in mamba_ssm);
   dA, dD and dΔ-bias accumulate in registers over the chunks a program visits and are written
   once per program (partials summed afterwards).

All in fp32; offsets in int64 (see ``offset3``).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from gigavim.kernels.scan_fwd import _chunk_states, _Direction, _state_pass_kernel
from gigavim.kernels.triton_common import channel_state_block, next_pow2, offset3, softplus

__all__ = ["scan_direction_bwd"]

_T = 16  # tokens per chunk tile
_BLOCK_D = 16  # channels per program
_MAX_GROUPS = 64  # programs along the sequence; each walks every _MAX_GROUPS-th chunk


@triton.jit
def _linear(a1, b1, a2, b2):
    """Compose h ↦ a1 h + b1 then h ↦ a2 h + b2 (the first-order recurrence)."""
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _load_delta(dl_ptr, pid_b, s_db, s_dd, s_dt, d_offs, t, m, bias,
                HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """Δ tile [T, BLOCK_D] after bias and softplus (0 where masked), and the pre-softplus x."""
    x = tl.load(dl_ptr + offset3(pid_b, s_db, d_offs[None, :], s_dd, t[:, None], s_dt), mask=m, other=0.0)
    x = x.to(tl.float32)
    if HAS_BIAS:
        x = x + bias[None, :]
    if SOFTPLUS:
        dl = softplus(x)
    else:
        dl = x
    return tl.where(m, dl, 0.0), x


@triton.jit
def _adjoint_chunk_kernel(dl_ptr, A2_ptr, C_ptr, dy_ptr, bias_ptr, gst_ptr, dsum_ptr,
                          s_db, s_dd, s_dt, s_cb, s_cn, s_ct, s_yb, s_yd, s_yt,
                          dim, length, d_state, n_chunks,
                          T: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
                          REVERSE: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_BIAS: tl.constexpr):
    """Adjoint summary of chunk k from a zero adjoint at its end: Σ_t cumprod(a)_t ⊙ C_t dy_t."""
    pid_c = tl.program_id(0)
    pid_d = tl.program_id(1)
    pid_b = tl.program_id(2)
    rows = tl.arange(0, T)
    t = pid_c * T + rows
    d_offs, n_offs, d_mask, n_mask, m2, dn = channel_state_block(pid_d, dim, d_state, BLOCK_D, BLOCK_N)
    valid = t < length
    m = valid[:, None] & d_mask[None, :]
    mn = valid[:, None] & n_mask[None, :]
    A2 = tl.load(A2_ptr + dn, mask=m2, other=0.0)
    bias = tl.load(bias_ptr + d_offs, mask=d_mask, other=0.0) if HAS_BIAS else tl.zeros([BLOCK_D], tl.float32)
    dl, _ = _load_delta(dl_ptr, pid_b, s_db, s_dd, s_dt, d_offs, t, m, bias, HAS_BIAS, SOFTPLUS)
    c_t = tl.load(C_ptr + offset3(pid_b, s_cb, n_offs[None, :], s_cn, t[:, None], s_ct), mask=mn, other=0.0)
    dy = tl.load(dy_ptr + offset3(pid_b, s_yb, d_offs[None, :], s_yd, t[:, None], s_yt), mask=m, other=0.0)
    a = tl.exp2(dl[:, :, None] * A2[None, :, :])
    c = c_t.to(tl.float32)[:, None, :] * dy.to(tl.float32)[:, :, None]
    acum = tl.cumprod(a, axis=0, reverse=REVERSE)
    gsum = tl.sum(acum * c, axis=0)
    row = pid_b.to(tl.int64) * n_chunks + pid_c
    tl.store(gst_ptr + row * dim * d_state + dn, gsum, mask=m2)
    tl.store(dsum_ptr + row * dim + d_offs, tl.sum(dl, axis=0), mask=d_mask)


@triton.jit
def _scan_bwd_kernel(
        u_ptr, dl_ptr, A2_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, dy_ptr, st_ptr, lam_ptr,
        du_ptr, ddl_ptr, dB_ptr, dC_ptr, dA_ptr, dD_ptr, dbias_ptr, y_ptr,
        s_ub, s_ud, s_ut, s_db, s_dd, s_dt, s_bb, s_bn, s_bt, s_cb, s_cn, s_ct, s_yb, s_yd, s_yt,
        s_ob, s_od, s_ot, dim, length, d_state, n_chunks, n_groups,
        T: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, REVERSE: tl.constexpr,
        SOFTPLUS: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_D: tl.constexpr, WRITE_Y: tl.constexpr):
    """Gradients of every input for the chunks pid_g, pid_g + n_groups, ... (see module doc)."""
    pid_g = tl.program_id(0)
    pid_d = tl.program_id(1)
    pid_b = tl.program_id(2)
    rows = tl.arange(0, T)
    d_offs, n_offs, d_mask, n_mask, m2, dn = channel_state_block(pid_d, dim, d_state, BLOCK_D, BLOCK_N)
    A2 = tl.load(A2_ptr + dn, mask=m2, other=0.0)
    A = A2 * (1.0 / 1.4426950408889634)
    bias = tl.load(bias_ptr + d_offs, mask=d_mask, other=0.0) if HAS_BIAS else tl.zeros([BLOCK_D], tl.float32)
    Dv = tl.load(D_ptr + d_offs, mask=d_mask, other=0.0) if HAS_D else tl.zeros([BLOCK_D], tl.float32)
    dA_acc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    dD_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    dbias_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    # dB/dC sum over channels: every channel block adds its share into (batch, d_state, L)
    bn_row = pid_b.to(tl.int64) * d_state
    for k in range(pid_g, n_chunks, n_groups):
        t = k * T + rows
        valid = t < length
        n_valid = tl.minimum(T, length - k * T)
        m = valid[:, None] & d_mask[None, :]
        mn = valid[:, None] & n_mask[None, :]
        dl, x = _load_delta(dl_ptr, pid_b, s_db, s_dd, s_dt, d_offs, t, m, bias, HAS_BIAS, SOFTPLUS)
        u = tl.load(u_ptr + offset3(pid_b, s_ub, d_offs[None, :], s_ud, t[:, None], s_ut), mask=m, other=0.0)
        u = u.to(tl.float32)
        b_t = tl.load(B_ptr + offset3(pid_b, s_bb, n_offs[None, :], s_bn, t[:, None], s_bt),
                      mask=mn, other=0.0).to(tl.float32)
        c_t = tl.load(C_ptr + offset3(pid_b, s_cb, n_offs[None, :], s_cn, t[:, None], s_ct),
                      mask=mn, other=0.0).to(tl.float32)
        dy = tl.load(dy_ptr + offset3(pid_b, s_yb, d_offs[None, :], s_yd, t[:, None], s_yt),
                     mask=m, other=0.0).to(tl.float32)
        row = pid_b.to(tl.int64) * n_chunks + k
        h0 = tl.load(st_ptr + row * dim * d_state + dn, mask=m2, other=0.0)
        lam = tl.load(lam_ptr + row * dim * d_state + dn, mask=m2, other=0.0)

        a = tl.exp2(dl[:, :, None] * A2[None, :, :])
        dlu = dl * u
        bu = dlu[:, :, None] * b_t[:, None, :]
        acum, h_loc = tl.associative_scan((a, bu), 0, _linear, reverse=REVERSE)
        h = h_loc + acum * h0[None, :, :]

        # the adjoint runs against the processing order; a_next is the decay of the token
        # processed after t (t+1 forwards, t-1 backwards), 0 past the chunk: λ enters instead
        if REVERSE:
            t_next = t - 1
            has_next = valid & (rows >= 1)
            last_row = 0
        else:
            t_next = t + 1
            has_next = rows + 1 < n_valid
            last_row = n_valid - 1
        mnext = has_next[:, None] & d_mask[None, :]
        dl_next, _ = _load_delta(dl_ptr, pid_b, s_db, s_dd, s_dt, d_offs, t_next, mnext, bias,
                                 HAS_BIAS, SOFTPLUS)
        coef = tl.where(has_next[:, None, None], tl.exp2(dl_next[:, :, None] * A2[None, :, :]), 0.0)
        c = c_t[:, None, :] * dy[:, :, None]
        c = c + tl.where((rows == last_row)[:, None, None], lam[None, :, :], 0.0)
        _, g = tl.associative_scan((coef, c), 0, _linear, reverse=not REVERSE)

        dexp = g * (h - bu)  # dL/d(Δ·A) = g ⊙ a ⊙ h_prev
        gB = tl.sum(g * b_t[:, None, :], axis=2)
        ddl = tl.sum(dexp * A[None, :, :], axis=2) + u * gB
        if SOFTPLUS:
            ddl = tl.where(x <= 20.0, ddl / (1.0 + tl.exp(-tl.minimum(x, 20.0))), ddl)
        ddl = tl.where(m, ddl, 0.0)
        du = dl * gB
        if HAS_D:
            du += dy * Dv[None, :]
        o_off = offset3(pid_b, s_ob, d_offs[None, :], s_od, t[:, None], s_ot)
        tl.store(du_ptr + o_off, du, mask=m)
        tl.store(ddl_ptr + o_off, ddl, mask=m)
        bn_off = (bn_row + n_offs[None, :]) * length + t[:, None]
        tl.atomic_add(dB_ptr + bn_off, tl.sum(g * dlu[:, :, None], axis=1), mask=mn)
        tl.atomic_add(dC_ptr + bn_off, tl.sum(h * dy[:, :, None], axis=1), mask=mn)
        if WRITE_Y:
            y = tl.sum(h * c_t[:, None, :], axis=2)
            if HAS_D:
                y += Dv[None, :] * u
            tl.store(y_ptr + o_off, y, mask=m)
        dA_acc += tl.sum(dexp * dl[:, :, None], axis=0)
        dD_acc += tl.sum(dy * u, axis=0)
        dbias_acc += tl.sum(ddl, axis=0)
    prow = pid_b.to(tl.int64) * n_groups + pid_g
    tl.store(dA_ptr + prow * dim * d_state + dn, dA_acc, mask=m2)
    tl.store(dD_ptr + prow * dim + d_offs, dD_acc, mask=d_mask)
    tl.store(dbias_ptr + prow * dim + d_offs, dbias_acc, mask=d_mask)


def scan_direction_bwd(dr: _Direction, dy: torch.Tensor, dh_last: torch.Tensor | None, reverse: bool,
                       delta_softplus: bool, want_y: bool = False) -> dict[str, torch.Tensor | None]:
    """Gradients of one direction's scan y = C·h + D·u (pre-gate) given dy = dL/dy.

    Returns du, ddelta (w.r.t. the raw Δ, before bias and softplus), dA, dB, dC, dD, ddelta_bias,
    dinitial_state (all fp32), and with ``want_y`` the recomputed y + D·u (fp32), for the gate's
    gradient.
    """
    batch, dim, length = dr.u.shape
    d_state = dr.A2.shape[1]
    dev = dr.u.device
    f32 = {"device": dev, "dtype": torch.float32}
    block_n = max(2, next_pow2(d_state))
    n_chunks = triton.cdiv(length, _T)
    dblocks = triton.cdiv(dim, _BLOCK_D)
    # 1. chunk start states (the forward's passes 1-2 with T-token chunks)
    states = _chunk_states(dr, _T, n_chunks, reverse, delta_softplus, block_n)
    dy = dy.contiguous()
    # 2. adjoint chunk summaries
    lam = torch.empty(batch, n_chunks, dim, d_state, **f32)
    dsum = torch.empty(batch, n_chunks, dim, **f32)
    dummy = dsum
    bias = dr.bias if dr.bias is not None else dummy
    _adjoint_chunk_kernel[(n_chunks, dblocks, batch)](
        dr.delta, dr.A2, dr.C, dy, bias, lam, dsum, *dr.delta.stride(), *dr.C.stride(), *dy.stride(),
        dim, length, d_state, n_chunks, T=_T, BLOCK_D=_BLOCK_D, BLOCK_N=block_n, REVERSE=reverse,
        SOFTPLUS=delta_softplus, HAS_BIAS=dr.bias is not None, num_warps=4)
    # 3. the adjoint entering each chunk's end, walking the chunks against the processing order
    dh0 = torch.empty(batch, dim, d_state, **f32)
    init = dh_last.float().contiguous() if dh_last is not None else dummy
    _state_pass_kernel[(triton.cdiv(dim, 32), batch)](
        dr.A2, lam, dsum, init, dh0, dim, d_state, n_chunks, BLOCK_D=32, BLOCK_N=block_n,
        REVERSE=not reverse, HAS_INIT=dh_last is not None, STORE_FINAL=True, num_warps=4)
    # 4. everything else
    groups = min(n_chunks, _MAX_GROUPS)
    du = torch.empty(batch, dim, length, **f32)
    ddl = torch.empty_like(du)
    dB = torch.zeros(batch, d_state, length, **f32)
    dC = torch.zeros_like(dB)
    dA = torch.empty(batch, groups, dim, d_state, **f32)
    dD = torch.empty(batch, groups, dim, **f32)
    dbias = torch.empty_like(dD)
    y = torch.empty_like(du) if want_y else du
    _scan_bwd_kernel[(groups, dblocks, batch)](
        dr.u, dr.delta, dr.A2, dr.B, dr.C, dr.D if dr.D is not None else dummy, bias, dy, states, lam,
        du, ddl, dB, dC, dA, dD, dbias, y,
        *dr.u.stride(), *dr.delta.stride(), *dr.B.stride(), *dr.C.stride(), *dy.stride(), *du.stride(),
        dim, length, d_state, n_chunks, groups,
        T=_T, BLOCK_D=_BLOCK_D, BLOCK_N=block_n, REVERSE=reverse, SOFTPLUS=delta_softplus,
        HAS_BIAS=dr.bias is not None, HAS_D=dr.D is not None, WRITE_Y=want_y, num_warps=4)
    return {"du": du, "ddelta": ddl, "dA": dA.sum((0, 1)), "dB": dB, "dC": dC,
            "dD": dD.sum((0, 1)) if dr.D is not None else None,
            "ddelta_bias": dbias.sum((0, 1)) if dr.bias is not None else None,
            "dinitial_state": dh0, "y": y if want_y else None}
