"""The compiled CPU scan on NaN/inf/positive exponents: NaN or the right value, never a segfault.

The float32 exp used to index a table with int32(-NaN) (a segfault on a bundle with NaN
weights or a raster beyond float32's range). Run in a subprocess so a crash fails the test
instead of killing pytest.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from gigavim.kernels import chunked

_CODE = """
import math, torch
from gigavim.kernels import bidirectional_scan
from gigavim.kernels.chunked import selective_scan_chunked as scan
from gigavim.kernels.reference import selective_scan_ref as ref

torch.manual_seed(0)
b, d, n, L = 1, 20, 16, 300
u, B, C = torch.randn(b, d, L), torch.randn(b, n, L), torch.randn(b, n, L)
A = -torch.rand(d, n) - 0.5
delta = torch.rand(b, d, L) * 0.1
bad = delta.clone()
bad[0, 3, 7], bad[0, 4, 9], bad[0, 5, 11] = math.nan, math.inf, -math.inf
A_nan = A.clone(); A_nan[6, 2] = math.nan
grad_modes = (False, True)
for grad in grad_modes:
    for x in (u, delta, A, B, C):
        x.requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        for rev in (False, True):
            y = scan(u, bad, A, B, C, reverse=rev)
            assert y[0, 3].isnan().any() and y[0, :3].isfinite().all(), "NaN delta: NaN in its channel only"
            y = scan(u, delta, A_nan, B, C, reverse=rev)
            assert y[0, 6].isnan().all() and y[0, 7:].isfinite().all(), "NaN A: NaN in its channel only"
            nan_bias = torch.full((d,), math.nan)
            y = scan(u, delta, A, B, C, delta_softplus=True, delta_bias=nan_bias, reverse=rev)
            assert y.isnan().all()
            y = bidirectional_scan(u, bad, A, B, C, None, u, bad, A, B, C, None, z=u)
            assert y[0, 3].isnan().any() and y[0, :3].isfinite().all()
# positive exponents (negative delta, no softplus): exp is computed, not read out of bounds
pos = -torch.rand(b, d, 40) * 2
y = scan(u[..., :40].detach(), pos, A.detach(), B[..., :40].detach(), C[..., :40].detach())
u40, B40, C40 = (t[..., :40].detach().double() for t in (u, B, C))
want = ref(u40, pos.double(), A.detach().double(), B40, C40)
err = ((y.double() - want).abs().max() / want.abs().max()).item()
assert err < 1e-4, err
huge = torch.full((b, d, 8), 1e30)  # exp(+huge) = inf, not a crash
y = scan(u[..., :8].detach(), -huge, A.detach(), B[..., :8].detach(), C[..., :8].detach())
assert not y.isfinite().all()
print("ok")
"""


def test_nonfinite_and_positive_exponents_never_crash():
    if chunked._compiled_cpu() is None:
        pytest.skip("numba is not importable here")
    out = subprocess.run([sys.executable, "-c", _CODE], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert out.stdout.strip().endswith("ok")


def test_float32_exp_matches_libm_over_its_whole_range():
    numba = pytest.importorskip("numba")
    import numpy as np
    from gigavim.kernels.cpu_math import fast_exp

    exp32 = numba.njit(lambda a: np.array([fast_exp(v) for v in a], dtype=np.float32))
    x = np.concatenate([np.linspace(-87, 88, 20001), [-1e30, -np.inf, 0.0, 100.0, np.inf, np.nan]])
    got = exp32(x.astype(np.float32))
    want = np.exp(x.astype(np.float32).astype(np.float64))
    rel = np.abs(got[:20001] - want[:20001]) / want[:20001]
    assert rel[np.abs(x[:20001]) <= 10].max() < 1e-6  # Δ·A lives here
    assert rel.max() < 1e-5  # float32 argument reduction: ~|x|·6e-8
    assert got[-6] == 0 and got[-5] == 0 and got[-4] == 1 and np.isposinf(got[-3]) and np.isposinf(got[-2])
    assert np.isnan(got[-1])
