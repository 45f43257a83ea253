"""Parity with outputs of the official hustvl/Vim code (shared/reference/golden-vectors.md)."""

from __future__ import annotations

import pytest
import torch

from gigavim.models import vim_from_official_config


def _model(golden, dtype, **overrides):
    model = vim_from_official_config(golden["config"], **overrides).to(dtype).eval()
    model.load_state_dict(golden["state_dict"], strict=True)
    return model


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b).abs().max() / b.abs().max()).item()


def test_float64_logits_and_features_match_official(golden):
    model = _model(golden, torch.float64)
    with torch.no_grad():
        features = model.forward_features(golden["input"])
        logits = model.forward_head(features)
    assert features.shape == golden["features"].shape
    assert (features - golden["features"]).abs().max() < 1e-10
    assert (logits - golden["logits"]).abs().max() < 1e-10
    assert _rel(features, golden["features"]) <= 1e-6 and _rel(logits, golden["logits"]) <= 1e-6
    assert features.shape[1] // 2 == golden["token_position"]


def test_float32_matches_official_within_fp32_tolerance(golden):
    model = _model(golden, torch.float32)
    with torch.no_grad():
        features = model.forward_features(golden["input"].float())
        logits = model.forward_head(features)
    assert (logits.double() - golden["logits"]).abs().max() < 1e-5
    assert (features.double() - golden["features"]).abs().max() < 5e-5
    assert _rel(features, golden["features"]) <= 1e-4 and _rel(logits, golden["logits"]) <= 1e-4
    assert (logits - golden["logits_fp32"]).abs().max() < 1e-5


@pytest.mark.parametrize("variant", [dict(divide_out=False), dict(cls_token="first")])
def test_wrong_variants_are_detected(golden, variant):
    """The comparison is sharp enough to tell the released semantics from near misses."""
    model = _model(golden, torch.float64, **variant)
    with torch.no_grad():
        logits = model(golden["input"])
    assert (logits - golden["logits"]).abs().max() > 1e-3
