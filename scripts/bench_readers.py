"""Benchmark the image readers and the synthetic slide writer.

For each size: write a synthetic Aperio SVS (JPEG tiles, tissue pattern) and a tiled GeoTIFF
with overviews, each in a fresh subprocess so its peak RSS is its own; then read random
512×512 level-0 windows from both (OpenSlide and rasterio readers) and read the whole level 0
through the dask view. Peak RSS of writing should stay flat as the size grows (tiles stream).

    python scripts/bench_readers.py [--sizes 4096 16384] [--tiles 200] [--no-doc]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from gigavim.bench import machine_line, markdown_table, update_section

_CHILD = r"""
import json, resource, sys, time
import numpy as np
from pathlib import Path
from gigavim.io import Window, open_image
from gigavim.io.synthetic import write_synthetic_slide, write_geotiff

job, path, side, tiles = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
if job == "write-svs":
    write_synthetic_slide(path, side, side, mpp=0.25)
elif job == "write-geotiff":
    import rasterio
    from rasterio.transform import from_origin
    profile = dict(driver="GTiff", width=side, height=side, count=3, dtype="uint8", crs="EPSG:32633",
                   transform=from_origin(500000, 5000000, 1, 1), tiled=True, blockxsize=512,
                   blockysize=512, compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:  # band-interleaved windows: bounded memory
        for y in range(0, side, 512):
            yy, xx = np.mgrid[y:min(y + 512, side), 0:side]
            val = ((np.sin(xx / 97) + np.cos(yy / 53)) * 60 + 128).astype(np.uint8)
            dst.write(np.stack([val, val // 2, 255 - val]), window=((y, y + val.shape[0]), (0, side)))
        from rasterio.enums import Resampling
        dst.build_overviews([2, 4, 8, 16], Resampling.average)
elif job == "read-tiles":
    with open_image(path) as src:
        rng = np.random.default_rng(0)
        for _ in range(tiles):
            y, x = rng.integers(0, side - 512, 2)
            src.read(0, Window(int(y), int(x), 512, 512))
elif job == "read-dask":
    import dask
    with open_image(path) as src, dask.config.set(scheduler="threads", num_workers=2):
        src.to_dask(0, chunk=1024).sum().compute()
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_rss_mib": peak}))
"""


def run_child(job: str, path: Path, side: int, tiles: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, job, str(path), str(side), str(tiles)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--tiles", type=int, default=200, help="random 512² reads per file")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in args.sizes:
            mpix = side * side / 1e6
            for fmt, job, name in [("SVS (OpenSlide)", "write-svs", "s.svs"), ("GeoTIFF (rasterio)", "write-geotiff", "r.tif")]:  # noqa: E501
                path = Path(tmp) / f"{side}_{name}"
                w = run_child(job, path, side, 0)
                t = run_child("read-tiles", path, side, args.tiles)
                d = run_child("read-dask", path, side, 0)
                rows.append([
                    fmt, f"{side}²", path.stat().st_size / 2**20,
                    mpix / w["seconds"], w["peak_rss_mib"],
                    args.tiles / t["seconds"], args.tiles * 0.262144 / t["seconds"],
                    mpix / d["seconds"], d["peak_rss_mib"],
                ])  # fmt: skip
                print(rows[-1], flush=True)
    headers = [
        "format", "level 0 px", "file MiB", "write MP/s", "write peak RSS MiB",
        "512² reads/s", "read MP/s", "dask whole-level MP/s", "dask peak RSS MiB",
    ]  # fmt: skip
    table = markdown_table(headers, rows)
    print(table)
    if not args.no_doc:
        text = (
            "## Readers and synthetic slides (`scripts/bench_readers.py`)\n\n"
            "Synthetic slides written by `gigavim.io.synthetic` (JPEG tiles, tissue pattern) and tiled "
            "deflate GeoTIFFs with overviews; random 512² level-0 reads through `open_image`; whole "
            "level 0 through `ImageSource.to_dask` (2 threads). Each step in its own process "
            "(`python scripts/bench_readers.py`). Write MP/s counts level-0 pixels. GeoTIFF peaks "
            "are mostly GDAL's block cache (`GDAL_CACHEMAX`, 5 % of RAM by default), not gigavim.\n\n"
            + machine_line()
            + "\n\n"
            + table
        )
        update_section("readers", text)


if __name__ == "__main__":
    main()
