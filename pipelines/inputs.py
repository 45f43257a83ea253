"""Which files a batch processes, and where each one's outputs go.

Directories and glob patterns are expanded here so that a user can point the batch at a folder
of slides and scenes; sidecar files (JSON, GeoJSON, text, hidden files, zarr stores) are left
out because they are never images. Output names are stable across reruns so that
skip-existing and resume find the outputs of an earlier run.
"""

from __future__ import annotations

import glob
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from gigavim.errors import InputError, UsageError
from gigavim.io.writers import output_format

#: Extensions that are never an input image (annotations, metadata, text, archives, outputs).
NON_IMAGE_SUFFIXES = frozenset({
    ".json", ".geojson", ".txt", ".md", ".csv", ".tsv", ".xml", ".yaml", ".yml", ".log", ".py",
    ".zip", ".gz", ".tar", ".zarr", ".dat", ".ini", ".aux", ".ovr", ".prj", ".pdf", ".html",
})  # fmt: skip
#: ``--format`` names → output file suffix.
FORMAT_SUFFIXES = {"ome.zarr": ".ome.zarr", "zarr": ".zarr", "tif": ".tif", "tiff": ".tiff",
                   "geojson": ".geojson", "csv": ".csv"}
_GLOB_CHARS = set("*?[")


def format_suffixes(formats: Sequence[str]) -> list[str]:
    """``("ome.zarr", "tif")`` → ``[".ome.zarr", ".tif"]``; unknown or repeated names are refused."""
    if not formats:
        raise UsageError("give at least one output format (--format ome.zarr|tif|geojson)")
    suffixes = []
    for fmt in formats:
        suffix = FORMAT_SUFFIXES.get(fmt.lower().lstrip("."))
        if suffix is None:
            raise UsageError(f"unknown output format {fmt!r}: choose from {', '.join(FORMAT_SUFFIXES)}")
        output_format(Path("x" + suffix))  # the writers agree it exists
        if suffix in suffixes:
            raise UsageError(f"output format {fmt!r} is given twice")
        suffixes.append(suffix)
    return suffixes


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files named, files directly inside named directories, and glob matches (each sorted).

    Kept in argument order, each file once. A named file is always kept (the user asked for
    it; a non-image fails with its own error); files found through a directory or a glob are
    kept only if they may be images.
    """
    found: dict[Path, None] = {}
    for item in inputs:
        text = str(item)
        if _GLOB_CHARS & set(text) and not Path(text).exists():  # "scan [1].svs" is a file name
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            files = [m for m in matches if _may_be_image(m)]
            if not files:
                raise InputError(f"{text}: the pattern matches no image files")
        elif Path(text).is_dir():
            files = sorted(p for p in Path(text).iterdir() if _may_be_image(p))
            if not files:
                raise InputError(f"{text}: the directory holds no image files")
        elif Path(text).exists():
            files = [Path(text)]
        else:
            raise InputError(f"{text}: no such file or directory")
        for f in files:
            found.setdefault(f.absolute(), None)
    if not found:
        raise UsageError("give at least one INPUT (a file, directory or glob pattern)")
    return list(found)


def output_names(inputs: Sequence[Path]) -> list[str]:
    """One output base name per input: its stem, or its full name where stems collide.

    ``a.svs`` alone → ``a``; ``a.svs`` and ``a.tif`` → ``a_svs`` and ``a_tif``; the same file
    name in two folders → ``a``, ``a-2`` in input order (stable when a rerun names the same inputs).
    """
    by_stem: dict[str, list[int]] = defaultdict(list)
    for i, path in enumerate(inputs):
        by_stem[_stem(path)].append(i)
    names = [""] * len(inputs)
    for stem, members in by_stem.items():
        same_name = len({inputs[i].name for i in members}) == 1
        for i in members:
            names[i] = stem if same_name else inputs[i].name.replace(".", "_")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        count = seen.get(name, 0) + 1
        seen[name] = count
        names[i] = name if count == 1 else f"{name}-{count}"
    return names


def _stem(path: Path) -> str:
    name = path.name
    for double in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(double):
            return name[: -len(double)]
    return path.stem


def _may_be_image(path: Path) -> bool:
    if path.name.startswith(".") or not path.is_file():
        return False  # hidden files, folders (zarr stores, MIRAX data folders)
    return path.suffix.lower() not in NON_IMAGE_SUFFIXES and path.stat().st_size > 0
