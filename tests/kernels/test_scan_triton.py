"""Triton scan kernels (on a GPU where there is one, else Triton's interpreter) vs the float64 reference.

Sizes stay tiny (L ≤ 64, ≤ 2 channel blocks): the interpreter runs ~1 ms per loop step.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gigavim.kernels.reference import selective_scan_ref

from tests.kernels.scan_cases import rel_err, scan_in_two_pieces, scan_inputs

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")
scan_fwd = pytest.importorskip("gigavim.kernels.scan_fwd")
from gigavim.kernels import bidirectional_scan  # noqa: E402
from gigavim.kernels.triton_common import offset3  # noqa: E402

pytestmark = pytest.mark.usefixtures("kernel_device")

ARGS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def _triton(x, reverse, **kw):
    return scan_fwd.selective_scan_triton(*(x[k] for k in ARGS), True, x["initial_state"], True,
                                          reverse, **kw)


def _ref(x, reverse):
    return selective_scan_ref(*(x[k].double() for k in ARGS), True, x["initial_state"].double(),
                              True, reverse)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("chunk_len", [None, 16])
def test_forward_matches_reference(reverse, chunk_len):
    x = {k: v.float() for k, v in scan_inputs(length=37).items()}
    y, h = _triton(x, reverse, chunk_len=chunk_len)
    y_ref, h_ref = _ref(x, reverse)
    assert rel_err(y, y_ref) < 1e-5
    assert rel_err(h, h_ref) < 1e-5


def test_two_channel_blocks_and_no_optional_inputs():
    """dim 40 spans two 32-channel programs (the second masked); no D, z, bias or initial state."""
    x = {k: v.float() for k, v in scan_inputs(batch=1, dim=40, d_state=3, length=21, seed=5).items()}
    y = scan_fwd.selective_scan_triton(x["u"], x["delta"], x["A"], x["B"], x["C"], chunk_len=8)
    y_ref = selective_scan_ref(x["u"].double(), x["delta"].double(), x["A"].double(),
                               x["B"].double(), x["C"].double())
    assert rel_err(y, y_ref) < 1e-5


@pytest.mark.parametrize("reverse", [False, True])
def test_pieces_with_carried_state_equal_one_pass(reverse):
    x = {k: v.float() for k, v in scan_inputs(batch=1, length=30, seed=6).items()}

    def scan(p, state):
        return _triton({**p, "initial_state": state}, reverse, chunk_len=8)

    y_all, h_all = scan(x, x["initial_state"])
    y, h = scan_in_two_pieces(scan, x, 13, reverse)
    torch.testing.assert_close(y, y_all, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h, h_all, rtol=1e-5, atol=1e-5)


def test_non_contiguous_inputs():
    x = {k: v.float() for k, v in scan_inputs(batch=2, dim=6, d_state=4, length=19, seed=7).items()}
    u_t = x["u"].transpose(1, 2).contiguous().transpose(1, 2)
    z_t = x["z"].transpose(1, 2).contiguous().transpose(1, 2)
    bc = torch.cat([x["B"], x["C"]], 1)
    y = scan_fwd.selective_scan_triton(u_t, x["delta"][..., :], x["A"], bc[:, :4], bc[:, 4:], x["D"], z_t,
                                       chunk_len=8)
    y_ref = selective_scan_ref(*(x[k].double() for k in ("u", "delta", "A", "B", "C", "D", "z")))
    assert rel_err(y, y_ref) < 1e-5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs(dtype):
    x = {k: v.to(dtype) for k, v in scan_inputs(batch=1, length=40, seed=8).items()}
    y, h = _triton(x, False, chunk_len=16)
    assert y.dtype == dtype and h.dtype == torch.float32
    y_ref, h_ref = _ref(x, False)
    torch.testing.assert_close(y.double(), y_ref, rtol=3e-2, atol=5e-2)
    torch.testing.assert_close(h.double(), h_ref, rtol=3e-2, atol=5e-2)


def _bidir_inputs(length, seed, dtype=torch.float32):
    f = {k: v.to(dtype) for k, v in scan_inputs(batch=1, length=length, seed=seed).items()}
    b = {k: v.to(dtype) for k, v in scan_inputs(batch=1, length=length, seed=seed + 100).items()}
    return f, b


def _bidir_call(f, b, **kw):
    return bidirectional_scan(*(f[k] for k in ARGS[:6]), *(b[k] for k in ARGS[:6]), z=f["z"],
                              delta_bias=f["delta_bias"], delta_bias_b=b["delta_bias"],
                              initial_state=f["initial_state"], initial_state_b=b["initial_state"],
                              return_last_state=True, **kw)


@pytest.mark.parametrize("chunk_len", [None, 8])
def test_fused_bidirectional_matches_two_reference_scans(chunk_len):
    f, b = _bidir_inputs(27, 9)
    y, (hf, hb) = scan_fwd.bidirectional_scan_triton(
        *(f[k] for k in ARGS[:6]), *(b[k] for k in ARGS[:6]), z=f["z"], delta_bias=f["delta_bias"],
        delta_bias_b=b["delta_bias"], initial_state=f["initial_state"],
        initial_state_b=b["initial_state"], return_last_state=True, chunk_len=chunk_len)
    d = {k: v.double() for k, v in f.items()}
    e = {k: v.double() for k, v in b.items()}
    yf, hf_ref = selective_scan_ref(*(d[k] for k in ARGS[:6]), None, d["delta_bias"], True,
                                    d["initial_state"], True, False)
    yb, hb_ref = selective_scan_ref(*(e[k] for k in ARGS[:6]), None, e["delta_bias"], True,
                                    e["initial_state"], True, True)
    y_ref = (yf + yb) / 2 * torch.nn.functional.silu(d["z"])
    assert rel_err(y, y_ref) < 1e-5
    assert rel_err(hf, hf_ref) < 1e-5 and rel_err(hb, hb_ref) < 1e-5


@pytest.mark.parametrize("reverse", [False, True])
def test_gradients_through_dispatch_match_reference(monkeypatch, reverse):
    """Triton forward + recompute backward: every input's gradient, the initial state's included."""
    from gigavim.kernels import selective_scan

    monkeypatch.setenv("GIGAVIM_SCAN_BACKEND", "triton")
    x = {k: v.requires_grad_(True) for k, v in scan_inputs(batch=1, length=17, seed=10).items()}
    w = torch.randn(1, 6, 17, dtype=torch.float64)
    ws = torch.randn(1, 6, 4, dtype=torch.float64)
    grads = []
    for fn in (selective_scan, selective_scan_ref):
        y, h = fn(*(x[k] for k in ARGS), True, x["initial_state"], True, reverse)
        grads.append(torch.autograd.grad((y * w).sum() + (h * ws).sum(), list(x.values())))
    for name, g, g_ref in zip(x, *grads, strict=True):
        assert rel_err(g, g_ref) < 1e-5, name


def test_bidirectional_gradients_match_torch_backend(monkeypatch):
    f, b = _bidir_inputs(15, 11, torch.float64)
    leaves = [v.requires_grad_(True) for v in (*f.values(), *b.values()) if v is not b["z"]]
    grads = {}
    for backend in ("torch", "triton"):
        monkeypatch.setenv("GIGAVIM_SCAN_BACKEND", backend)
        y, (hf, hb) = _bidir_call(f, b)
        grads[backend] = torch.autograd.grad(y.square().sum() + hf.sum() + hb.sum(), leaves)
    for g, g_ref in zip(grads["triton"], grads["torch"], strict=True):
        assert rel_err(g, g_ref) < 1e-5


@triton.jit
def _offset_probe(out_ptr, i0, s0, i1, s1, i2, s2):
    tl.store(out_ptr, offset3(tl.full([], i0, tl.int32), s0, tl.full([], i1, tl.int32), s1,
                              tl.full([], i2, tl.int32), s2))


@triton.jit
def _int32_probe(out_ptr, i0, s0, i1, s1, i2, s2):
    """What the offset would be without the casts (the bug of state-spaces/mamba#1015)."""
    tl.store(out_ptr, (tl.full([], i0, tl.int32) * s0 + tl.full([], i1, tl.int32) * s1)
             + tl.full([], i2, tl.int32) * s2)


@pytest.mark.parametrize(("index", "strides"), [
    ((7, 383, 1_048_575), (384 * 1_048_576, 1_048_576, 1)),  # batch 8 × 384 × 1M tokens: > 2^31
    ((1, 0, 3), (3_000_000_000, 1, 5)),  # a stride that does not fit int32 at all
])
def test_offsets_are_int64_beyond_2_31(index, strides):
    """The offset helper every kernel uses: int32 indices times strides past 2^31 stay exact."""
    out = torch.zeros(1, dtype=torch.int64)
    args = [v for pair in zip(index, strides, strict=True) for v in pair]
    _offset_probe[(1,)](out, *args)
    want = sum(i * s for i, s in zip(index, strides, strict=True))
    assert want > 2**31
    assert out.item() == want


def test_offset_probe_detects_int32_wrap():
    """Control: the same arithmetic without the int64 casts wraps, so the test above can fail."""
    out = torch.zeros(1, dtype=torch.int64)
    with np.errstate(over="ignore"):
        _int32_probe[(1,)](out, 7, 384 * 1_048_576, 383, 1_048_576, 1_048_575, 1)
    assert out.item() != 7 * 384 * 1_048_576 + 383 * 1_048_576 + 1_048_575
