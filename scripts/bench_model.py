"""Benchmark: Vim backbone forward on CPU at 224², 512², 1024² (images/s, tokens/s, peak memory).

Each (model, size) runs in its own subprocess so the peak resident set size (``ru_maxrss``) is
that run's alone; "forward extra" is the peak minus the RSS after the model and input exist,
i.e. the activations of one inference-mode forward pass. Prints a table and rewrites section
``model-cpu`` of docs/benchmarks.md.

    python scripts/bench_model.py                 # Vim-Ti and a small D=96/12-block model
    python scripts/bench_model.py --sizes 224 512 --threads 2 --no-doc
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

MODELS = {
    # name: (registered variant, overrides)
    "vim-ti (D192, 24 blocks)": ("vim_tiny_patch16_224", {}),
    "vim-small-test (D96, 12 blocks)": ("vim_tiny_patch16_224", {"embed_dim": 96, "depth": 12}),
}


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_one(model_key: str, size: int, repeats: int, threads: int) -> dict:
    """One measurement in this process: warm-up pass, then ``repeats`` timed passes."""
    import torch

    from gigavim.models import create_model

    torch.set_num_threads(threads)
    name, overrides = MODELS[model_key]
    model = create_model(name, num_classes=0, **overrides).eval()
    x = torch.randn(1, 3, size, size)
    base = _rss_mib()
    with torch.inference_mode():
        model.forward_features(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = model.forward_features(x)
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    best = min(times)
    return {"model": model_key, "size": size, "tokens": out.shape[1], "seconds": best,
            "images_per_s": 1.0 / best, "tokens_per_s": out.shape[1] / best,
            "peak_rss_mib": peak, "forward_extra_mib": max(0.0, peak - base), "threads": threads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 512, 1024])
    ap.add_argument("--repeats", type=int, default=2, help="timed passes after one warm-up (best is kept)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: stable on shared hosts)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "SIZE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.repeats, args.threads)))
        return

    from gigavim.bench import machine_line, markdown_table, update_section

    rows = []
    for key in args.models:
        for size in args.sizes:
            cmd = [sys.executable, __file__, "--one", key, str(size), "--repeats", str(args.repeats),
                   "--threads", str(args.threads)]
            res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            rows.append([res["model"], f"{size}²", res["tokens"], res["seconds"], res["images_per_s"],
                         f"{res['tokens_per_s']:.0f}", f"{res['peak_rss_mib']:.0f}",
                         f"{res['forward_extra_mib']:.0f}"])
            print(rows[-1], flush=True)
    table = markdown_table(["model", "input", "tokens", "s / image", "images/s", "tokens/s",
                            "peak RSS MiB", "forward extra MiB"], rows)
    load = os.getloadavg()[0]
    text = "\n".join([
        "## Vim backbone forward on CPU (`model-cpu`)",
        "",
        f"`python scripts/bench_model.py` — `forward_features`, batch 1, float32, inference mode, "
        f"{args.threads} torch thread(s), best of {args.repeats} after a warm-up; scan backend: the "
        f"`gigavim.kernels` CPU path. Load average at the end: {load:.1f} (other jobs share the host).",
        "",
        machine_line(),
        "",
        table,
    ])
    print(table)
    if not args.no_doc:
        print(f"updated {update_section('model-cpu', text)}")


if __name__ == "__main__":
    main()
