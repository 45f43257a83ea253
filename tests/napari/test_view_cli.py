"""``gigavim view``: the layers it shows, and one clear line for bad input (no window needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gigavim.cli import main
from gigavim.data import sample_slide


def test_view_layers_are_the_slide_and_the_overlay(label_zarr: Path) -> None:
    pytest.importorskip("napari", reason="napari not installed (pip install -e '.[napari]')")
    from gigavim.napari._viewer import view_layers

    layers = view_layers(sample_slide(), label_zarr)
    assert [(kwargs["name"], t) for _, kwargs, t in layers] == [
        ("CMU-1-Small-Region.svs", "image"), ("out.ome.zarr segmentation", "labels")]
    assert [t for _, _, t in view_layers(label_zarr)] == ["labels"]  # an output on its own


def test_bad_inputs_are_one_line_before_any_window(tmp_path: Path, label_zarr: Path, capsys) -> None:
    pytest.importorskip("napari", reason="napari not installed (pip install -e '.[napari]')")
    broken = tmp_path / "broken.svs"
    broken.write_text("not a slide")
    cases = [
        ([str(tmp_path / "missing.svs")], "missing.svs: no such file"),
        ([str(broken)], "broken.svs: not a slide"),
        ([str(sample_slide()), "--labels", str(tmp_path)], "not a gigavim OME-Zarr"),
    ]
    for argv, message in cases:
        assert main(["view", *argv]) != 0
        err = capsys.readouterr().err
        assert err.startswith("gigavim: error: ") and message in err and err.count("\n") == 1, err


def test_view_without_napari_says_how_to_install(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "napari", None)  # import napari → ImportError
    assert main(["view", str(sample_slide())]) != 0
    assert "pip install 'gigavim[napari]'" in capsys.readouterr().err
