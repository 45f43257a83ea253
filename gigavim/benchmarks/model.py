"""Benchmark the Vim backbone forward at 224², 512², 1024² (images/s, tokens/s, peak memory).

Each (model, size) runs in its own child process so its peak memory is that run's alone: on
CPU the peak resident set size (``ru_maxrss``), on CUDA ``torch.cuda.max_memory_allocated``.
"Forward extra" is the peak minus the memory in use once the model and input exist, i.e. the
activations of one inference-mode forward pass. Section ``model-cpu`` / ``model-cuda``.
"""

from __future__ import annotations

import os
import time
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

MODELS: dict[str, tuple[str, dict[str, int]]] = {
    # name: (registered variant, overrides)
    "vim-ti (D192, 24 blocks)": ("vim_tiny_patch16_224", {}),
    "vim-small-test (D96, 12 blocks)": ("vim_tiny_patch16_224", {"embed_dim": 96, "depth": 12}),
}
SIZES = (224, 512, 1024)
QUICK_MODEL, QUICK_SIZES = "vim-small-test (D96, 12 blocks)", (224,)

COLUMNS = [
    Column("model", "model"),
    Column("size", "input", lambda v: f"{v}²"),
    Column("tokens", "tokens"),
    Column("seconds", "s / image"),
    Column("images_per_s", "images/s"),
    Column("tokens_per_s", "tokens/s", ".0f"),
    Column("peak_mib", "peak MiB", ".0f"),
    Column("forward_extra_mib", "forward extra MiB", ".0f"),
]


def _rss_now_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(
    model_key: str, size: int | str, repeats: int | str, threads: int | str, device: str = "cpu"
) -> dict[str, Any]:
    """One measurement in this process: a warm-up pass, then ``repeats`` timed passes (best kept)."""
    import torch

    from gigavim.models import create_model

    size, repeats, threads = int(size), int(repeats), int(threads)
    cpu_threads(threads)  # numba's too: it would reset torch's to every core
    cuda = device.startswith("cuda")
    name, overrides = MODELS[model_key]
    model = create_model(name, num_classes=0, **overrides).eval().to(device)
    x = torch.randn(1, 3, size, size, device=device)
    base = torch.cuda.memory_allocated(device) / 2**20 if cuda else _rss_now_mib()
    # bf16 autocast on CUDA, as the engine's runner runs the model there
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    with torch.inference_mode(), autocast:
        model.forward_features(x)
        times = []
        for _ in range(repeats):
            if cuda:
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            out = model.forward_features(x)
            if cuda:
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else peak_rss_mib()
    best = min(times)
    return {
        "model": model_key,
        "size": size,
        "tokens": out.shape[1],
        "seconds": best,
        "images_per_s": 1.0 / best,
        "tokens_per_s": out.shape[1] / best,
        "peak_mib": peak,
        "forward_extra_mib": max(0.0, peak - base),
        "threads": threads,
    }


def run(
    device: str = "auto",
    quick: bool = False,
    sizes: tuple[int, ...] | None = None,
    models: tuple[str, ...] | None = None,
    repeats: int = 2,
    threads: int = 1,
    progress: Progress | None = None,
) -> BenchReport:
    """Time ``forward_features`` of each model at each size; ``quick``: the small model at 224²."""
    device = bench_device(device)
    cuda = device.startswith("cuda")
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    models = models or ((QUICK_MODEL,) if quick else tuple(MODELS))
    repeats = 1 if quick else repeats
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    rows = []
    for key in models:
        for size in sizes:
            rows.append(run_child(__name__, key, size, repeats, threads, device))
            show_row(progress, COLUMNS, rows[-1])
    kind = device_kind(device)
    where = (
        f"bf16 autocast on {device}; peak = `torch.cuda.max_memory_allocated`"
        if cuda
        else f"float32, {threads} torch thread(s); peak = the child's peak RSS"
    )
    return BenchReport(
        name="model",
        section=f"model-{kind}",
        title=f"Vim backbone forward on {kind.upper()}",
        columns=COLUMNS,
        rows=rows,
        device=device,
        quick=quick,
        intro=(
            f"`forward_features`, batch 1, inference mode, {where}, best of {repeats} after a warm-up, "
            f"each case in its own process; scan backend: the `gigavim.kernels` "
            f"{'Triton' if cuda else 'CPU'} path. Load average at the end: {load_average():.1f} "
            "(other jobs share the host)."
        ),
    )


if __name__ == "__main__":
    child_main(measure)
