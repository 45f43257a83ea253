"""Triton backward kernels (GPU where there is one, else the interpreter) vs autograd of the reference.

The interpreter runs ``tl.associative_scan`` element by element (~1 s per call here), so these
few cases carry the coverage: both directions, several chunks with a ragged last one, two channel
blocks, with and without every optional input.
"""

from __future__ import annotations

import pytest
import torch
from gigavim.kernels.reference import selective_scan_ref

from tests.kernels.scan_cases import rel_err, scan_inputs

scan_bwd = pytest.importorskip("gigavim.kernels.scan_bwd")
from gigavim.kernels.scan_fwd import _Direction  # noqa: E402

pytestmark = pytest.mark.usefixtures("kernel_device")

INPUTS = ("u", "delta", "A", "B", "C", "D", "delta_bias", "initial_state")
NAMES = ("du", "ddelta", "dA", "dB", "dC", "dD", "ddelta_bias", "dinitial_state")


def _reference_grads(x, dy, dlast, reverse, softplus):
    leaves = {k: x[k].double().requires_grad_(True) for k in INPUTS if x.get(k) is not None}
    y, h = selective_scan_ref(leaves["u"], leaves["delta"], leaves["A"], leaves["B"], leaves["C"],
                              leaves.get("D"), None, leaves.get("delta_bias"), softplus,
                              leaves.get("initial_state"), True, reverse)
    loss = (y * dy.double()).sum() + (h * dlast.double()).sum()
    return y, dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))


@pytest.mark.parametrize("reverse", [False, True])
def test_all_inputs_two_channel_blocks_ragged_chunks(reverse):
    x = {k: v.float() for k, v in scan_inputs(batch=1, dim=20, d_state=3, length=37, seed=20).items()}
    dy, dlast = torch.randn(1, 20, 37), torch.randn(1, 20, 3)
    y_ref, want = _reference_grads(x, dy, dlast, reverse, True)
    dr = _Direction(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], x["delta_bias"], x["initial_state"])
    got = scan_bwd.scan_direction_bwd(dr, dy, dlast, reverse, True, want_y=True)
    assert rel_err(got["y"], y_ref) < 1e-5
    for key, name in zip(INPUTS, NAMES, strict=True):
        assert rel_err(got[name], want[key]) < 1e-5, name


def test_no_optional_inputs_no_softplus():
    x = {k: v.float() for k, v in scan_inputs(batch=2, dim=5, d_state=4, length=21, seed=21).items()}
    x["delta"] = x["delta"].abs()  # Δ > 0 without softplus, as a caller would pass it
    for k in ("D", "delta_bias", "initial_state"):
        x[k] = None
    dy = torch.randn(2, 5, 21)
    _, want = _reference_grads(x, dy, torch.zeros(2, 5, 4), False, False)
    dr = _Direction(x["u"], x["delta"], x["A"], x["B"], x["C"], None, None, None)
    got = scan_bwd.scan_direction_bwd(dr, dy, None, False, False)
    assert got["dD"] is None and got["ddelta_bias"] is None and got["y"] is None
    for key, name in (("u", "du"), ("delta", "ddelta"), ("A", "dA"), ("B", "dB"), ("C", "dC")):
        assert rel_err(got[name], want[key]) < 1e-5, name


def test_bf16_autograd_through_dispatch(monkeypatch):
    """bf16 activations (fp32 state inside): gradients come back in bf16, within bf16 tolerance."""
    from gigavim.kernels import selective_scan

    monkeypatch.setenv("GIGAVIM_SCAN_BACKEND", "triton")
    x = {k: v.bfloat16() for k, v in scan_inputs(batch=1, dim=6, d_state=4, length=24, seed=22).items()}
    w = torch.randn(1, 6, 24)
    keys = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
    grads = []
    for dtype in (torch.bfloat16, torch.float64):
        leaves = {k: x[k].to(dtype).requires_grad_(True) for k in (*keys, "initial_state")}
        fn = selective_scan if dtype == torch.bfloat16 else selective_scan_ref
        y = fn(*(leaves[k] for k in keys), True, leaves["initial_state"])
        grads.append(torch.autograd.grad((y.double() * w.double()).sum(), list(leaves.values())))
    for name, g, g_ref in zip((*keys, "initial_state"), *grads, strict=True):
        assert g.dtype == torch.bfloat16, name
        assert rel_err(g, g_ref) < 3e-2, name
