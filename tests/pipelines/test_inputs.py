"""Which files a batch picks up and what its outputs are called (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gigavim.pipelines.inputs import expand_inputs, format_suffixes, output_names

from gigavim.errors import InputError, UsageError


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_directory_gives_its_image_files_but_not_sidecars_hidden_files_or_stores(tmp_path: Path):
    keep = [_touch(tmp_path / "a.svs"), _touch(tmp_path / "b.tif"), _touch(tmp_path / "c.ndpi")]
    _touch(tmp_path / "notes.txt")
    _touch(tmp_path / "labels.geojson")
    _touch(tmp_path / ".hidden.svs")
    _touch(tmp_path / "empty.svs", b"")
    _touch(tmp_path / "old.ome.zarr" / "zarr.json")  # an output store is a folder
    _touch(tmp_path / "sub" / "deeper.svs")  # not recursive: MIRAX data folders live beside slides
    assert expand_inputs([tmp_path]) == keep


def test_globs_and_files_are_merged_sorted_and_unique(tmp_path: Path):
    a, b = _touch(tmp_path / "x" / "a.svs"), _touch(tmp_path / "y" / "b.svs")
    _touch(tmp_path / "y" / "b.json")
    found = expand_inputs([str(tmp_path / "**" / "*"), a, str(tmp_path / "x")])
    assert found == [a, b]


def test_a_named_file_is_kept_even_if_it_does_not_look_like_an_image(tmp_path: Path):
    note = _touch(tmp_path / "notes.txt")
    assert expand_inputs([note]) == [note]  # the user asked: it fails later with its own error


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "missing.svs", "no such file or directory"),
    (lambda p: str(p / "*.svs"), "pattern matches no image files"),
    (lambda p: p, "directory holds no image files"),
])
def test_nothing_to_process_is_one_clear_error_naming_the_argument(tmp_path: Path, make, match):
    with pytest.raises(InputError, match=match) as info:
        expand_inputs([make(tmp_path)])
    assert str(tmp_path) in str(info.value)


def test_output_names_are_stems_made_unique_where_they_collide():
    inputs = [Path("/d/a.svs"), Path("/d/a.tif"), Path("/d/b.ome.tif"), Path("/e/c.svs"),
              Path("/f/c.svs")]
    assert output_names(inputs) == ["a_svs", "a_tif", "b", "c", "c-2"]


def test_formats_map_to_suffixes_and_bad_ones_are_refused():
    assert format_suffixes(["ome.zarr", "tif", "geojson"]) == [".ome.zarr", ".tif", ".geojson"]
    with pytest.raises(UsageError, match="unknown output format 'png'"):
        format_suffixes(["png"])
    with pytest.raises(UsageError, match="given twice"):
        format_suffixes(["tif", ".tif"])


def test_an_existing_file_with_glob_characters_in_its_name_is_that_file(tmp_path: Path):
    """``scan [1].svs`` names a file; read as a glob it would match ``scan 1.svs`` or nothing."""
    named = _touch(tmp_path / "scan [1].svs")
    _touch(tmp_path / "scan 1.svs")
    assert expand_inputs([str(named)]) == [named.absolute()]
