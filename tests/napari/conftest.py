"""Fixtures for the napari plugin tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from label_outputs import write_label_zarr


@pytest.fixture
def label_zarr(tmp_path: Path) -> Path:
    """Labels only: the root image is a copy of the class ids (no source picture)."""
    return write_label_zarr(tmp_path / "out.ome.zarr")
