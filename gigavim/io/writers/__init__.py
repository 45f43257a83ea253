"""Output writers: OME-Zarr labels, Cloud-Optimized GeoTIFF, GeoJSON polygons, CSV object tables."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from rasterio._err import CPLE_BaseError  # GDAL errors rasterio passes through unwrapped
from rasterio.errors import RasterioError

from gigavim.errors import OutputError
from gigavim.io.gdal_errors import gdal_messages
from gigavim.io.writers.atomic import (
    check_writable,
    commit,
    remove_path,
    remove_stale_temporaries,
    temporary_sibling,
    write_error_message,
)
from gigavim.io.writers.base import LabelMap

__all__ = ["FORMATS", "LabelMap", "check_outputs", "output_format", "preload_writers", "write_outputs"]

Writer = Callable[[LabelMap, Path], None]

# extension → format name; ``.ome.zarr`` ends in ``.zarr`` and needs no entry of its own.
FORMATS: dict[str, str] = {
    ".zarr": "ome-zarr",
    ".tif": "geotiff",
    ".tiff": "geotiff",
    ".geojson": "geojson",
    ".json": "geojson",
    ".csv": "csv",
}


def _writer(fmt: str, label_map: LabelMap | None) -> Writer:
    """The writer of a format, imported on use so that importing ``LabelMap`` stays light.

    An instance model's GeoJSON holds its objects (QuPath detections), not class polygons.
    ``label_map=None``: the format's class writer (to import it ahead of use).
    """
    if fmt == "csv":
        from gigavim.io.writers.csv_table import write_object_table

        return write_object_table
    if fmt == "geojson" and label_map is not None and label_map.instances is not None:
        from gigavim.io.writers.geojson_objects import write_detections

        return write_detections
    if fmt == "ome-zarr":
        from gigavim.io.writers.ome_zarr import write_ome_zarr

        return write_ome_zarr
    if fmt == "geotiff":
        from gigavim.io.writers.geotiff import write_geotiff

        return write_geotiff
    from gigavim.io.writers.geojson import write_geojson

    return write_geojson


def preload_writers(outputs: Sequence[str | Path]) -> threading.Thread:
    """Import the writers of ``outputs`` in a background thread (dask and ome-zarr take ~2 s to
    import), so a run pays for it while its tiles are computed rather than after them."""

    def load() -> None:
        for fmt in {FORMATS.get(Path(p).suffix.lower()) for p in outputs} - {None}:
            try:
                _writer(fmt, None)
            except Exception:  # an import error surfaces when the output is written
                pass
        if "dask" in sys.modules:  # dask's first compute imports dask.distributed (~1 s): now
            try:
                from dask.base import get_scheduler

                get_scheduler(scheduler="threads")
            except Exception:
                pass

    thread = threading.Thread(target=load, name="gigavim-import-writers", daemon=True)
    thread.start()
    return thread


def output_format(path: Path) -> str:
    """The format an output path asks for by its extension, or an OutputError saying which exist."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        supported = ", ".join(["ome.zarr", *(ext.lstrip(".") for ext in FORMATS)])
        raise OutputError(f"{path}: unsupported output extension (supported: {supported})")
    return fmt


def check_outputs(outputs: Sequence[str | Path], *, overwrite: bool = False) -> list[Path]:
    """Report every output problem before any work (callers may run this before inference).

    Unknown extension, an output given twice, an existing output without ``overwrite``, a missing
    or unwritable directory: each an :class:`OutputError` naming the output. Leftovers of a
    killed earlier run of the same output are cleaned up first (see ``atomic``).
    """
    dests = [Path(p) for p in outputs]
    seen: set[Path] = set()
    for dest in dests:
        output_format(dest)
        key = dest.resolve()
        if key in seen:
            raise OutputError(f"{dest}: the same output is given twice")
        seen.add(key)
        remove_stale_temporaries(dest)
        check_writable(dest, overwrite=overwrite)
    return dests


def write_outputs(
    label_map: LabelMap, outputs: Sequence[str | Path], *, overwrite: bool = False
) -> list[Path]:
    """Write ``label_map`` to every output (format by extension), all-or-nothing per run.

    Each output is written under a hidden temporary name in its own directory; only when all of
    them are complete are they moved into place (an existing output is replaced only then, and
    only with ``overwrite``). On any failure the temporaries are deleted and the outputs that
    existed before are left as they were. Disk-full and other OS errors become one-line
    :class:`OutputError` messages naming the output.
    """
    dests = check_outputs(outputs, overwrite=overwrite)
    staged: list[tuple[Path, Path]] = []
    current = dests[0] if dests else Path()
    try:
        with gdal_messages():  # GDAL's own lines (e.g. "_tiffWriteProc: ...") stay off stderr
            for dest in dests:
                current = dest
                tmp = temporary_sibling(dest)
                staged.append((tmp, dest))
                _writer(output_format(dest), label_map)(label_map, tmp)
        for tmp, dest in staged:
            current = dest
            commit(tmp, dest)
    except (OSError, RasterioError, CPLE_BaseError) as err:
        raise OutputError(write_error_message(current, err)) from err
    finally:
        for tmp, _ in staged:
            remove_path(tmp)
    return dests
