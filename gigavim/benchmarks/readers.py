"""Benchmark the image readers and the synthetic slide writer (section ``readers``).

For each size: write a synthetic Aperio SVS (JPEG tiles, tissue pattern) and a tiled GeoTIFF
with overviews, each in a fresh child process so its peak RSS is its own; then read random
512×512 level-0 windows from both and the whole level 0 through the dask view. The SVS is read
both ways gigavim can read it: tiles decoded directly, and through OpenSlide's read_region.
Peak RSS of writing should stay flat as the size grows (tiles stream).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from gigavim.benchmarks.report import (
    BenchReport,
    Column,
    Progress,
    child_main,
    markdown_table,
    peak_rss_mib,
    run_child,
    show_row,
)

SIZES, QUICK_SIZES = (4096, 16384), (2048,)
TILES, QUICK_TILES = 200, 20
WINDOW = 512
# (file name, write job, [(row, environment of its reads)]): the SVS is written once and read both
# ways gigavim can read it, tiles decoded directly (gigavim.io.tiff_tiles) and through OpenSlide.
FORMATS = (
    ("s.svs", "write-svs", [("SVS (tiles decoded directly)", {}),
                            ("SVS (OpenSlide read_region)", {"GIGAVIM_OPENSLIDE_ONLY": "1"})]),
    ("r.tif", "write-geotiff", [("GeoTIFF (rasterio)", {})]),
)

COLUMNS = [
    Column("format", "format"),
    Column("side", "level 0 px", lambda v: f"{v}²"),
    Column("file_mib", "file MiB"),
    Column("write_mp_per_s", "write MP/s"),
    Column("write_peak_rss_mib", "write peak RSS MiB"),
    Column("reads_per_s", f"{WINDOW}² reads/s"),
    Column("read_mp_per_s", "read MP/s"),
    Column("dask_mp_per_s", "dask whole-level MP/s"),
    Column("dask_peak_rss_mib", "dask peak RSS MiB"),
]


def write_geotiff(path: Path, side: int) -> None:
    """A tiled deflate RGB GeoTIFF with overviews, written in band-interleaved row windows."""
    import numpy as np
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.transform import from_origin

    profile = dict(
        driver="GTiff",
        width=side,
        height=side,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=from_origin(500000, 5000000, 1, 1),
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
    )
    with rasterio.open(path, "w", **profile) as dst:
        for y in range(0, side, 512):
            yy, xx = np.mgrid[y : min(y + 512, side), 0:side]
            val = ((np.sin(xx / 97) + np.cos(yy / 53)) * 60 + 128).astype(np.uint8)
            dst.write(np.stack([val, val // 2, 255 - val]), window=((y, y + val.shape[0]), (0, side)))
        dst.build_overviews([2, 4, 8, 16], Resampling.average)


def measure(job: str, path: str, side: str | int, tiles: str | int) -> dict[str, float]:
    """One step in this process (a child): seconds and this process's peak RSS (imports off the clock)."""
    import dask
    import dask.array  # imported here, not timed with the read
    import numpy as np

    from gigavim.io import Window, open_image
    from gigavim.io.synthetic import write_synthetic_slide

    file, side, tiles = Path(path), int(side), int(tiles)
    t0 = time.perf_counter()
    if job == "write-svs":
        write_synthetic_slide(file, side, side, mpp=0.25)
    elif job == "write-geotiff":
        write_geotiff(file, side)
    elif job == "read-tiles":
        with open_image(file) as src:
            rng = np.random.default_rng(0)
            for _ in range(tiles):
                y, x = rng.integers(0, side - WINDOW, 2)
                src.read(0, Window(int(y), int(x), WINDOW, WINDOW))
    elif job == "read-dask":
        with open_image(file) as src, dask.config.set(scheduler="threads", num_workers=2):
            src.to_dask(0, chunk=1024).sum().compute()
    else:
        raise ValueError(f"unknown job {job!r}")
    return {"seconds": time.perf_counter() - t0, "peak_rss_mib": peak_rss_mib()}


DASK_VIEW_SIDE, QUICK_DASK_VIEW_SIDE = 100_000, 20_000
VIEWPORT = 2048  # a full-resolution screen's worth of level 0


def _chunked_view_by_concatenate(src: Any, level: int, chunk: int) -> Any:
    """The former ``ImageSource.to_dask``: one delayed read per chunk, joined by concatenate."""
    import dask.array as da
    from dask import delayed

    from gigavim.io import Window

    lv = src.levels[level]
    rows = []
    for y in range(0, lv.height, chunk):
        row = []
        for x in range(0, lv.width, chunk):
            h, w = min(chunk, lv.height - y), min(chunk, lv.width - x)
            block = delayed(src.read)(level, Window(y, x, h, w))
            row.append(da.from_delayed(block, shape=(h, w, src.bands), dtype=src.dtype))
        rows.append(row)
    return da.concatenate([da.concatenate(row, axis=1) for row in rows], axis=0)


def dask_view_rows(side: int, chunk: int = 1024) -> list[dict[str, Any]]:
    """Build a dask view of a ``side``² level both ways and read one centred viewport from each.

    The source returns zeros at once, so the times are the graph's own cost (building it, then
    culling and scheduling one viewport), not decoding.
    """
    import numpy as np

    from gigavim.io.base import ImageSource, Level

    class Blank(ImageSource):
        def read(self, level, window):
            return np.zeros((window.height, window.width, 3), np.uint8)

    src = Blank(Path("blank.svs"), "slide", "blank", [Level(side, side, 1.0)], 3, np.dtype(np.uint8))
    rows = []
    for method, build in (("delayed + concatenate (before)", _chunked_view_by_concatenate),
                          ("blockwise map_blocks (now)", lambda s, lvl, c: s.to_dask(lvl, chunk=c))):
        t0 = time.perf_counter()
        view = build(src, 0, chunk)
        t1 = time.perf_counter()
        mid = side // 2
        view[mid : mid + VIEWPORT, mid : mid + VIEWPORT].compute(scheduler="threads")
        rows.append({"method": method, "side": side, "chunks": view.npartitions,
                     "build_s": t1 - t0, "viewport_s": time.perf_counter() - t1})
    return rows


def dask_view_note(rows: list[dict[str, Any]]) -> str:
    table = markdown_table(
        ["dask view of level 0", "level 0 px", "chunks", "build s", f"one {VIEWPORT}² viewport s"],
        [[r["method"], f"{r['side']}²", r["chunks"], f"{r['build_s']:.3g}", f"{r['viewport_s']:.3g}"]
         for r in rows],
    )
    return ("`ImageSource.to_dask` graph cost on a blank level (reads return zeros at once, so "
            "this is dask's own overhead), chunk 1024²:\n\n" + table)


def run(
    quick: bool = False,
    sizes: tuple[int, ...] | None = None,
    tiles: int | None = None,
    progress: Progress | None = None,
) -> BenchReport:
    """Write, window-read and dask-read a synthetic SVS and GeoTIFF of each size (CPU and disk)."""
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    tiles = tiles or (QUICK_TILES if quick else TILES)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gigavim_bench_readers_") as tmp:
        for side in sizes:
            mpix = side * side / 1e6
            for name, job, reads in FORMATS:
                path = Path(tmp) / f"{side}_{name}"
                w = run_child(__name__, job, path, side, 0)
                for fmt, env in reads:  # the write's columns are the same file's for every read
                    t = run_child(__name__, "read-tiles", path, side, tiles, env=env)
                    d = run_child(__name__, "read-dask", path, side, 0, env=env)
                    rows.append(
                        {
                            "format": fmt,
                            "side": side,
                            "file_mib": path.stat().st_size / 2**20,
                            "write_mp_per_s": mpix / w["seconds"],
                            "write_peak_rss_mib": w["peak_rss_mib"],
                            "reads_per_s": tiles / t["seconds"],
                            "read_mp_per_s": tiles * WINDOW * WINDOW / 1e6 / t["seconds"],
                            "dask_mp_per_s": mpix / d["seconds"],
                            "dask_peak_rss_mib": d["peak_rss_mib"],
                        }
                    )
                    show_row(progress, COLUMNS, rows[-1])
    return BenchReport(
        name="readers",
        section="readers",
        title="Readers and synthetic slides",
        columns=COLUMNS,
        rows=rows,
        quick=quick,
        notes=[dask_view_note(dask_view_rows(QUICK_DASK_VIEW_SIDE if quick else DASK_VIEW_SIDE))],
        intro=(
            "synthetic slides written by `gigavim.io.synthetic` (JPEG tiles, tissue pattern) and tiled "
            f"deflate GeoTIFFs with overviews; {tiles} random {WINDOW}² level-0 reads through `open_image`; "
            "whole level 0 through `ImageSource.to_dask` (2 threads). Each step in its own process. Write "
            "MP/s counts level-0 pixels. GeoTIFF peaks are mostly GDAL's block cache (`GDAL_CACHEMAX`, "
            "5 % of RAM by default), not gigavim."
        ),
    )


if __name__ == "__main__":
    child_main(measure)
