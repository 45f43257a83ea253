"""The fused CPU inference path (kernels/cpu_fused.py) against the float64 loop reference.

Inference (no autograd graph) on CPU takes this path through every public entry point:
selective_scan, bidirectional_scan, causal_conv1d and the Vim mixer.
"""

from __future__ import annotations

import pytest
import torch
from gigavim.kernels import bidirectional_scan, causal_conv1d, chunked, selective_scan
from gigavim.kernels.reference import causal_conv1d_ref, selective_scan_ref

from tests.kernels.scan_cases import rel_err, scan_in_two_pieces, scan_inputs

ARGS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


@pytest.fixture(autouse=True)
def _needs_numba():
    if chunked._compiled_cpu() is None:
        pytest.skip("numba is not importable here")


def _ref(x, reverse, softplus=True):
    return selective_scan_ref(*(x[k] for k in ARGS), softplus, x["initial_state"], True, reverse)


def test_fused_path_is_what_inference_runs(monkeypatch):
    x = scan_inputs(length=8)
    calls = []
    from gigavim.kernels import cpu_fused

    real = cpu_fused.scan_pass
    monkeypatch.setattr(cpu_fused, "scan_pass", lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad():
        selective_scan(*(x[k] for k in ARGS), True)
    assert calls  # and with gradients wanted, the autograd path instead:
    calls.clear()
    selective_scan(*(x[k].requires_grad_(True) for k in ARGS), True)
    assert not calls


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dim,length", [(6, 37), (20, 1), (33, 150), (131, 40)])  # ragged groups and blocks
@pytest.mark.parametrize("softplus", [True, False])
def test_fused_scan_matches_reference_float64(reverse, dim, length, softplus):
    x = scan_inputs(dim=dim, d_state=5, length=length, seed=dim)
    with torch.no_grad():
        y, h = selective_scan(*(x[k] for k in ARGS), softplus, x["initial_state"], True, reverse)
    y_ref, h_ref = _ref(x, reverse, softplus)
    assert rel_err(y, y_ref) < 1e-12 and rel_err(h, h_ref) < 1e-12


@pytest.mark.parametrize("reverse", [False, True])
def test_fused_scan_float32_within_1e5_of_float64(reverse):
    x64 = scan_inputs(dim=20, d_state=16, length=300, seed=5)
    with torch.no_grad():
        y, h = selective_scan(*(x64[k].float() for k in ARGS), True, x64["initial_state"].float(), True,
                              reverse)
    y_ref, h_ref = _ref(x64, reverse)
    assert y.dtype == torch.float32
    assert rel_err(y, y_ref) < 1e-5 and rel_err(h, h_ref) < 1e-5


@pytest.mark.parametrize("reverse", [False, True])
def test_fused_pieces_with_carried_state_equal_one_pass(reverse):
    """What streaming does: a band at a time, the state carried (in processing order)."""
    x = scan_inputs(dim=18, length=150, seed=7)

    def scan(p, state):
        return selective_scan(*(p[k] for k in ARGS), True, state, True, reverse)

    with torch.no_grad():
        y_all, h_all = scan(x, x["initial_state"])
        y, h = scan_in_two_pieces(scan, x, 70, reverse)
    torch.testing.assert_close(y, y_all, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, h_all, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_fused_bidirectional_matches_two_reference_scans(dtype, tol):
    xf, xb = scan_inputs(dim=21, length=90, seed=1), scan_inputs(dim=21, length=90, seed=2)
    z = xf["z"]
    want_f, sf_ref = selective_scan_ref(*(xf[k] for k in ARGS[:6]), None, xf["delta_bias"], True,
                                        xf["initial_state"], True)
    want_b, sb_ref = selective_scan_ref(*(xb[k] for k in ARGS[:6]), None, xb["delta_bias"], True,
                                        xb["initial_state"], True, True)
    want = (want_f + want_b) * 0.5 * torch.nn.functional.silu(z)

    def c(t):
        return t.to(dtype)

    with torch.no_grad():
        y, (s_f, s_b) = bidirectional_scan(
            *(c(xf[k]) for k in ARGS[:6]), *(c(xb[k]) for k in ARGS[:6]), z=c(z),
            delta_bias=c(xf["delta_bias"]), delta_bias_b=c(xb["delta_bias"]),
            initial_state=c(xf["initial_state"]), initial_state_b=c(xb["initial_state"]),
            return_last_state=True)
    assert rel_err(y, want) < tol and rel_err(s_f, sf_ref) < tol and rel_err(s_b, sb_ref) < tol


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("length", [1, 2, 300])
def test_fused_conv_matches_reference(reverse, with_state, length):
    g = torch.Generator().manual_seed(length)
    x = torch.randn(2, 7, length, generator=g, dtype=torch.float64)
    w = torch.randn(7, 1, 4, generator=g, dtype=torch.float64)
    b = torch.randn(7, generator=g, dtype=torch.float64)
    init = torch.randn(2, 7, 3, generator=g, dtype=torch.float64) if with_state else None
    with torch.no_grad():
        out, final = causal_conv1d(x, w, b, "silu", init, True, reverse)
    out_ref, final_ref = causal_conv1d_ref(x, w, b, "silu", init, True, reverse)
    assert rel_err(out, out_ref) < 1e-12
    torch.testing.assert_close(final, final_ref, rtol=0, atol=0)


@pytest.mark.parametrize("divide_out", [True, False])
def test_fused_mixer_matches_the_unfused_mixer(monkeypatch, divide_out):
    """The mixer's fused CPU forward (conv loop, dt_proj in the kernel) = its PyTorch-op path."""
    from gigavim.models.mixer import BiMambaMixer

    torch.manual_seed(0)
    mixer = BiMambaMixer(40, divide_out=divide_out).double().eval()
    for p in mixer.parameters():  # off the init values, so every weight matters
        p.data.add_(torch.randn_like(p) * 0.05)
    hidden = torch.randn(2, 75, 40, dtype=torch.float64)
    with torch.no_grad():
        fused = mixer(hidden)
        monkeypatch.setattr(chunked, "_FORCE_UNFUSED", True)
        plain = mixer(hidden)
    assert rel_err(fused, plain) < 1e-12
    with torch.no_grad():
        monkeypatch.setattr(chunked, "_FORCE_UNFUSED", False)
        f32 = mixer.float()(hidden.float())
    assert rel_err(f32, plain) < 1e-5
