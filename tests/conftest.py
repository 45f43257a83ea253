"""Shared fixtures: where the real test data lives, and Triton's interpreter on CPU machines."""

from __future__ import annotations

import os
from pathlib import Path

# Triton reads TRITON_INTERPRET when it is first imported; without a GPU the kernels can only
# run through its interpreter, so set it before any test module imports triton.
try:  # pragma: no cover - depends on the machine
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
except ImportError:  # pragma: no cover
    pass

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("GIGAVIM_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
REFERENCE = REAL_DATA.parent.parent / "reference"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """../shared/data/real, or skip with the reason when this checkout has no shared data."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real test data not found at {REAL_DATA} (set GIGAVIM_REAL_DATA)")
    return REAL_DATA


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference material not found at {REFERENCE}")
    return REFERENCE
