"""Depthwise causal conv1d: the Triton kernel (GPU or interpreter) against the reference, carried state."""

from __future__ import annotations

import pytest
import torch
from gigavim.kernels.reference import causal_conv1d_ref

conv1d = pytest.importorskip("gigavim.kernels.conv1d")

pytestmark = pytest.mark.usefixtures("kernel_device")


def _inputs(batch=2, dim=40, length=37, width=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = ((batch, dim, length), (dim, 1, width), (dim,), (batch, dim, width - 1))
    return tuple(torch.randn(*s, generator=g, device="cpu").to(torch.get_default_device()) for s in shapes)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("length", [1, 2, 37, 130])
@pytest.mark.parametrize("with_state", [False, True])
def test_matches_reference(reverse, length, with_state):
    x, w, b, s = _inputs(length=length)
    init = s if with_state else None
    out, final = conv1d.causal_conv1d_triton(x, w, b, "silu", init, True, reverse)
    out_ref, final_ref = causal_conv1d_ref(x, w, b, "silu", init, True, reverse)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(final, final_ref)


def test_no_bias_no_activation_bf16():
    x, w, _, _ = _inputs(batch=1, length=50, seed=1)
    xb = x.bfloat16()
    out = conv1d.causal_conv1d_triton(xb, w, None, None)
    assert out.dtype == torch.bfloat16
    ref = causal_conv1d_ref(xb.double(), w.double(), None, None)
    torch.testing.assert_close(out.double(), ref, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("reverse", [False, True])
def test_pieces_with_carried_state_equal_one_pass(reverse):
    x, w, b, s = _inputs(batch=1, length=70, seed=2)
    full, full_final = conv1d.causal_conv1d_triton(x, w, b, "silu", s, True, reverse)
    first, second = x[..., :33], x[..., 33:]
    if reverse:  # anti-causal: the last piece is processed first
        o2, st = conv1d.causal_conv1d_triton(second, w, b, "silu", s, True, True)
        o1, st = conv1d.causal_conv1d_triton(first, w, b, "silu", st, True, True)
    else:
        o1, st = conv1d.causal_conv1d_triton(first, w, b, "silu", s, True, False)
        o2, st = conv1d.causal_conv1d_triton(second, w, b, "silu", st, True, False)
    torch.testing.assert_close(torch.cat([o1, o2], -1), full, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(st, full_final)


def test_non_contiguous_input():
    x, w, b, _ = _inputs(batch=2, dim=8, length=20, seed=3)
    xt = x.transpose(1, 2).contiguous().transpose(1, 2)
    torch.testing.assert_close(conv1d.causal_conv1d_triton(xt, w, b), causal_conv1d_ref(x, w, b),
                               rtol=1e-5, atol=1e-5)


def test_gradients_through_dispatch(monkeypatch):
    from gigavim.kernels import causal_conv1d

    monkeypatch.setenv("GIGAVIM_SCAN_BACKEND", "triton")
    x, w, b, s = (t.double().requires_grad_(True) for t in _inputs(batch=1, dim=6, length=15, seed=4))
    weights = torch.randn(1, 6, 15, dtype=torch.float64)
    grads = []
    for fn in (causal_conv1d, causal_conv1d_ref):
        out, final = fn(x, w, b, "silu", s, True, True)
        grads.append(torch.autograd.grad((out * weights).sum() + final.sum(), (x, w, b, s)))
    for g, g_ref in zip(*grads, strict=True):
        torch.testing.assert_close(g, g_ref)
