"""Benchmark ``gigavim.segment`` on synthetic slides: throughput and peak memory vs slide size.

Each case runs in its own process (so its peak RSS is its own) on a synthetic Aperio slide at
0.25 µm/px written by :mod:`gigavim.io.synthetic` (tissue blobs on glass, pyramid ×4). The model
is a fixed per-pixel linear classifier (1×1 conv), so the numbers measure the engine itself —
reading, resampling, tissue masking, blending on disk and writing OME-Zarr — and not a network
(Vim forward cost is in the ``model-cpu`` section); one row adds a tiny 2-block Vim to show the
real model path. Peak RSS must stay flat from 20k² to 50k²: tiles stream, the map lives in zarr.

    python scripts/bench_segment.py            # writes section segment-cpu of docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SECTION = "segment-cpu"
SLIDE_MPP = 0.25
TILE, OVERLAP, BATCH = 1024, 64, 2


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model(kind: str):
    import torch
    from torch import nn

    from gigavim.models.bundle import ModelBundle, ModelMeta

    classes, colors = ["background", "tissue"], [(0, 0, 0), (230, 60, 120)]
    if kind == "pixel":
        net = nn.Conv2d(3, 2, 1)
        with torch.no_grad():  # "purple-ish vs not": a fixed, meaningful linear rule
            net.weight.copy_(torch.tensor([[[[0.0]], [[0.0]], [[0.0]]], [[[-1.0]], [[-1.0]], [[1.0]]]]))
            net.bias.copy_(torch.tensor([0.0, -0.2]))
        arch: dict = {"name": "pixel-linear"}
    else:
        from gigavim.models.factory import build_segmenter

        torch.manual_seed(0)
        arch = {"backbone": {"embed_dim": 32, "depth": 2, "patch_size": 16, "stride": 16,
                             "cls_token": "none", "pos_embed_mode": "sincos"},
                "head": {"kind": "light"}, "num_classes": 2}
        net = build_segmenter(**arch)
    meta = ModelMeta(name=kind, classes=classes, colors=colors, arch=arch, tile=TILE, overlap=OVERLAP,
                     trained=False)
    return ModelBundle(net.eval(), meta)


def child(slide: str, mpp: float, model: str, out: str) -> None:
    """One measured run; prints a JSON line."""
    import gigavim
    from gigavim.engine import segment

    bundle = _model(model)
    rss_imports = _rss_mib()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = segment(slide, [out], model=bundle, mpp=mpp, batch_size=BATCH, overwrite=True,
                         allow_untrained=True)
    print(json.dumps({**result.to_dict(), "rss_imports_mib": rss_imports, "peak_rss_mib": _rss_mib(),
                      "version": gigavim.__version__}))


def ensure_slide(folder: Path, side: int) -> Path:
    from gigavim.io.synthetic import write_synthetic_slide

    path = folder / f"synthetic-{side}.svs"
    if not path.exists():
        started = time.perf_counter()
        write_synthetic_slide(path.with_suffix(".partial.svs"), side, side, mpp=SLIDE_MPP)
        path.with_suffix(".partial.svs").rename(path)
        print(f"wrote {path} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return path


def run_case(slide: Path, mpp: float, model: str, folder: Path) -> dict:
    out = folder / f"{slide.stem}-{mpp:g}-{model}.zarr"
    proc = subprocess.run([sys.executable, __file__, "--child", str(slide), str(mpp), model, str(out)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"case {slide.name} {mpp} {model} failed:\n{proc.stderr}")
    subprocess.run(["rm", "-rf", str(out)], check=False)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, help="where slides and outputs go",
                        default=Path(os.environ.get("TMPDIR", "/tmp")) / "gigavim-bench")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 50000])
    parser.add_argument("--mpps", type=float, nargs="+", default=[2.0, 0.5])
    parser.add_argument("--no-doc", action="store_true", help="print the table only")
    parser.add_argument("--child", nargs=4, metavar=("SLIDE", "MPP", "MODEL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        slide, mpp, model, out = args.child
        child(slide, float(mpp), model, out)
        return

    from gigavim.bench import machine_line, markdown_table, update_section

    args.folder.mkdir(parents=True, exist_ok=True)
    slides = {side: ensure_slide(args.folder, side) for side in args.sizes}
    cases = [(side, mpp, "pixel") for mpp in args.mpps for side in args.sizes]
    cases.append((args.sizes[0], max(args.mpps), "vim-tiny"))
    rows = []
    for side, mpp, model in cases:
        r = run_case(slides[side], mpp, model, args.folder)
        h, w = r["shape"]
        rows.append([f"{side}² @ {SLIDE_MPP} µm", f"{mpp:g}", f"{w}×{h}", model,
                     f"{r['tiles_foreground']}/{r['tiles_total']}", r["seconds"],
                     " / ".join(f"{r['timings'][k]:.1f}" for k in ("mask_s", "tiles_s", "write_s")),
                     r["megapixels_per_s"],
                     r["megapixels_per_s_level0"], r["peak_rss_mib"], r["rss_imports_mib"]])
        print(markdown_table(HEADERS, rows[-1:]).splitlines()[-1], flush=True)
    table = markdown_table(HEADERS, rows)
    print(table)
    if not args.no_doc:
        load = os.getloadavg()[0]
        text = (f"## Segmentation engine on CPU (`{SECTION}`)\n\n"
                f"`python scripts/bench_segment.py` — `gigavim.segment` on synthetic Aperio slides "
                f"(0.25 µm/px, JPEG, pyramid ×4, ~34 % tissue), tile {TILE}, overlap {OVERLAP}, batch "
                f"{BATCH}, output OME-Zarr; each case in its own process. Model `pixel` is a fixed 1×1-conv "
                f"pixel classifier, so the numbers are the engine's own cost (read, resample, tissue mask, "
                f"blend on disk, write); `vim-tiny` is a 2-block D32 Vim for the real model path. Seconds "
                f"include the tissue mask and writing; MP/s counts the whole working image (skipped glass "
                f"included) and level-0 pixels. Peak RSS is the process maximum; 'after imports' is Python + "
                f"torch + libraries before any work. Load average at the end: {load:.1f} (shared host).\n\n"
                f"{machine_line()}\n\n{table}\n")
        update_section(SECTION, text)


HEADERS = ["slide (level 0)", "working µm/px", "working px", "model", "tiles (tissue/all)", "seconds",
           "mask / tiles / write s",
           "MP/s working", "MP/s level 0", "peak RSS MiB", "RSS after imports MiB"]


if __name__ == "__main__":
    main()
