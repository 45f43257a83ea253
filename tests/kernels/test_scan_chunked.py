"""The chunked PyTorch scan (the CPU path) against the float64 loop reference."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from gigavim.kernels import chunked
from gigavim.kernels.chunked import selective_scan_chunked
from gigavim.kernels.reference import selective_scan_ref

from tests.kernels.scan_cases import rel_err, scan_in_two_pieces, scan_inputs

ARGS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


@pytest.fixture(params=["compiled", "eager"])
def cpu_impl(request, monkeypatch):
    """Run a test with the numba loops (the CPU default) and with the eager PyTorch blocks."""
    if request.param == "compiled" and chunked._compiled_cpu() is None:
        pytest.skip("numba is not importable here")
    monkeypatch.setattr(chunked, "_FORCE_EAGER", request.param == "eager")
    if request.param == "compiled":  # save a state every 8 tokens so short tests cross chunks
        monkeypatch.setattr(chunked._compiled_cpu(), "CHUNK", 8)
    return request.param


def _call(fn, x, reverse, **kw):
    return fn(*(x[k] for k in ARGS), True, x["initial_state"], True, reverse, **kw)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("length,block_len", [(37, 8), (64, 64), (1, 4), (50, 7)])
def test_forward_matches_reference_fp32(cpu_impl, reverse, length, block_len):
    x64 = scan_inputs(length=length)
    x32 = {k: v.float() for k, v in x64.items()}
    y_ref, h_ref = _call(selective_scan_ref, x64, reverse)
    y, h = _call(selective_scan_chunked, x32, reverse, block_len=block_len)
    assert y.dtype == torch.float32
    assert rel_err(y, y_ref) < 1e-5
    assert rel_err(h, h_ref) < 1e-5


@pytest.mark.parametrize("reverse", [False, True])
def test_gradients_match_reference_autograd(cpu_impl, reverse):
    x = {k: v.requires_grad_(True) for k, v in scan_inputs(length=29).items()}
    w = torch.randn(2, 6, 29, dtype=torch.float64)
    ws = torch.randn(2, 6, 4, dtype=torch.float64)
    grads = []
    for fn, kw in ((selective_scan_ref, {}), (selective_scan_chunked, {"block_len": 6})):
        y, h = _call(fn, x, reverse, **kw)
        grads.append(torch.autograd.grad((y * w).sum() + (h * ws).sum(), list(x.values())))
    for name, g_ref, g in zip(x, *grads, strict=True):
        assert rel_err(g, g_ref) < 1e-10, name


def test_fp32_gradients_within_1e5_of_float64(cpu_impl):
    x64 = {k: v.requires_grad_(True) for k, v in scan_inputs(length=40, seed=3).items()}
    x32 = {k: v.detach().float().requires_grad_(True) for k, v in x64.items()}
    g_ref = torch.autograd.grad(_call(selective_scan_ref, x64, False)[0].sum(), list(x64.values()))
    g = torch.autograd.grad(_call(selective_scan_chunked, x32, False, block_len=16)[0].sum(),
                            list(x32.values()))
    for name, a, b in zip(x64, g, g_ref, strict=True):
        assert rel_err(a, b) < 1e-5, name


@pytest.mark.parametrize("reverse", [False, True])
def test_pieces_with_carried_state_equal_one_pass(cpu_impl, reverse):
    x = scan_inputs(length=45, seed=1)

    def scan(p, state):
        return selective_scan_chunked(*(p[k] for k in ARGS), True, state, True, reverse, block_len=8)

    y_all, h_all = scan(x, x["initial_state"])
    y, h = scan_in_two_pieces(scan, x, 20, reverse)
    torch.testing.assert_close(y, y_all, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, h_all, rtol=1e-12, atol=1e-12)


def test_non_contiguous_inputs(cpu_impl):
    x = scan_inputs(batch=2, dim=6, d_state=4, length=33, seed=2)
    u_t = x["u"].transpose(1, 2).contiguous().transpose(1, 2)  # (b, d, L) view of a (b, L, d) tensor
    bc = torch.cat([x["B"], x["C"]], 1)  # B and C as slices of one x_proj output, as the model has
    y_ref = selective_scan_ref(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], x["z"])
    y = selective_scan_chunked(u_t, x["delta"], x["A"].t().contiguous().t(), bc[:, :4], bc[:, 4:],
                               x["D"], x["z"], block_len=5)
    assert not u_t.is_contiguous() and not bc[:, 4:].is_contiguous()
    assert rel_err(y, y_ref) < 1e-12


def test_bf16_inputs_within_tolerance():
    x64 = scan_inputs(length=40, seed=4)
    xb = {k: v.bfloat16() for k, v in x64.items()}
    y_ref = _call(selective_scan_ref, {k: v.double() for k, v in xb.items()}, False)[0]
    y = _call(selective_scan_chunked, xb, False)[0]
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.double(), y_ref, rtol=3e-2, atol=5e-2)


def test_backward_saves_no_per_state_activations(cpu_impl, monkeypatch):
    """Training memory: what autograd keeps is O(L·(dim + d_state)), not the (L, dim, d_state) states."""
    if cpu_impl == "compiled":
        monkeypatch.setattr(chunked._compiled_cpu(), "CHUNK", 128)
    b, d, n, L = 1, 32, 32, 512
    x = {k: v.float().requires_grad_(True) for k, v in scan_inputs(b, d, n, L).items()}
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = _call(selective_scan_chunked, x, False, block_len=32)[0]
    y.sum().backward()
    assert x["A"].grad is not None
    assert sum(saved) < b * d * L * n / 2  # the states alone would be b·d·L·n


def test_empty_sequence_returns_initial_state():
    x = scan_inputs(length=0)
    y, h = _call(selective_scan_chunked, x, False)
    assert y.shape == (2, 6, 0)
    torch.testing.assert_close(h, x["initial_state"])


def test_concurrent_callers_from_threads():
    """Threaded callers (dask workers, a prefetch thread) must not abort the process.

    numba's ``workqueue`` threading layer (used where no OpenMP/TBB layer loads) terminates the
    process on concurrent parallel launches; the CPU path serialises its launches.
    """
    if chunked._compiled_cpu() is None:
        pytest.skip("numba is not importable here")
    code = (
        "import torch\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from gigavim.kernels.chunked import selective_scan_chunked as scan\n"
        "x = [torch.randn(2, 6, 3000), torch.rand(2, 6, 3000), -torch.rand(6, 4),"
        " torch.randn(2, 4, 3000), torch.randn(2, 4, 3000)]\n"
        "want = scan(*x)\n"
        "with ThreadPoolExecutor(4) as pool:\n"
        "    got = list(pool.map(lambda _: scan(*x), range(12)))\n"
        "assert all(torch.equal(g, want) for g in got)\n"
        "import numba; print(numba.threading_layer())\n"
    )
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-1500:]
    assert out.stdout.strip() == "workqueue"
