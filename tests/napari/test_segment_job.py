"""The widget's background job: progress arrives while gigavim.segment runs, then the result."""

from __future__ import annotations

from pathlib import Path

import pytest
import zarr
from gigavim.napari._reader import zarr_layers
from gigavim.napari._segment_job import segment_steps

from gigavim.data import sample_slide
from gigavim.engine import Progress
from gigavim.errors import GigavimError


def _drain(steps) -> tuple[list, object]:
    seen = []
    while True:
        try:
            seen.append(next(steps))
        except StopIteration as stop:
            return seen, stop.value


@pytest.mark.parametrize("context", ["tile", "image"])
def test_job_yields_progress_then_returns_the_result(tmp_path: Path, context: str) -> None:
    out = tmp_path / "sample.ome.zarr"
    steps = segment_steps(sample_slide(), out, model="tissue", resolution=8.0, context=context)
    updates, result = _drain(steps)
    assert updates and all(isinstance(p, Progress) for p in updates)
    assert [p.tiles_done for p in updates] == sorted(p.tiles_done for p in updates)
    assert updates[-1].tiles_done == updates[-1].tiles_total  # the bar ends full in both modes
    if context == "tile":
        assert updates[-1].tiles_total == result.tiles_computed
    assert result.mpp == pytest.approx(8.0) and result.outputs == [str(out)]
    assert zarr.open_group(out, mode="r").attrs["gigavim"]["settings"]["context"] == context
    labels = [layer for layer in zarr_layers(out, image=False) if layer[2] == "labels"]
    assert labels and labels[0][1]["scale"] == pytest.approx((8.0, 8.0))


def test_job_raises_user_errors_from_the_generator(tmp_path: Path) -> None:
    out = tmp_path / "exists.ome.zarr"
    out.mkdir()
    with pytest.raises(GigavimError, match="exists"):
        _drain(segment_steps(sample_slide(), out, model="tissue"))
    with pytest.raises(GigavimError, match="no such file"):
        _drain(segment_steps(tmp_path / "missing.svs", tmp_path / "o.ome.zarr"))
