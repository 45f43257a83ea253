"""Fixtures for model tests: the official golden vectors and a small Vim config."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def golden(reference_dir):
    """vim_golden_small.pt: official-code outputs for a 2-block, D=64 midclstok div2 model."""
    path = reference_dir / "vim_golden_small.pt"
    if not path.is_file():
        pytest.skip(f"golden vectors not found at {path}")
    return torch.load(path, weights_only=True)


@pytest.fixture
def small_kwargs() -> dict:
    """A 2-block, D=32 VisionMamba: fast enough for gradient and shape tests on CPU."""
    return dict(img_size=32, patch_size=8, stride=8, depth=2, embed_dim=32, num_classes=5)
