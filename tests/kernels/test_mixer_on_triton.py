"""The Vim mixer's real call pattern (strided B/C/z views, anti-causal conv, fused bidirectional
scan) gives the same outputs and gradients on the Triton backend as on the PyTorch one."""

from __future__ import annotations

import pytest
import torch

scan_fwd = pytest.importorskip("gigavim.kernels.scan_fwd")
from gigavim.kernels import conv1d, scan_bwd  # noqa: E402

from gigavim.models.mixer import BiMambaMixer  # noqa: E402

pytestmark = pytest.mark.usefixtures("kernel_device")


def _count_calls(monkeypatch, module, name, calls):
    real = getattr(module, name)

    def counted(*a, **k):
        calls.append(name)
        return real(*a, **k)

    monkeypatch.setattr(module, name, counted)


def test_mixer_forward_and_gradients_match_torch_backend(monkeypatch):
    torch.manual_seed(0)
    mixer = BiMambaMixer(d_model=8, d_state=4).double()
    hidden = torch.randn(1, 19, 8, dtype=torch.float64, requires_grad=True)
    calls: list[str] = []
    _count_calls(monkeypatch, scan_fwd, "bidirectional_scan_triton", calls)
    _count_calls(monkeypatch, conv1d, "causal_conv1d_triton", calls)
    _count_calls(monkeypatch, scan_bwd, "scan_direction_bwd", calls)
    results = {}
    for backend in ("torch", "triton"):
        monkeypatch.setenv("GIGAVIM_SCAN_BACKEND", backend)
        out = mixer(hidden)
        weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
        grads = torch.autograd.grad((out * weights).sum(), [hidden, *mixer.parameters()], allow_unused=True)
        results[backend] = (out.detach(), grads)
    assert sorted(calls) == sorted(["bidirectional_scan_triton", "causal_conv1d_triton",
                                    "causal_conv1d_triton", "scan_direction_bwd", "scan_direction_bwd"])
    out_t, g_t = results["torch"]
    out_k, g_k = results["triton"]
    torch.testing.assert_close(out_k, out_t, rtol=1e-5, atol=1e-6)
    names = ["hidden", *(n for n, _ in mixer.named_parameters())]
    for name, a, b in zip(names, g_k, g_t, strict=True):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)
