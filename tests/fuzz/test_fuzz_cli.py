# ruff: noqa: E501  (corpus data and case tables read best one per line)
"""Fuzz the command line: every hostile input is one line, a non-zero exit, no traceback, and
nothing half-written — for ``info``, ``segment``, ``eval`` and ``train``.

The corpus (:mod:`tests.fuzz.corpus`) is generated once per session; each case runs the real
entry point (``gigavim.cli.main``) in this process, with an empty output folder of its own.
Every case fails before any model runs, so the whole suite takes seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gigavim.cli import main

from . import corpus

TRAIN = ["--steps", "1", "--patch", "32", "--embed-dim", "16", "--depth", "1", "--batch-size", "1",
         "--classes", "background,road", "--gsd", "10"]


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("fuzz-corpus")
    return {"images": corpus.images(root), "labels": corpus.label_files(root),
            "bundles": corpus.bundles(root, root / "pwned"), "root": {"": root}}


Case = Callable[[dict[str, dict[str, Path]], Path], list[str]]
CASES: dict[str, Case] = {}
for _name in ("byte-flipped JPEG tile", "truncated GeoTIFF", "header-only TIFF", "2^31 px header", "0x0 header",
              "random bytes .tif", "all-NaN float raster", "all -DBL_MAX float64 raster"):
    if "raster" not in _name:  # `info` describes an all-nodata raster (0 % valid); processing refuses it
        CASES[f"info: {_name}"] = lambda f, out, n=_name: ["info", str(f["images"][n])]
    CASES[f"segment: {_name}"] = lambda f, out, n=_name: ["segment", str(f["images"][n]), "-o", str(out / "x.tif")]
for _name in corpus.GEOJSON:
    CASES[f"eval: {_name}"] = lambda f, out, n=_name: [
        "eval", "--model", "land-water", f"{f['images']['scene']}:{f['labels'][n]}"]
for _name in ("empty collection", "all outside the image", "class NaN", "crs as a string"):
    CASES[f"train: {_name}"] = lambda f, out, n=_name: [
        "train", f"{f['images']['scene']}:{f['labels'][n]}", "-o", str(out / "m.pt"), *TRAIN]
for _name in ("byte-flipped label raster", "byte-flipped label raster, other CRS"):
    CASES[f"eval: {_name}"] = lambda f, out, n=_name: [
        "eval", "--model", "land-water", f"{f['images']['scene']}:{f['labels'][n]}"]
    CASES[f"train: {_name}"] = lambda f, out, n=_name: [
        "train", f"{f['images']['scene']}:{f['labels'][n]}", "-o", str(out / "m.pt"), *TRAIN]
CASES["eval: mask on a disjoint grid"] = lambda f, out: [
    "eval", "--model", "land-water", f"{f['images']['scene']}:{f['labels']['mask on a disjoint grid']}"]
CASES["train: mask on a disjoint grid"] = lambda f, out: [
    "train", f"{f['images']['scene']}:{f['labels']['mask on a disjoint grid']}", "-o", str(out / "m.pt"), *TRAIN]
for _name in ("unsafe pickle", "NaN weights", "weights x1e38", "zero std", "inf mean", "64 GB arch", "meta not a dict",
              "truncated bundle", "byte-flipped bundle", "random bytes bundle"):
    CASES[f"segment --model: {_name}"] = lambda f, out, n=_name: [
        "segment", str(f["images"]["scene"]), "--model", str(f["bundles"][n]), "-o", str(out / "x.tif")]
CASES["eval --model: unsafe pickle"] = lambda f, out: [
    "eval", "--model", str(f["bundles"]["unsafe pickle"]), f"{f['images']['scene']}:{f['labels']['null']}"]
CASES["segment: output name too long"] = lambda f, out: [
    "segment", str(f["images"]["scene"]), "-o", str(out / ("a" * 300 + ".tif"))]
CASES["info: input name too long"] = lambda f, out: ["info", str(out / ("b" * 300 + ".tif"))]
CASES["segment --overwrite: a directory that is not ours"] = lambda f, out: [
    "segment", str(f["images"]["scene"]), "-o", str(out / "precious.zarr"), "--overwrite"]


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_input_is_one_line_and_leaves_nothing(case: str, files, tmp_path: Path,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    if "not ours" in case:
        (out / "precious.zarr" / "data").mkdir(parents=True)
        (out / "precious.zarr" / "data" / "keep.txt").write_text("mine")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    capfd.readouterr()
    code = main(CASES[case](files, out))
    stdout, stderr = capfd.readouterr()  # file descriptors: GDAL/libtiff's C-level lines too
    lines = stderr.splitlines()
    assert code != 0 and "Traceback" not in stderr, (case, stderr)
    assert len(lines) == 1 and lines[0].startswith("gigavim: error: "), (case, stderr)
    assert "weights_only" not in stderr and "ERROR 1" not in stderr
    assert stdout == ""
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before, case  # nothing half-written
    assert not (files["root"][""] / "pwned").exists()
