"""The dispatch point: which backend runs, the env override, and Triton imported only on demand."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from gigavim import kernels
from gigavim.errors import UsageError
from tests.kernels.scan_cases import scan_inputs


def _spy(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def spy(*a, **k):
        calls.append(name)
        return real(*a, **k)

    monkeypatch.setattr(module, name, spy)
    return calls


def _scan(x):
    return kernels.selective_scan(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], x["z"])


def test_cpu_tensors_use_the_chunked_torch_path(monkeypatch):
    monkeypatch.delenv("GIGAVIM_SCAN_BACKEND", raising=False)
    calls = _spy(monkeypatch, kernels, "selective_scan_chunked")
    x = {k: v.float() for k, v in scan_inputs(length=9).items()}
    assert kernels.scan_backend(x["u"]) == "torch"
    _scan(x)
    assert calls == ["selective_scan_chunked"]


@pytest.mark.usefixtures("kernel_device")
def test_env_forces_triton(monkeypatch):
    scan_fwd = pytest.importorskip("gigavim.kernels.scan_fwd")
    monkeypatch.setenv("GIGAVIM_SCAN_BACKEND", "Triton ")
    calls = _spy(monkeypatch, scan_fwd, "selective_scan_triton")
    x = {k: v.float() for k, v in scan_inputs(batch=1, length=5).items()}
    torch.testing.assert_close(_scan(x), kernels.selective_scan_ref(
        x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], x["z"]), rtol=1e-5, atol=1e-5)
    assert calls == ["selective_scan_triton"]


def test_env_forces_torch(monkeypatch):
    monkeypatch.setenv("GIGAVIM_SCAN_BACKEND", "torch")
    assert kernels.scan_backend(torch.zeros(1)) == "torch"


def test_bad_env_value_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("GIGAVIM_SCAN_BACKEND", "cuda")
    with pytest.raises(UsageError, match="GIGAVIM_SCAN_BACKEND must be 'torch' or 'triton', not 'cuda'"):
        _scan(scan_inputs(length=3))


def test_missing_triton_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("GIGAVIM_SCAN_BACKEND", "triton")
    monkeypatch.setitem(sys.modules, "triton", None)  # `import triton` now fails
    for name in ("autograd", "scan_fwd", "scan_bwd", "conv1d", "triton_common"):
        monkeypatch.delitem(sys.modules, f"gigavim.kernels.{name}", raising=False)
    with pytest.raises(UsageError, match=r"needs the 'triton' package.*GIGAVIM_SCAN_BACKEND=torch"):
        _scan(scan_inputs(length=3))


def test_cpu_use_never_imports_triton():
    code = ("import sys, torch; from gigavim import kernels as k; "
            "u = torch.randn(1, 4, 8); B = torch.randn(1, 2, 8); A = -torch.rand(4, 2); "
            "k.bidirectional_scan(u, u, A, B, B, None, u, u, A, B, B, None, z=u); "
            "k.causal_conv1d(u, torch.randn(4, 4)); print('triton' in sys.modules)")
    env = {k: v for k, v in __import__("os").environ.items() if k != "GIGAVIM_SCAN_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


def test_torch_bidirectional_equals_two_reference_scans(monkeypatch):
    monkeypatch.setenv("GIGAVIM_SCAN_BACKEND", "torch")
    f, b = scan_inputs(length=23, seed=1), scan_inputs(length=23, seed=2)
    keys = ("u", "delta", "A", "B", "C", "D")
    y = kernels.bidirectional_scan(*(f[k] for k in keys), *(b[k] for k in keys), z=f["z"],
                                   delta_bias=f["delta_bias"], delta_bias_b=b["delta_bias"])
    yf = kernels.selective_scan_ref(*(f[k] for k in keys), None, f["delta_bias"], True)
    yb = kernels.selective_scan_ref(*(b[k] for k in keys), None, b["delta_bias"], True, reverse=True)
    torch.testing.assert_close(y, (yf + yb) / 2 * torch.nn.functional.silu(f["z"]))
