"""Benchmark whole-image context against tile mode: seconds and peak RSS as the slide grows.

``context="image"`` streams ONE token sequence over the whole working image, layer by layer in
bands of token rows kept on disk, so its peak RSS must stay flat as the image grows (the token
count quadruples per row of the table) while its time grows linearly with the tokens. Each case
runs in a fresh child process (its ``ru_maxrss`` is its own) on a synthetic Aperio slide at
1 µm/px, segmented with the bundled ``tissue`` model at its 4 µm/px. Writes the
``whole-image-cpu`` section of docs/benchmarks.md.

    python scripts/bench_whole_image.py            # sides 4000, 8000, 16000 px at level 0
    python scripts/bench_whole_image.py --quick    # 4000 and 8000 only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SLIDE_MPP = 1.0
SIDES = (4000, 8000, 16000)
CONTEXTS = ("tile", "image")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(slide: str, context: str, out_dir: str) -> dict:
    """One segment() run in this (fresh) process; returns its timings and peak memory."""
    import torch

    import gigavim

    torch.set_num_threads(2)
    rss_imports = _peak_rss_mib()
    started = time.perf_counter()
    result = gigavim.segment(slide, [Path(out_dir) / f"{context}.ome.zarr"], model="tissue",
                             context=context)
    return {"seconds": time.perf_counter() - started, "peak_rss_mib": _peak_rss_mib(),
            "rss_imports_mib": rss_imports, "shape": list(result.shape),
            "tiles": f"{result.tiles_foreground}/{result.tiles_total}",
            "stages": result.timings}


def run_case(slide: Path, context: str, out_dir: Path) -> dict:
    """Run :func:`child` in a new interpreter and read back its JSON line."""
    proc = subprocess.run([sys.executable, __file__, "--child", str(slide), context, str(out_dir)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the two smaller slides")
    parser.add_argument("--child", nargs=3, metavar=("SLIDE", "CONTEXT", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--no-doc", action="store_true", help="print the table, leave the docs alone")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return

    from gigavim.bench import machine_line, markdown_table, update_section
    from gigavim.io.synthetic import write_synthetic_slide

    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="gigavim-bench-whole-"))
    try:
        for side in SIDES[:2] if args.quick else SIDES:
            slide = write_synthetic_slide(tmp / f"slide_{side}.svs", side, side, mpp=SLIDE_MPP, seed=side)
            for context in CONTEXTS:
                out = tmp / f"out_{side}_{context}"
                out.mkdir()
                r = run_case(slide, context, out)
                shutil.rmtree(out)
                tokens = (-(-r["shape"][0] // 8)) * (-(-r["shape"][1] // 8))
                rows.append([f"{side}² @ {SLIDE_MPP:g} µm", f"{r['shape'][1]}×{r['shape'][0]}",
                             f"{tokens:,}", context, r["tiles"], f"{r['seconds']:.1f}",
                             f"{r['stages']['tiles_s']:.1f}", f"{r['peak_rss_mib']:.0f}",
                             f"{r['rss_imports_mib']:.0f}"])
                print(" | ".join(rows[-1]), flush=True)
            slide.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    headers = ["slide (level 0)", "working px (4 µm/px)", "tokens (patch 8)", "context",
               "tiles (tissue/all)", "seconds", "inference s", "peak RSS MiB", "RSS after imports MiB"]
    table = markdown_table(headers, rows)
    print(table)
    if args.no_doc:
        return
    load = os.getloadavg()[0]
    update_section("whole-image-cpu", "\n".join([
        "## Whole-image context vs tiles on CPU (`whole-image-cpu`)",
        "",
        "`python scripts/bench_whole_image.py` — `gigavim.segment(..., context=\"image\")` (the whole "
        "working image as ONE Vim token sequence, streamed layer by layer in bands of token rows on "
        "disk) against the default tile mode, bundled `tissue` model (D32, 3 blocks, patch 8) at "
        "4 µm/px on synthetic Aperio slides at 1 µm/px (JPEG, pyramid ×4). Each case in a fresh "
        "process; peak RSS is its `ru_maxrss`. 'inference s' is the model stage (image mode: "
        "streaming + per-block upsampling; tile mode: tiles + blending). Seconds on a shared "
        "2-core host swing by tens of percent between runs; the point is the RSS column, flat "
        "while the token count grows 16×. "
        f"Load average at the end: {load:.1f} (shared host).",
        "",
        machine_line(),
        "",
        table,
    ]))


if __name__ == "__main__":
    main()
