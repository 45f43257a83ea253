"""Benchmark whole-image context against tile mode: seconds and peak RSS as the slide grows.

``context="image"`` streams ONE token sequence over the whole working image, layer by layer in
bands of token rows kept on disk, so its peak RSS must stay flat as the image grows (the token
count quadruples per slide size) while its time grows linearly with the tokens. Each case runs
in its own child process (so its peak RSS is its own) on a synthetic Aperio slide at 1 µm/px,
segmented with the bundled ``tissue`` model at its training resolution. Section
``whole-image-cpu`` / ``whole-image-cuda``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from gigavim.benchmarks.report import (
    BenchReport,
    Column,
    Progress,
    bench_device,
    child_main,
    cpu_threads,
    device_kind,
    load_average,
    peak_rss_mib,
    run_child,
    show_row,
)

SLIDE_MPP = 1.0
MODEL = "tissue"
CONTEXTS = ("tile", "image")
SIDES, QUICK_SIDES = (4000, 8000, 16000), (2000,)
THREADS = 2  # torch (and numba) CPU threads in each case, as in the published table

COLUMNS = [
    Column("side", "slide (level 0)", lambda v: f"{v}² @ {SLIDE_MPP:g} µm"),
    Column("mpp", "working µm/px", "g"),
    Column("shape", "working px", lambda v: f"{v[1]}×{v[0]}"),
    Column("tokens", "tokens", ",d"),
    Column("context", "context"),
    Column("tiles", "tiles (tissue/all)"),
    Column("seconds", "seconds", ".1f"),
    Column("inference_s", "inference s", ".1f"),
    Column("peak_rss_mib", "peak RSS MiB", ".0f"),
    Column("rss_imports_mib", "RSS after imports MiB", ".0f"),
]


def measure(slide: str, context: str, out: str, device: str = "cpu", threads: str | int = THREADS
            ) -> dict[str, Any]:
    """One ``segment`` run in this process (a child): its summary, token count and memory."""
    from gigavim.engine import segment
    from gigavim.engine.runner import size_multiple
    from gigavim.models.catalog import load_model

    cpu_threads(int(threads))
    rss_imports = peak_rss_mib()
    bundle = load_model(MODEL)
    result = segment(slide, [out], model=bundle, context=context, device=device, overwrite=True)
    multiple = size_multiple(bundle)
    padded = [n + -n % multiple for n in result.shape]  # the image the sequence covers
    grid = bundle.net.backbone.grid(*padded)
    return {
        **result.to_dict(),
        "tokens": grid[0] * grid[1],
        "patch": bundle.net.backbone.patch_embed.patch_size,
        "rss_imports_mib": rss_imports,
        "peak_rss_mib": peak_rss_mib(),
    }


def run(
    device: str = "auto",
    quick: bool = False,
    sides: tuple[int, ...] | None = None,
    threads: int = THREADS,
    progress: Progress | None = None,
) -> BenchReport:
    """Segment a synthetic slide of each side in both contexts; ``quick``: one 2000² slide."""
    from gigavim.io.synthetic import write_synthetic_slide

    device = bench_device(device)
    sides = sides or (QUICK_SIDES if quick else SIDES)
    rows: list[dict[str, Any]] = []
    patch = None
    with tempfile.TemporaryDirectory(prefix="gigavim_bench_whole_image_") as tmp:
        for side in sides:
            slide = Path(tmp) / f"slide_{side}.svs"
            write_synthetic_slide(slide, side, side, mpp=SLIDE_MPP, seed=side)
            for context in CONTEXTS:
                out = Path(tmp) / f"{side}_{context}.ome.zarr"
                r = run_child(__name__, slide, context, out, device, threads)
                patch = r["patch"]
                rows.append(
                    {
                        "side": side,
                        "mpp": r["mpp"],
                        "shape": r["shape"],
                        "tokens": r["tokens"],
                        "context": context,
                        "tiles": f"{r['tiles_foreground']}/{r['tiles_total']}",
                        "seconds": r["seconds"],
                        "inference_s": r["timings"]["tiles_s"],
                        "peak_rss_mib": r["peak_rss_mib"],
                        "rss_imports_mib": r["rss_imports_mib"],
                    }
                )
                show_row(progress, COLUMNS, rows[-1])
            slide.unlink()
    kind = device_kind(device)
    return BenchReport(
        name="whole-image",
        section=f"whole-image-{kind}",
        title=f"Whole-image context vs tiles on {kind.upper()}",
        columns=COLUMNS,
        rows=rows,
        device=device,
        quick=quick,
        intro=(
            '`gigavim.segment(..., context="image")` (the whole working image as ONE Vim token sequence, '
            "streamed layer by layer in bands of token rows on disk) against the default tile mode, bundled "
            f"`{MODEL}` model (patch {patch}) at its training resolution on synthetic Aperio slides at "
            f"{SLIDE_MPP:g} µm/px (JPEG, pyramid ×4), device {device}, {threads} torch thread(s). Each case "
            "in its own process; peak RSS is its `VmHWM`, 'after imports' is Python + torch + libraries "
            "before the model is loaded. 'inference s' is the model stage (image mode: streaming + "
            "per-block upsampling; tile mode: tiles + blending). Seconds on a shared host swing by tens "
            "of percent between runs; the point is the RSS column, flat while the token count grows. "
            f"Load average at the end: {load_average():.1f} (shared host)."
        ),
    )


if __name__ == "__main__":
    child_main(measure)
