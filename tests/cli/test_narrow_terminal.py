"""The command line read at 80 columns: names and paths whole, no words split, flags as flags."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from gigavim.cli._tables import print_table
from gigavim.models.catalog import list_models


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "50")


def _fits(text: str) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > 80]
    assert not too_wide, too_wide
    assert "…" not in text


def test_models_names_are_whole_at_80_columns(gigavim, narrow) -> None:
    result = gigavim("models")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    for model in list_models():
        assert model["name"] in lines, model["name"]  # its own line: whole, never "land-w…"
    _fits(result.stdout)


def test_a_table_that_fits_stays_a_table_and_one_that_does_not_keeps_every_name_whole() -> None:
    names = ["tile_0001_left_upper_quadrant_stained.tif", "b.tif"]
    table = Table(title="scores")
    for header in ("image", "tumour IoU", "tumour Dice", "stroma IoU", "stroma Dice", "pixel acc."):
        table.add_column(header)
    for name in names:
        table.add_row(name, "0.81", "0.89", "0.77", "0.87", "0.93")
    out = io.StringIO()
    print_table(Console(file=out, width=80), table)
    text = out.getvalue()
    assert all(name in text.splitlines() for name in names) and "stroma Dice: 0.87" in text
    _fits(text)
    out = io.StringIO()
    print_table(Console(file=out, width=200), table)
    assert "┃ image" in out.getvalue()  # the header row of a table
    assert out.getvalue().count("\n") < 10  # one table, not blocks


def test_help_shows_flags_without_a_type_and_splits_no_word(gigavim, narrow) -> None:
    for command in (["bench", "--help"], ["segment", "--help"], ["eval", "--help"]):
        result = gigavim(*command)
        assert result.returncode == 0
        assert "<bool>" not in result.stdout, command
        _fits(result.stdout)
    bench = gigavim("bench", "--help").stdout
    for name in ("scan", "model", "segment", "whole-image", "readers", "writers"):
        assert f" {name} " in bench, name


def test_info_prints_a_long_path_unbroken(gigavim, narrow, real_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "a_rather_long_directory_name_for_the_scenes_of_2026"
    folder.mkdir()
    scene = folder / "scene_with_a_long_name_2026_12_03.tif"
    shutil.copy(real_data / "geo" / "RGB.byte.tif", scene)
    result = gigavim("info", str(scene))
    assert result.returncode == 0
    assert str(scene) in result.stdout.splitlines()
