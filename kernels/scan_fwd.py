"""Triton forward selective scan: one direction, or both Vim directions fused in one output launch.

Parallel over (batch, BLOCK_D channels, chunk of T tokens). Each program keeps a
[BLOCK_D, d_state] float32 state in registers, loads each token's B/C row once for all its
BLOCK_D channels, and walks its chunk one token at a time (4 FP32 ops + 1 exp2 per state element,
cheaper than a work-efficient parallel scan, performance.md §5.5). Chunks are combined in three
passes:

1. ``_chunk_state_kernel``: every chunk from a zero state → its end state, and Σ Δ per channel
   (the chunk's total decay is exp2(A·log2e·ΣΔ): one exp per state element, not T).
2. ``_state_pass_kernel``: a sequential walk over the chunk summaries (tiny) turns them into each
   chunk's true start state, starting from the caller's ``initial_state``.
3. ``_chunk_output_kernel``: every chunk again, from its true start state, writing the output.

Pass 3 re-runs the chunk rather than correcting pass-1 outputs with y += C·(cumdecay ⊙ h_start):
the correction needs the same exp2 per state element (the cumulative decay) as the re-run, and it
would have to write the local outputs in pass 1 and read them back — more traffic for the same
exp cost, and more code. With one chunk (enough batch × channel programs to fill the device, or
a short sequence) passes 1–2 are skipped and the scan is a single pass.

``reverse`` walks tokens from the last to the first by indexing backwards — nothing is flipped.
In the bidirectional kernel a program scans its chunk forwards (storing y_f + D·u in the output),
then backwards over the same tokens, reading y_f back and writing ((y_f + y_b)/2)·silu(z): both
directions and the gate in one launch, the gate computed once.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from gigavim.kernels.triton_common import (
    LOG2E,
    channel_state_block,
    next_pow2,
    offset3,
    silu,
    softplus,
)

__all__ = ["bidirectional_scan_triton", "plan_chunks", "selective_scan_triton"]

_BLOCK_D = 32


@triton.jit
def _scan_steps(h, u_ptr, dl_ptr, B_ptr, C_ptr, out_ptr, z_ptr,
                s_ub, s_ud, s_ut, s_db, s_dd, s_dt, s_bb, s_bn, s_bt, s_cb, s_cn, s_ct,
                s_ob, s_od, s_ot, s_zb, s_zd, s_zt,
                pid_b, d_offs, d_mask, n_offs, n_mask, A2, bias, Dv, t0, n_steps,
                BLOCK_D: tl.constexpr, REVERSE: tl.constexpr, SOFTPLUS: tl.constexpr,
                HAS_BIAS: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
                OUT_MODE: tl.constexpr):
    """Run the recurrence over tokens [t0, t0 + n_steps) of one direction; returns (h, ΣΔ).

    OUT_MODE 0: no output (pass 1). 1: out = (y + D u)·silu(z). 2: out = y + D u (first half of
    the bidirectional pair). 3: out = ((out + y + D u)/2)·silu(z) (second half).
    """
    dsum = tl.zeros([BLOCK_D], dtype=tl.float32)
    for i in range(0, n_steps):
        if REVERSE:
            t = t0 + n_steps - 1 - i
        else:
            t = t0 + i
        u = tl.load(u_ptr + offset3(pid_b, s_ub, d_offs, s_ud, t, s_ut), mask=d_mask, other=0.0)
        u = u.to(tl.float32)
        dl = tl.load(dl_ptr + offset3(pid_b, s_db, d_offs, s_dd, t, s_dt), mask=d_mask, other=0.0)
        dl = dl.to(tl.float32)
        if HAS_BIAS:
            dl = dl + bias
        if SOFTPLUS:
            dl = softplus(dl)
        dl = tl.where(d_mask, dl, 0.0)
        b_t = tl.load(B_ptr + offset3(pid_b, s_bb, n_offs, s_bn, t, s_bt), mask=n_mask, other=0.0)
        a = tl.exp2(dl[:, None] * A2)
        h = a * h + (dl * u)[:, None] * b_t.to(tl.float32)[None, :]
        if OUT_MODE == 0:
            dsum += dl
        else:
            c_t = tl.load(C_ptr + offset3(pid_b, s_cb, n_offs, s_cn, t, s_ct), mask=n_mask, other=0.0)
            y = tl.sum(h * c_t.to(tl.float32)[None, :], axis=1)
            if HAS_D:
                y += Dv * u
            o_ptrs = out_ptr + offset3(pid_b, s_ob, d_offs, s_od, t, s_ot)
            if OUT_MODE == 3:
                y = (y + tl.load(o_ptrs, mask=d_mask, other=0.0).to(tl.float32)) * 0.5
            if OUT_MODE != 2:
                if HAS_Z:
                    z = tl.load(z_ptr + offset3(pid_b, s_zb, d_offs, s_zd, t, s_zt), mask=d_mask, other=0.0)
                    y = y * silu(z.to(tl.float32))
            tl.store(o_ptrs, y.to(out_ptr.dtype.element_ty), mask=d_mask)
    return h, dsum


@triton.jit
def _chunk_state_kernel(u_ptr, dl_ptr, A2_ptr, B_ptr, bias_ptr, st_ptr, dsum_ptr,
                        s_ub, s_ud, s_ut, s_db, s_dd, s_dt, s_bb, s_bn, s_bt,
                        dim, length, d_state, chunk_len, n_chunks,
                        BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, REVERSE: tl.constexpr,
                        SOFTPLUS: tl.constexpr, HAS_BIAS: tl.constexpr):
    """Pass 1: each chunk from a zero state → end state st[b, k] and ΣΔ dsum[b, k]."""
    pid_c = tl.program_id(0)
    pid_d = tl.program_id(1)
    pid_b = tl.program_id(2)
    d_offs, n_offs, d_mask, n_mask, m2, dn = channel_state_block(pid_d, dim, d_state, BLOCK_D, BLOCK_N)
    A2 = tl.load(A2_ptr + dn, mask=m2, other=0.0)
    bias = tl.load(bias_ptr + d_offs, mask=d_mask, other=0.0) if HAS_BIAS else 0.0
    t0 = pid_c * chunk_len
    n_steps = tl.minimum(chunk_len, length - t0)
    h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    h, dsum = _scan_steps(h, u_ptr, dl_ptr, B_ptr, B_ptr, u_ptr, u_ptr,
                          s_ub, s_ud, s_ut, s_db, s_dd, s_dt, s_bb, s_bn, s_bt, s_bb, s_bn, s_bt,
                          s_ub, s_ud, s_ut, s_ub, s_ud, s_ut,
                          pid_b, d_offs, d_mask, n_offs, n_mask, A2, bias, 0.0, t0, n_steps,
                          BLOCK_D, REVERSE, SOFTPLUS, HAS_BIAS, False, False, 0)
    row = pid_b.to(tl.int64) * n_chunks + pid_c
    tl.store(st_ptr + row * dim * d_state + dn, h, mask=m2)
    tl.store(dsum_ptr + row * dim + d_offs, dsum, mask=d_mask)


@triton.jit
def _state_pass_kernel(A2_ptr, st_ptr, dsum_ptr, init_ptr, final_ptr, dim, d_state, n_chunks,
                       BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, REVERSE: tl.constexpr,
                       HAS_INIT: tl.constexpr, STORE_FINAL: tl.constexpr):
    """Pass 2: replace each chunk's end state (from zero) by its true start state, in place.

    The same walk carries the adjoint across chunks in the backward (scan_bwd.py), which also
    wants the value after the last chunk (STORE_FINAL).
    """
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1)
    d_offs, _, d_mask, _, m2, dn = channel_state_block(pid_d, dim, d_state, BLOCK_D, BLOCK_N)
    A2 = tl.load(A2_ptr + dn, mask=m2, other=0.0)
    if HAS_INIT:
        h = tl.load(init_ptr + pid_b.to(tl.int64) * dim * d_state + dn, mask=m2, other=0.0)
    else:
        h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    for j in range(0, n_chunks):
        if REVERSE:
            k = n_chunks - 1 - j
        else:
            k = j
        row = pid_b.to(tl.int64) * n_chunks + k
        ptrs = st_ptr + row * dim * d_state + dn
        end_from_zero = tl.load(ptrs, mask=m2, other=0.0)
        dsum = tl.load(dsum_ptr + row * dim + d_offs, mask=d_mask, other=0.0)
        tl.store(ptrs, h, mask=m2)
        h = tl.exp2(dsum[:, None] * A2) * h + end_from_zero
    if STORE_FINAL:
        tl.store(final_ptr + pid_b.to(tl.int64) * dim * d_state + dn, h, mask=m2)


@triton.jit
def _load_start(st_ptr, init_ptr, pid_b, pid_c, n_chunks, dim, d_state, dn, m2,
                MULTI: tl.constexpr, HAS_INIT: tl.constexpr, BLOCK_D: tl.constexpr,
                BLOCK_N: tl.constexpr):
    """Start state of chunk pid_c: from pass 2, else the caller's initial state, else zero."""
    if MULTI:
        row = pid_b.to(tl.int64) * n_chunks + pid_c
        h = tl.load(st_ptr + row * dim * d_state + dn, mask=m2, other=0.0)
    elif HAS_INIT:
        h = tl.load(init_ptr + pid_b.to(tl.int64) * dim * d_state + dn, mask=m2, other=0.0)
    else:
        h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    return h


@triton.jit
def _direction_params(A2_ptr, bias_ptr, D_ptr, d_offs, d_mask, dn, m2, HAS_BIAS: tl.constexpr,
                      HAS_D: tl.constexpr):
    """A·log2e [BLOCK_D, BLOCK_N], Δ bias and D [BLOCK_D] of one direction (0 when absent)."""
    A2 = tl.load(A2_ptr + dn, mask=m2, other=0.0)
    bias = tl.load(bias_ptr + d_offs, mask=d_mask, other=0.0) if HAS_BIAS else 0.0
    Dv = tl.load(D_ptr + d_offs, mask=d_mask, other=0.0) if HAS_D else 0.0
    return A2, bias, Dv


@triton.jit
def _chunk_output_kernel(
        u_ptr, dl_ptr, A2_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, st_ptr, init_ptr, last_ptr,
        s_ub, s_ud, s_ut, s_db, s_dd, s_dt, s_bb, s_bn, s_bt, s_cb, s_cn, s_ct,
        ub_ptr, dlb_ptr, A2b_ptr, Bb_ptr, Cb_ptr, Db_ptr, biasb_ptr, stb_ptr, initb_ptr, lastb_ptr,
        s_ubb, s_ubd, s_ubt, s_dbb, s_dbd, s_dbt, s_bbb, s_bbn, s_bbt, s_cbb, s_cbn, s_cbt,
        out_ptr, z_ptr, s_ob, s_od, s_ot, s_zb, s_zd, s_zt,
        dim, length, d_state, chunk_len, n_chunks,
        BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, REVERSE: tl.constexpr, BIDIR: tl.constexpr,
        SOFTPLUS: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
        MULTI: tl.constexpr, HAS_INIT: tl.constexpr, STORE_LAST: tl.constexpr):
    """Pass 3: each chunk from its true start state, writing the (gated) output.

    BIDIR: the first parameter set runs forwards, the ``b`` set backwards over the same tokens,
    and the output is ((y_f + D u) + (y_b + D_b u_b))/2 · silu(z).
    """
    pid_c = tl.program_id(0)
    pid_d = tl.program_id(1)
    pid_b = tl.program_id(2)
    d_offs, n_offs, d_mask, n_mask, m2, dn = channel_state_block(pid_d, dim, d_state, BLOCK_D, BLOCK_N)
    t0 = pid_c * chunk_len
    n_steps = tl.minimum(chunk_len, length - t0)
    if REVERSE:
        is_last = pid_c == 0
    else:
        is_last = pid_c == n_chunks - 1
    last_off = pid_b.to(tl.int64) * dim * d_state + dn

    A2, bias, Dv = _direction_params(A2_ptr, bias_ptr, D_ptr, d_offs, d_mask, dn, m2, HAS_BIAS, HAS_D)
    h = _load_start(st_ptr, init_ptr, pid_b, pid_c, n_chunks, dim, d_state, dn, m2,
                    MULTI, HAS_INIT, BLOCK_D, BLOCK_N)
    h, _ = _scan_steps(h, u_ptr, dl_ptr, B_ptr, C_ptr, out_ptr, z_ptr,
                       s_ub, s_ud, s_ut, s_db, s_dd, s_dt, s_bb, s_bn, s_bt, s_cb, s_cn, s_ct,
                       s_ob, s_od, s_ot, s_zb, s_zd, s_zt,
                       pid_b, d_offs, d_mask, n_offs, n_mask, A2, bias, Dv, t0, n_steps,
                       BLOCK_D, REVERSE, SOFTPLUS, HAS_BIAS, HAS_D, HAS_Z, 2 if BIDIR else 1)
    if STORE_LAST:
        if is_last:
            tl.store(last_ptr + last_off, h, mask=m2)
    if BIDIR:
        # The second scan reads back the y_f this program just wrote.
        tl.debug_barrier()
        A2, bias, Dv = _direction_params(A2b_ptr, biasb_ptr, Db_ptr, d_offs, d_mask, dn, m2, HAS_BIAS,
                                         HAS_D)
        h = _load_start(stb_ptr, initb_ptr, pid_b, pid_c, n_chunks, dim, d_state, dn, m2,
                        MULTI, HAS_INIT, BLOCK_D, BLOCK_N)
        h, _ = _scan_steps(h, ub_ptr, dlb_ptr, Bb_ptr, Cb_ptr, out_ptr, z_ptr,
                           s_ubb, s_ubd, s_ubt, s_dbb, s_dbd, s_dbt, s_bbb, s_bbn, s_bbt,
                           s_cbb, s_cbn, s_cbt, s_ob, s_od, s_ot, s_zb, s_zd, s_zt,
                           pid_b, d_offs, d_mask, n_offs, n_mask, A2, bias, Dv, t0, n_steps,
                           BLOCK_D, True, SOFTPLUS, HAS_BIAS, HAS_D, HAS_Z, 3)
        if STORE_LAST:
            if pid_c == 0:
                tl.store(lastb_ptr + last_off, h, mask=m2)


def plan_chunks(batch: int, dim: int, length: int, device: torch.device,
                chunk_len: int | None = None, block_d: int = _BLOCK_D) -> int:
    """Tokens per chunk: one chunk when batch × channel blocks already fill the GPU, else enough
    chunks for ~8 programs per SM (never under 256 tokens, so the pass-2 walk stays short).
    On CPU tensors (Triton's interpreter) the default is a single chunk."""
    if chunk_len is not None:
        return max(1, int(chunk_len))
    if device.type != "cuda":
        return max(1, length)
    programs = batch * triton.cdiv(dim, block_d)
    target = 8 * torch.cuda.get_device_properties(device).multi_processor_count
    if programs >= target:
        return max(1, length)
    return max(256, triton.cdiv(length, triton.cdiv(target, programs)))


class _Direction:
    """One direction's tensors prepared for the kernels (small parameters made fp32-contiguous)."""

    def __init__(self, u, delta, A, B, C, D, delta_bias, initial_state):
        self.u, self.delta, self.B, self.C = u, delta, B, C
        self.A2 = (A.float() * LOG2E).contiguous()
        self.D = D.float().contiguous() if D is not None else None
        self.bias = delta_bias.float().contiguous() if delta_bias is not None else None
        self.init = initial_state.float().contiguous() if initial_state is not None else None

    def strides(self) -> list[int]:
        return [*self.u.stride(), *self.delta.stride(), *self.B.stride(), *self.C.stride()]

    def pointers(self, dummy, states, last):
        return [self.u, self.delta, self.A2, self.B, self.C,
                self.D if self.D is not None else dummy, self.bias if self.bias is not None else dummy,
                states if states is not None else dummy, self.init if self.init is not None else dummy,
                last if last is not None else dummy]


def _chunk_states(dr: _Direction, chunk_len: int, n_chunks: int, reverse: bool, softplus_: bool,
                  block_n: int) -> torch.Tensor:
    """Passes 1–2 for one direction: every chunk's true start state, (batch, n_chunks, dim, d_state)."""
    batch, dim, length = dr.u.shape
    d_state = dr.A2.shape[1]
    states = torch.empty(batch, n_chunks, dim, d_state, device=dr.u.device, dtype=torch.float32)
    dsum = torch.empty(batch, n_chunks, dim, device=dr.u.device, dtype=torch.float32)
    dummy = dsum
    grid = (n_chunks, triton.cdiv(dim, _BLOCK_D), batch)
    _chunk_state_kernel[grid](
        dr.u, dr.delta, dr.A2, dr.B, dr.bias if dr.bias is not None else dummy, states, dsum,
        *dr.u.stride(), *dr.delta.stride(), *dr.B.stride(),
        dim, length, d_state, chunk_len, n_chunks,
        BLOCK_D=_BLOCK_D, BLOCK_N=block_n, REVERSE=reverse, SOFTPLUS=softplus_,
        HAS_BIAS=dr.bias is not None, num_warps=4)
    _state_pass_kernel[(triton.cdiv(dim, _BLOCK_D), batch)](
        dr.A2, states, dsum, dr.init if dr.init is not None else dummy, dummy, dim, d_state, n_chunks,
        BLOCK_D=_BLOCK_D, BLOCK_N=block_n, REVERSE=reverse, HAS_INIT=dr.init is not None,
        STORE_FINAL=False, num_warps=4)
    return states


def _launch(dirs: list[_Direction], z, delta_softplus: bool, return_last_state: bool, reverse: bool,
            chunk_len: int | None, out_dtype: torch.dtype):
    """Run passes 1–3 for one direction (``reverse`` as given) or both (forward + backward)."""
    f = dirs[0]
    batch, dim, length = f.u.shape
    d_state = f.A2.shape[1]
    device = f.u.device
    out = torch.empty(batch, dim, length, device=device, dtype=out_dtype)
    lasts = [torch.empty(batch, dim, d_state, device=device, dtype=torch.float32)
             if return_last_state else None for _ in dirs]
    if length == 0:
        for dr, last in zip(dirs, lasts, strict=True):
            if last is not None:
                last.copy_(dr.init if dr.init is not None else torch.zeros_like(last))
        return out, lasts
    cl = plan_chunks(batch, dim, length, device, chunk_len)
    n_chunks = triton.cdiv(length, cl)
    block_n = max(2, next_pow2(d_state))
    bidir = len(dirs) == 2
    directions = [False, True] if bidir else [reverse]
    states = [_chunk_states(dr, cl, n_chunks, rev, delta_softplus, block_n) if n_chunks > 1 else None
              for dr, rev in zip(dirs, directions, strict=True)]
    dummy = out
    b = dirs[1] if bidir else f
    grid = (n_chunks, triton.cdiv(dim, _BLOCK_D), batch)
    zz = z if z is not None else out
    _chunk_output_kernel[grid](
        *f.pointers(dummy, states[0], lasts[0]), *f.strides(),
        *b.pointers(dummy, states[-1], lasts[-1]), *b.strides(),
        out, zz, *out.stride(), *zz.stride(),
        dim, length, d_state, cl, n_chunks,
        BLOCK_D=_BLOCK_D, BLOCK_N=block_n, REVERSE=reverse and not bidir, BIDIR=bidir,
        SOFTPLUS=delta_softplus, HAS_BIAS=f.bias is not None, HAS_D=f.D is not None,
        HAS_Z=z is not None, MULTI=n_chunks > 1, HAS_INIT=f.init is not None,
        STORE_LAST=return_last_state, num_warps=4)
    return out, lasts


def _check_same_options(f: _Direction, b: _Direction) -> None:
    for name, x, y in (("D", f.D, b.D), ("delta_bias", f.bias, b.bias), ("initial_state", f.init, b.init)):
        if (x is None) != (y is None):
            raise ValueError(f"bidirectional_scan: give {name} for both directions or for neither")


def selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          initial_state=None, return_last_state=False, reverse=False, *,
                          chunk_len: int | None = None):
    """Triton selective scan with the reference's signature and semantics (forward only)."""
    dr = _Direction(u, delta, A, B, C, D, delta_bias, initial_state)
    out, lasts = _launch([dr], z, delta_softplus, return_last_state, reverse, chunk_len, u.dtype)
    return (out, lasts[0]) if return_last_state else out


def bidirectional_scan_triton(u, delta, A, B, C, D, u_b, delta_b, A_b, B_b, C_b, D_b, z=None,
                              delta_bias=None, delta_bias_b=None, delta_softplus=True,
                              initial_state=None, initial_state_b=None, return_last_state=False, *,
                              chunk_len: int | None = None):
    """Both Vim directions and the gate in one output launch (see the module docstring)."""
    f = _Direction(u, delta, A, B, C, D, delta_bias, initial_state)
    b = _Direction(u_b, delta_b, A_b, B_b, C_b, D_b, delta_bias_b, initial_state_b)
    _check_same_options(f, b)
    out, lasts = _launch([f, b], z, delta_softplus, return_last_state, False, chunk_len, u.dtype)
    return (out, (lasts[0], lasts[1])) if return_last_state else out
