"""The Vim-vs-DeiT benchmark's own logic: exponent fit, Vim/DeiT ratios, skips, the DeiT stand-in."""

from __future__ import annotations

import pytest
import torch

from gigavim.benchmarks import model
from gigavim.benchmarks.deit import DeiT, create_deit


def test_fitted_exponent_recovers_a_power_law():
    pts = [(n, 3e-6 * n ** 1.7) for n in (1025, 4097, 16385)]
    assert model.fit_exponent(pts) == pytest.approx(1.7, abs=1e-9)
    assert model.fit_exponent(pts[:1]) is None


def test_rows_take_medians_and_compare_each_vim_with_its_deit():
    plan = model.Plan(("vim-ti", "deit-ti"), (512, 1024), (1,), 3, 1, 10.0)

    def got(name, size, secs, extra):
        return [{"model": name, "source": "x", "batch": 1, "size": size, "tokens": (size // 16) ** 2 + 1,
                 "seconds": s, "peak_mib": 500.0, "forward_extra_mib": extra} for s in secs]

    samples = {("vim-ti", 1, 512): got("vim-ti", 512, [1.0, 3.0, 2.0], 100.0),
               ("deit-ti", 1, 512): got("deit-ti", 512, [4.0, 4.0, 4.0], 50.0)}
    skipped = {("deit-ti", 1, 1024): "skipped (est. 30 s per forward)"}
    rows = model._rows(plan, samples, skipped)
    vim = next(r for r in rows if r["model"] == "vim-ti")
    assert vim["seconds"] == 2.0 and vim["spread"] == pytest.approx(1.0)
    assert vim["time_vs_deit"] == pytest.approx(0.5) and vim["memory_vs_deit"] == pytest.approx(2.0)
    assert [(r["model"], r["size"]) for r in rows] == [("vim-ti", 512), ("deit-ti", 512), ("deit-ti", 1024)]
    assert rows[-1]["note"].startswith("skipped")


def test_budget_prediction_extrapolates_with_the_fitted_exponent():
    pred = model._predicted_s
    assert pred("vim-ti", 1, 2048, {}) == 0.0
    # one size measured, nothing else: the family's prior exponent
    assert pred("vim-ti", 1, 1024, {("vim-ti", 1): [(512, 1.0)]}) == pytest.approx(4.0)
    assert pred("deit-ti", 1, 1024, {("deit-ti", 1): [(512, 1.0)]}) == pytest.approx(4.0 ** 1.6)
    # its own series, fitted over sizes ≥ 512²: quadratic growth stays quadratic
    quad = {("deit-ti", 1): [(224, 0.5), (512, 1.0), (1024, 16.0)]}
    assert pred("deit-ti", 1, 2048, quad) == pytest.approx(256.0, rel=1e-6)
    # batch 8 after one size: the batch-1 exponent (linear for Vim), not quadratic growth, which
    # predicted ~400 s for Vim-Ti batch 8 at 1024² (it takes ~20 s) and skipped it
    vim = {("vim-ti", 1): [(512, 1.0), (1024, 4.0)], ("vim-ti", 8): [(224, 0.9)]}
    assert pred("vim-ti", 8, 1024, vim) == pytest.approx(0.9 * (1024 / 224) ** 2, rel=1e-6)
    # exponents are clamped to [1, 2]
    assert pred("vim-ti", 1, 2048, {("vim-ti", 1): [(512, 1.0), (1024, 1.0)]}) == pytest.approx(4.0)


def test_deit_stand_in_has_timms_shapes_and_parameter_count():
    net, source = create_deit("deit_tiny_patch16_224", 64)
    assert source in ("timm", "replica")
    replica = DeiT(192, 3, 224)
    assert sum(p.numel() for p in replica.parameters()) == 5_524_416  # timm: 5.72 M with its 1000-class head
    with torch.no_grad():
        assert net.forward_features(torch.randn(2, 3, 64, 64)).shape == (2, 17, 192)
