"""Bad inputs: one line on stderr naming the file, non-zero exit, no traceback (unless --debug).

These run the real console entry point in a subprocess (``python -m gigavim``) so that
anything printed outside gigavim's error handling (warnings, library logs) would show up.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BAD_FILES = ["broken.svs", "unopenable.tiff", "unreadable.svs", "small_dicom.dcm", "corrupt.tif"]


def gigavim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gigavim", *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_single_bad_input_is_one_line(real_data):
    path = real_data / "bad_input/unreadable.svs"  # opens fine, fails on the first read
    result = gigavim("info", str(path))
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"gigavim: error: {path}: "), result.stderr
    assert "Bogus marker length" in lines[0]


def test_every_bad_input_gets_exactly_one_line_naming_it(real_data, tmp_path):
    empty = tmp_path / "empty.svs"
    empty.touch()
    truncated = tmp_path / "truncated.svs"
    data = (real_data / "wsi/CMU-1-Small-Region.svs").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    paths: list[Path] = [real_data / "bad_input" / name for name in BAD_FILES]
    paths += [tmp_path / "missing.svs", tmp_path, empty, truncated]
    result = gigavim("info", *map(str, paths))
    assert result.returncode != 0 and result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == len(paths), result.stderr
    for path, line in zip(paths, lines, strict=True):
        assert line.startswith(f"gigavim: error: {path}: ")


def test_debug_shows_the_traceback(real_data):
    result = gigavim("--debug", "info", str(real_data / "bad_input/unreadable.svs"))
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "InputError" in result.stderr


def test_command_line_mistakes_are_one_line_with_a_pointer_to_help():
    """Unknown options and commands, unparsable values: click's error as one line, exit 2.

    typer ≥ 0.29 raises its own bundled click's exceptions, which the standalone click package's
    classes do not match; this runs the real entry point so either kind is caught.
    """
    cases = {
        ("models", "--bogus"): "No such option: --bogus (see 'gigavim models --help')",
        ("segment", "--tile", "abc", "x.svs", "-o", "y.zarr"): "Invalid value for '--tile'",
        ("nosuchcommand",): "No such command 'nosuchcommand'",
    }
    for args, message in cases.items():
        result = gigavim(*args)
        assert result.returncode == 2 and result.stdout == "", (args, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("gigavim: error: "), (args, result.stderr)
        assert message in lines[0]
    debug = gigavim("--debug", "models", "--bogus")
    assert debug.returncode != 0 and "Traceback" in debug.stderr
