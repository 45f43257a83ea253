"""Benchmark ``gigavim.segment`` on synthetic slides: throughput and peak memory vs slide size.

Each case runs in its own child process (so its peak RSS is its own) on a synthetic Aperio slide
at 0.25 µm/px written by :mod:`gigavim.io.synthetic` (tissue blobs on glass, pyramid ×4). The
model is a fixed per-pixel linear classifier (1×1 conv), so the numbers measure the engine itself
— reading, resampling, tissue masking, blending on disk and writing OME-Zarr — and not a network
(Vim forward cost is the ``model`` benchmark's); one case adds a tiny 2-block Vim to show the
real model path. Peak RSS must stay flat from 20k² to 50k²: tiles stream, the map lives in zarr.
Section ``segment-cpu`` / ``segment-cuda``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from gigavim.benchmarks.report import (
    BenchReport,
    Column,
    Progress,
    bench_device,
    child_main,
    device_kind,
    load_average,
    peak_rss_mib,
    run_child,
    show_row,
)

SLIDE_MPP = 0.25
TILE, OVERLAP, BATCH = 1024, 64, 2
SIZES, MPPS = (20000, 50000), (2.0, 0.5)
QUICK_SIZES, QUICK_MPPS = (4096,), (2.0,)

COLUMNS = [
    Column("side", "slide (level 0)", lambda v: f"{v}² @ {SLIDE_MPP} µm"),
    Column("mpp", "working µm/px", "g"),
    Column("shape", "working px", lambda v: f"{v[1]}×{v[0]}"),
    Column("model", "model"),
    Column("tiles", "tiles (tissue/all)"),
    Column("seconds", "seconds"),
    Column("stages_s", "mask / tiles / write s"),
    Column("megapixels_per_s", "MP/s working"),
    Column("megapixels_per_s_level0", "MP/s level 0"),
    Column("peak_rss_mib", "peak RSS MiB", ".0f"),
    Column("rss_imports_mib", "RSS after imports MiB", ".0f"),
]


def bundle(kind: str):
    """``pixel``: a fixed 1×1-conv "purple-ish vs not" rule; ``vim-tiny``: a 2-block D32 Vim."""
    import torch
    from torch import nn

    from gigavim.models.bundle import ModelBundle, ModelMeta

    classes, colors = ["background", "tissue"], [(0, 0, 0), (230, 60, 120)]
    if kind == "pixel":
        net: nn.Module = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            net.weight.copy_(torch.tensor([[[[0.0]], [[0.0]], [[0.0]]], [[[-1.0]], [[-1.0]], [[1.0]]]]))
            net.bias.copy_(torch.tensor([0.0, -0.2]))
        arch: dict[str, Any] = {"name": "pixel-linear"}
    else:
        from gigavim.models.factory import build_segmenter

        torch.manual_seed(0)
        arch = {
            "backbone": {
                "embed_dim": 32,
                "depth": 2,
                "patch_size": 16,
                "stride": 16,
                "cls_token": "none",
                "pos_embed_mode": "sincos",
            },
            "head": {"kind": "light"},
            "num_classes": 2,
        }
        net = build_segmenter(**arch)
    meta = ModelMeta(
        name=kind, classes=classes, colors=colors, arch=arch, tile=TILE, overlap=OVERLAP, trained=False
    )
    return ModelBundle(net.eval(), meta)


def measure(slide: str, mpp: str | float, model: str, out: str, device: str = "cpu") -> dict[str, Any]:
    """One segment run in this process (a child): the result summary plus its memory."""
    from gigavim.engine import segment

    net = bundle(model)
    rss_imports = peak_rss_mib()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "untrained model" is the point here
        result = segment(
            slide,
            [out],
            model=net,
            mpp=float(mpp),
            batch_size=BATCH,
            overwrite=True,
            allow_untrained=True,
            device=device,
        )
    return {**result.to_dict(), "rss_imports_mib": rss_imports, "peak_rss_mib": peak_rss_mib()}


def ensure_slide(folder: Path, side: int, progress: Progress | None = None) -> Path:
    """The synthetic slide of this size, written once and reused by later runs."""
    from gigavim.io.synthetic import write_synthetic_slide

    path = folder / f"synthetic-{side}.svs"
    if not path.exists():
        started = time.perf_counter()
        partial = path.with_suffix(".partial.svs")
        write_synthetic_slide(partial, side, side, mpp=SLIDE_MPP)
        partial.rename(path)
        if progress:
            progress(f"wrote {path} in {time.perf_counter() - started:.0f} s")
    return path


def default_folder() -> Path:
    return Path(os.environ.get("TMPDIR", tempfile.gettempdir())) / "gigavim-bench"


def run(
    device: str = "auto",
    quick: bool = False,
    sizes: tuple[int, ...] | None = None,
    mpps: tuple[float, ...] | None = None,
    folder: Path | None = None,
    progress: Progress | None = None,
) -> BenchReport:
    """Segment synthetic slides of each size at each working resolution; ``quick``: one 4096² slide."""
    device = bench_device(device)
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    mpps = mpps or (QUICK_MPPS if quick else MPPS)
    folder = folder or default_folder()
    folder.mkdir(parents=True, exist_ok=True)
    slides = {side: ensure_slide(folder, side, progress) for side in sizes}
    cases = [(side, mpp, "pixel") for mpp in mpps for side in sizes] + [(sizes[0], max(mpps), "vim-tiny")]
    rows = []
    for side, mpp, model in cases:
        out = folder / f"{slides[side].stem}-{mpp:g}-{model}.zarr"
        try:
            r = run_child(__name__, slides[side], mpp, model, out, device)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        t = r["timings"]
        rows.append(
            {
                "side": side,
                "mpp": mpp,
                "shape": r["shape"],
                "model": model,
                "tiles": f"{r['tiles_foreground']}/{r['tiles_total']}",
                "seconds": r["seconds"],
                "stages_s": " / ".join(f"{t[k]:.1f}" for k in ("mask_s", "tiles_s", "write_s")),
                "megapixels_per_s": r["megapixels_per_s"],
                "megapixels_per_s_level0": r["megapixels_per_s_level0"],
                "peak_rss_mib": r["peak_rss_mib"],
                "rss_imports_mib": r["rss_imports_mib"],
            }
        )
        show_row(progress, COLUMNS, rows[-1])
    kind = device_kind(device)
    return BenchReport(
        name="segment",
        section=f"segment-{kind}",
        title=f"Segmentation engine on {kind.upper()}",
        columns=COLUMNS,
        rows=rows,
        device=device,
        quick=quick,
        intro=(
            f"`gigavim.segment` on synthetic Aperio slides ({SLIDE_MPP} µm/px, JPEG, pyramid ×4, ~34 % "
            f"tissue), tile {TILE}, overlap {OVERLAP}, batch {BATCH}, output OME-Zarr, device {device}; each "
            f"case in its own process. Model `pixel` is a fixed 1×1-conv pixel classifier, so the numbers "
            f"are the engine's own cost (read, resample, tissue mask, blend on disk, write); `vim-tiny` is a "
            f"2-block D32 Vim for the real model path. Seconds include the tissue mask and writing; MP/s "
            f"counts the whole working image (skipped glass included) and level-0 pixels. Peak RSS is the "
            f"process maximum; 'after imports' is Python + torch + libraries before any work. Load average "
            f"at the end: {load_average():.1f} (shared host)."
        ),
    )


if __name__ == "__main__":
    child_main(measure)
